"""Field diagnostics (read-only on every backend): each GPU node shows none of the known MIG failure modes of
`mig_conformance.diagnose` (mig-manager wedged or absent, invalid single layouts, empty MIG GPUs, success with the
wrong counts, failures by reason, unknown config names, stale strategies, affected drivers, CDMM, DRA next to the
device plugin, NotReady after a reconfiguration). A failure lists each finding with its evidence, the upstream issue
and the recovery step. Run alone with `-m mig_diagnose`; `mig-conformance diagnose` prints the same findings."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from mig_conformance.cluster.base import describe_change
from mig_conformance.cluster.journal import ChangeKind
from mig_conformance.diagnose.finding import Finding
from mig_conformance.diagnose.run import diagnose
from mig_conformance.diagnose.snapshot import Snapshot, read_snapshot

if TYPE_CHECKING:
    from mig_conformance.cluster.base import Cluster
    from mig_conformance.k8s.model import GpuNode

pytestmark = [pytest.mark.mig_diagnose, pytest.mark.mig_category("diagnose")]


@pytest.fixture(scope="module")
def snapshot(mig_cluster: Cluster) -> Snapshot:
    """One read of the cluster (get/list only) for every test of this module."""
    return read_snapshot(mig_cluster, getattr(mig_cluster, "operator_namespace", "gpu-operator"))


@pytest.fixture(scope="module")
def findings(snapshot: Snapshot, mig_cluster: Cluster) -> list[Finding]:
    """The findings under the cluster's stack profile (chosen on sim/local, detected on real clusters)."""
    return diagnose(snapshot, mig_cluster.stack)


def _text(found: list[Finding]) -> str:
    lines = []
    for f in found:
        lines += [f.line(), f"  evidence: {dict(f.evidence)}", f"  upstream: {', '.join(f.upstream)}",
                  f"  recovery: {f.recovery}", *(f"  note: {n}" for n in f.notes)]
    return "\n".join(lines)


def _changed_by_this_run(cluster: Cluster, node: str | None) -> list[str]:
    """What this run changed and has not put back yet on the node (or cluster-wide): the diagnosis describes the
    cluster as its users left it (the suite runs first; under xdist other suites may run beside it)."""
    return [describe_change(c) for c in cluster.journal.changes
            if c.kind in (ChangeKind.MIG_CONFIG, ChangeKind.MIG_STRATEGY) or (node and c.target == node)]


def test_node_shows_no_known_mig_fault(mig_node: GpuNode, findings: list[Finding], mig_cluster: Cluster,
                                       mig_record: Callable[..., None]) -> None:
    """No finding on this node (warnings included: each names a real misconfiguration)."""
    changed = _changed_by_this_run(mig_cluster, mig_node.name)
    if changed:
        pytest.skip(f"this run changed {'; '.join(changed)} and has not restored it yet")
    mine = [f for f in findings if f.node == mig_node.name]
    mig_record(category="diagnose", node=mig_node.name, instance_type=mig_node.instance_type,
               expected={"findings": []}, measured={"findings": [f.as_dict() for f in mine]})
    assert not mine, f"{len(mine)} finding(s) on {mig_node.name}:\n{_text(mine)}"


def test_cluster_shows_no_known_mig_fault(findings: list[Finding], snapshot: Snapshot, mig_cluster: Cluster,
                                          mig_record: Callable[..., None]) -> None:
    """No cluster-wide finding (the device plugin's and GFD's DaemonSets run the ClusterPolicy's strategy). What
    could not be read (a kind the identity may not list: deploy/rbac-diagnose.yaml grants all) is a warning of the
    run: the checks that need it were skipped (kept out of `measured`, which says what the cluster showed)."""
    changed = _changed_by_this_run(mig_cluster, None)
    if changed:
        pytest.skip(f"this run changed {'; '.join(changed)} and has not restored it yet")
    cluster_wide = [f for f in findings if not f.node]
    for problem in snapshot.problems:
        warnings.warn(f"diagnose could not read {problem}", UserWarning, stacklevel=1)
    mig_record(category="diagnose", expected={"findings": []},
               measured={"findings": [f.as_dict() for f in cluster_wide]})
    assert not cluster_wide, _text(cluster_wide)
