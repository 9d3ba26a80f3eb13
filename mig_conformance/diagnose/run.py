"""Run every diagnosis over a snapshot: per node in name order, then the cluster-wide ones."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from mig_conformance.diagnose import advertising, mig_manager, platform
from mig_conformance.diagnose.context import PENDING_THRESHOLD_S, Context
from mig_conformance.diagnose.finding import Finding
from mig_conformance.diagnose.snapshot import Obj, Snapshot, is_gpu_node, name_of
from mig_conformance.k8s import stack as stack_mod
from mig_conformance.k8s.bottlerocket import is_bottlerocket
from mig_conformance.k8s.stack import StackProfile

NodeCheck = Callable[[Context, Obj], Iterator[Finding]]

#: (finding number of issue 14, check), in the order findings are listed
NODE_CHECKS: tuple[tuple[int, NodeCheck], ...] = (
    (1, mig_manager.wedged), (2, mig_manager.never_runs), (3, advertising.single_heterogeneous),
    (4, advertising.empty_mig_gpu), (5, advertising.counts_mismatch), (6, mig_manager.failed),
    (7, mig_manager.unknown_config), (8, advertising.stale_strategy), (9, advertising.overridden_plugin_strategy),
    (10, platform.mixed_pending_driver), (11, platform.grace_cdmm), (12, platform.dra_and_device_plugin),
    (13, mig_manager.not_ready),
)
CLUSTER_CHECKS = (advertising.stale_daemonsets,)
#: the checks of mig-manager's work: a Bottlerocket node has none (its own MIG manager applies settings at boot:
#: k8s/bottlerocket.py), so they do not apply there
MIG_MANAGER_CHECKS = frozenset({1, 2, 6, 7})
#: the checks of what the device plugin advertises: a node that runs NVIDIA's DRA driver instead (its ResourceSlices,
#: no nvidia.com resource) registers none by design (k8s/dra.py), so they do not apply there
DEVICE_PLUGIN_CHECKS = frozenset({3, 4, 5, 8, 9})
#: every finding id, for the README table and the suite's parametrization
IDS = ("mig-manager-wedged", "mig-manager-absent", "single-strategy-heterogeneous", "mig-enabled-without-devices",
       "success-counts-mismatch", "mig-config-failed", "mig-config-unknown", "stale-after-strategy-change",
       "stale-daemonset-strategy", "device-plugin-strategy-overridden", "driver-mixed-mig-pending",
       "grace-cdmm-no-mig", "gpu-advertised-twice", "node-not-ready-after-reconfiguration")


def gpu_nodes(snapshot: Snapshot) -> list[Obj]:
    return sorted((n for n in snapshot.nodes if is_gpu_node(n)), key=name_of)


def diagnose(snapshot: Snapshot, stack: StackProfile | None = None,
             pending_threshold_s: float = PENDING_THRESHOLD_S) -> list[Finding]:
    """Every finding of the snapshot, per node (by name) and then cluster-wide."""
    ctx = Context(snapshot, stack or stack_mod.default(), pending_threshold_s)
    findings = [f for node in gpu_nodes(snapshot) for number, check in NODE_CHECKS
                if not (number in MIG_MANAGER_CHECKS and _bottlerocket(node))
                and not (number in DEVICE_PLUGIN_CHECKS and platform.runs_dra_driver_only(snapshot, node))
                for f in check(ctx, node)]
    findings += [f for check in CLUSTER_CHECKS for f in check(ctx)]
    return findings


def _bottlerocket(node: Obj) -> bool:
    info = ((node.get("status") or {}).get("nodeInfo") or {})
    return is_bottlerocket(info.get("osImage") if isinstance(info, dict) else None)
