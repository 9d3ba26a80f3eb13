"""Restore semantics on the sim backend: what comes back first, how a node's mig.config request is undone, and
when a restore counts as not settled."""

from __future__ import annotations

from mig_conformance.cluster.base import relabelled_nodes, settle_problem, unlabelled_nodes
from mig_conformance.cluster.sim.backend import SimCluster
from mig_conformance.k8s import labels as L
from mig_conformance.k8s import stack as stack_mod

STATIC_STACK = stack_mod.resolve([({"gpu_operator": "v25.10.1"}, "tests: the static ConfigMap")])

USER_CONFIG = """version: v1
mig-configs:
  training:
    - devices: all
      mig-enabled: true
      mig-devices:
        "3g.40gb": 2
"""


def test_the_config_map_comes_back_before_the_node_label() -> None:
    """The user's file lacks all-disabled: relabelling first would make mig-manager fail on it. (The static path of
    operators before v26.3.0; the config name's restore order is in tests/unit/test_effective_config.py.)"""
    cluster = SimCluster("p5.48xlarge", allow_changes=True, stack=STATIC_STACK)
    node = cluster.list_gpu_nodes()[0].name
    cluster.set_mig_config(USER_CONFIG)
    cluster.set_mig_strategy("single")
    assert cluster.request_mig_config(node, "training")
    assert cluster.get_node(node).labels[L.MIG_CONFIG_STATE] == "success"
    assert cluster.get_node(node).allocatable["nvidia.com/gpu"] == 16
    assert relabelled_nodes(cluster.journal.changes) == {node: "success"}
    done = cluster.restore()
    assert done[:2] == ["ConfigMap default-mig-parted-config (mig-parted config, original text)",
                        "ClusterPolicy MIG strategy=mixed"]
    assert done[2] == f"node {node} label {L.MIG_CONFIG}=all-disabled (mig-manager re-applies it)"
    labels = cluster.get_node(node).labels
    assert (labels[L.MIG_CONFIG], labels[L.MIG_CONFIG_STATE]) == ("all-disabled", "success")
    assert cluster.get_node(node).allocatable["nvidia.com/gpu"] == 8
    assert cluster.wait_settled([node], 60) == {node: "all-disabled: success"}


def test_a_run_killed_before_relabelling_gets_its_state_back() -> None:
    cluster = SimCluster("p5.48xlarge", allow_changes=True)
    node = cluster.list_gpu_nodes()[0].name
    cluster.journal.record("mig-config-label", node, L.MIG_CONFIG, "all-disabled", "success")
    cluster._write_node_label(node, L.MIG_CONFIG_STATE, None)  # what a run does just before it relabels
    assert L.MIG_CONFIG_STATE not in cluster.get_node(node).labels
    cluster.restore()
    assert cluster.get_node(node).labels[L.MIG_CONFIG_STATE] == "success"


def test_mig_managers_verdict_on_the_original_config_is_never_overwritten() -> None:
    """The run relabelled the node away and back; mig-manager's latest verdict stands (here: failed)."""
    cluster = SimCluster("p5.48xlarge", allow_changes=True)
    node = cluster.list_gpu_nodes()[0].name
    cluster.journal.record("mig-config-label", node, L.MIG_CONFIG, "all-disabled", "success")
    cluster._write_node_label(node, L.MIG_CONFIG_STATE, "failed")  # mig-manager's verdict after the relabel back
    cluster.restore()
    assert cluster.get_node(node).labels[L.MIG_CONFIG_STATE] == "failed"
    assert cluster.wait_settled([node], 60) == {node: "all-disabled: failed"}


def test_a_node_that_had_no_label_loses_the_kits_but_keeps_its_layout() -> None:
    cluster = SimCluster("p5.48xlarge", allow_changes=True, default_config=None)
    node = cluster.list_gpu_nodes()[0].name
    assert L.MIG_CONFIG not in cluster.get_node(node).labels
    cluster.request_mig_config(node, "all-balanced")
    assert relabelled_nodes(cluster.journal.changes) == {}  # nothing for mig-manager to re-apply
    assert unlabelled_nodes(cluster.journal.changes) == [node]  # reported as not settled
    cluster.restore()
    labels = cluster.get_node(node).labels
    assert L.MIG_CONFIG not in labels and L.MIG_CONFIG_STATE not in labels
    assert cluster.get_node(node).allocatable["nvidia.com/mig-3g.40gb"] == 8  # what the real mig-manager leaves


def test_settle_problems() -> None:
    assert not settle_problem("all-disabled: success", "success")
    assert settle_problem("all-disabled: failed", "success")
    assert not settle_problem("all-disabled: failed", "failed")  # it was failing before the run
    assert settle_problem("not settled: timed out after 5s waiting for ...", "success")


def test_nodes_settle_side_by_side_and_each_timeout_says_how_long_the_kit_waited() -> None:
    """Each node waited for in turn, with one deadline, left the second a wait of 0s ("timed out after 0s")."""
    cluster = SimCluster("p5.48xlarge*2,p4d.24xlarge", allow_changes=True, mig_manager_delay=600)
    nodes = sorted(n.name for n in cluster.list_gpu_nodes())
    for node in nodes[1:]:  # the p4d node keeps its verdict; the two p5 nodes are still pending at the deadline
        cluster.set_node_label(node, L.MIG_CONFIG, "all-balanced")
    started = cluster.clock()
    settled = cluster.wait_settled(nodes, 60)
    assert cluster.clock() - started == 60
    assert settled[nodes[0]] == "all-disabled: success"
    for node in nodes[1:]:
        assert settled[node] == (f"not settled: timed out after 60s waiting for mig-manager to re-apply on {node}; "
                                 f"last state: node {node} mig.config=all-balanced state=pending (unchanged for the "
                                 "last 60s)")
    assert settle_problem(settled[nodes[1]], "success")


def test_a_short_wait_is_not_reported_as_zero_seconds() -> None:
    cluster = SimCluster("p5.48xlarge", allow_changes=True, mig_manager_delay=600)
    node = cluster.list_gpu_nodes()[0].name
    cluster.set_node_label(node, L.MIG_CONFIG, "all-balanced")
    assert cluster.wait_settled([node], 0.4)[node].startswith("not settled: timed out after 0.4s waiting for ")
