"""One node end to end: mig-manager run -> GPU state -> device-plugin allocatable and GFD labels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from mig_conformance.gpus.catalog import GpuModel
from mig_conformance.k8s import device_plugin, gfd
from mig_conformance.k8s.labels import INSTANCE_TYPE, MIG_CONFIG, MIG_CONFIG_STATE
from mig_conformance.k8s.mig_manager import MigManagerOutcome, reconcile
from mig_conformance.mig.spec import Spec
from mig_conformance.mig.state import GpuMigState

NO_MIG_MANAGER = ("no mig-manager runs on this node: none of its GPUs is MIG capable (the GPU Operator deploys it "
                  "only on nodes labelled nvidia.com/gpu.deploy.mig-manager=true), so nvidia.com/mig.config is ignored "
                  "and no nvidia.com/mig.config.state appears")


@dataclass(frozen=True)
class NodeProjection:
    """What the API server shows for a GPU node once the GPU Operator components have run."""

    node: str
    instance_type: str | None
    gpus: tuple[GpuMigState, ...]
    state: str | None
    states: tuple[str, ...]
    reason: str | None
    allocatable: dict[str, int]
    labels: dict[str, str]
    plugin_error: str | None
    notes: tuple[str, ...] = ()
    mode_change: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"node": self.node, "instance_type": self.instance_type, "state": self.state,
                "states": list(self.states), "reason": self.reason, "mode_change": self.mode_change,
                "plugin_error": self.plugin_error, "notes": list(self.notes),
                "allocatable": dict(self.allocatable), "labels": dict(self.labels),
                "gpus": [{"index": i, **g.as_dict()} for i, g in enumerate(self.gpus)]}


def _allocatable(strategy: str, outcome: MigManagerOutcome, current: Sequence[GpuMigState] | None,
                 version: str) -> tuple[dict[str, int], str | None]:
    """Plugin resources; names it registered before (for `current`) but not now show as 0, as kubelet keeps them."""
    now = device_plugin.advertise(strategy, outcome.gpus, version=version)
    allocatable = dict(now.resources)
    if current is not None:
        before = device_plugin.advertise(strategy, current, version=version)
        for name in before.resources:
            allocatable.setdefault(name, 0)
    return dict(sorted(allocatable.items())), now.error


def project_node(gpus: Sequence[GpuModel], strategy: str, spec: Spec | None, selected: str | None, node: str = "",
                 instance_type: str | None = None, with_reboot: bool = False,
                 current: Sequence[GpuMigState] | None = None, *, driver: str | None = None,
                 device_plugin_version: str = device_plugin.DEFAULT_VERSION,
                 gpu_reset_works: bool = True) -> NodeProjection:
    """Project a node whose GPUs are `gpus` (PCI order) and whose `nvidia.com/mig.config` label is `selected`.

    `spec` None = the shipped default ConfigMap; `current` None = a fresh node. Labels are GFD's, plus
    `nvidia.com/mig.config`/`nvidia.com/mig.config.state` and the instance-type label when those apply.
    """
    if any(g.mig_capable for g in gpus):
        outcome = reconcile(gpus, spec, selected, current, with_reboot, gpu_reset_works)
    else:  # the GPU Operator deploys mig-manager only on MIG-capable nodes: the label is never acted on
        outcome = reconcile(gpus, spec, None, current)
        if selected is not None:
            outcome = replace(outcome, notes=(NO_MIG_MANAGER,))
    allocatable, error = _allocatable(strategy, outcome, current, device_plugin_version)
    labels = gfd.labels(strategy, outcome.gpus, driver)
    if instance_type:
        labels[INSTANCE_TYPE] = instance_type
    if selected is not None:
        labels[MIG_CONFIG] = selected
    if outcome.state is not None:
        labels[MIG_CONFIG_STATE] = outcome.state
    return NodeProjection(node, instance_type, outcome.gpus, outcome.state, outcome.states, outcome.reason,
                          allocatable, dict(sorted(labels.items())), error, outcome.notes, outcome.mode_change)
