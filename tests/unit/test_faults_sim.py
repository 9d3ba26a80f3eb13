"""The wait logic behind the kit's handling of faults during a run, in process on the sim backend (simulated clock):
retry after an outage, the diagnosis of a stuck or deleted node. The faults themselves, against a real local control
plane: tests/control_plane/test_faults.py."""

from __future__ import annotations

import pytest

from mig_conformance.cluster.base import RECOVERY_S, ClusterError, Missing, TransientError, WaitTimeout
from mig_conformance.cluster.sim.backend import SimCluster
from mig_conformance.k8s import labels as L
from mig_conformance.k8s.model import GpuNode

P5 = "sim-p5-48xlarge-0"


def _flaky_get_node(cluster: SimCluster, errors: list[ClusterError]) -> None:
    """get_node raises these errors first, in order, then reads the node."""
    real = cluster.get_node

    def get_node(name: str) -> GpuNode:
        if errors:
            raise errors.pop(0)
        return real(name)
    cluster.get_node = get_node  # type: ignore[method-assign]


def _success(node: GpuNode) -> bool:
    return node.labels.get(L.MIG_CONFIG_STATE) == "success"


DENIED = ClusterError("sim: access denied: the kit needs permission to get nodes (see deploy/rbac.yaml): forbidden")


def test_a_denial_right_after_an_outage_is_retried_as_the_api_server_syncs_its_caches() -> None:
    cluster = SimCluster("p5.48xlarge", allow_changes=True)
    _flaky_get_node(cluster, [TransientError("sim: cannot reach the API server"), DENIED, DENIED])
    assert _success(cluster.wait_for_node(P5, _success, 60, "the node"))


def test_a_denial_without_an_outage_is_not_retried() -> None:
    cluster = SimCluster("p5.48xlarge", allow_changes=True)
    _flaky_get_node(cluster, [DENIED])
    with pytest.raises(ClusterError, match="access denied"):
        cluster.wait_for_node(P5, _success, 60, "the node")


def test_a_denial_long_after_an_outage_is_not_retried() -> None:
    cluster = SimCluster("p5.48xlarge", allow_changes=True)
    _flaky_get_node(cluster, [TransientError("sim: cannot reach the API server")] * int(RECOVERY_S) + [DENIED] * 100)
    started = cluster.clock()
    with pytest.raises(ClusterError, match="access denied") as info:
        cluster.wait_for_node(P5, _success, 600, "the node")
    assert not isinstance(info.value, WaitTimeout) and cluster.clock() - started < 600


def test_a_timeout_says_how_long_the_state_has_not_moved() -> None:
    cluster = SimCluster("p5.48xlarge", allow_changes=True, mig_manager_delay=600)
    cluster.set_node_label(P5, L.MIG_CONFIG, "all-balanced")
    with pytest.raises(WaitTimeout) as info:
        cluster.wait_for_node(P5, _success, 60, f"node {P5} to apply all-balanced")
    assert str(info.value) == (f"timed out after 60s waiting for node {P5} to apply all-balanced; last state: node "
                               f"{P5} mig.config=all-balanced state=pending (unchanged for the last 60s)")


def test_a_node_deleted_while_waiting_is_missing_naming_it_and_its_last_state() -> None:
    cluster = SimCluster("p5.48xlarge", allow_changes=True, mig_manager_delay=600)
    cluster.set_node_label(P5, L.MIG_CONFIG, "all-balanced")
    real = cluster.get_node
    calls = []

    def get_node(name: str) -> GpuNode:
        calls.append(name)
        if len(calls) > 2:
            raise Missing(f'sim: nodes "{name}" not found')
        return real(name)
    cluster.get_node = get_node  # type: ignore[method-assign]
    with pytest.raises(Missing) as info:
        cluster.wait_for_node(P5, _success, 60, "all-balanced")
    assert str(info.value) == (f"sim:p5.48xlarge: node {P5} is gone: it was deleted while the kit waited for "
                               f"all-balanced; last state seen: node {P5} mig.config=all-balanced state=pending")
    assert cluster.wait_settled([P5], 60) == {P5: "not settled: the node was deleted during the run (its original "
                                                  "config was not re-applied)"}
