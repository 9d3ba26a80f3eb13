"""Reconfiguration: label change -> pending -> success (the states mig-manager writes, as watched) and allocatable
follows; unknown name -> failed; the original label comes back afterwards."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from mig_conformance.k8s import labels as L
from mig_conformance.k8s.node_hardware import node_gpu_models, not_applicable_note
from mig_conformance.suites._helpers import apply_and_check, node_config, report_property

if TYPE_CHECKING:
    from mig_conformance.cluster.base import Cluster
    from mig_conformance.k8s.model import GpuNode
    from mig_conformance.k8s.projection import NodeProjection
    from mig_conformance.plugin.settings import Settings

pytestmark = [pytest.mark.mig_disruptive, pytest.mark.mig_category("reconfiguration")]


def test_label_change_is_followed(mig_node: GpuNode, mig_cluster: Cluster, mig_reconfigure: Callable[..., GpuNode],
                                  mig_expect: Callable[..., NodeProjection], mig_record: Callable[..., None],
                                  mig_settings: Settings, request: pytest.FixtureRequest) -> None:
    gpu = node_gpu_models(mig_node)[0]
    if not gpu.mig_capable:
        pytest.skip(f"{mig_node.name}: {gpu.key} is not MIG capable{not_applicable_note(mig_node)}")
    names = node_config(mig_cluster, mig_node, report_property(request)).configs  # says which file the names come from
    if "all-balanced" not in names:
        pytest.skip(f"{mig_node.name}: the file mig-manager reads has no all-balanced")
    original = mig_cluster.original_node_label(mig_node.name, L.MIG_CONFIG)  # before this run changed the node
    strategy = mig_cluster.get_mig_strategy()
    apply_and_check(mig_node, mig_reconfigure, mig_expect, mig_record, "reconfiguration", "all-disabled", strategy)
    node, expected = apply_and_check(mig_node, mig_reconfigure, mig_expect, mig_record, "reconfiguration",
                                     "all-balanced", strategy)
    # from all-disabled, a node is as fresh as the projection's: mig-manager must write exactly what it predicts
    assert node.mig_states == expected.states, \
        f"{node.name}: mig-manager wrote {node.mig_states}, expected {expected.states} (pending, then success)"
    mig_cluster.restore(targets={mig_node.name})  # this node only: the rest of the run's changes stay
    assert mig_cluster.get_node(mig_node.name).labels.get(L.MIG_CONFIG) == original, "label not restored"
    if original is not None:  # mig-manager re-applies the original config
        settled = mig_cluster.wait_settled([mig_node.name], mig_settings.timeout)[mig_node.name]
        assert settled.endswith(": success"), f"{mig_node.name}: after restoring {original}: {settled}"


def test_unknown_config_fails(mig_node: GpuNode, mig_cluster: Cluster, mig_reconfigure: Callable[..., GpuNode],
                              mig_record: Callable[..., None]) -> None:
    gpu = node_gpu_models(mig_node)[0]
    if not gpu.mig_capable:
        pytest.skip(f"{mig_node.name}: {gpu.key} is not MIG capable (no mig-manager runs there)"
                    f"{not_applicable_note(mig_node)}")
    name = "mig-conformance-no-such-config"
    mig_record(category="reconfiguration", node=mig_node.name, instance_type=mig_node.instance_type, config=name,
               strategy=mig_cluster.get_mig_strategy(), expected={"state": "failed"})  # before the wait can fail
    node = mig_reconfigure(mig_node, name)
    state = node.labels.get(L.MIG_CONFIG_STATE)
    mig_record(measured={"state": state})
    assert state == "failed", f"{node.name}: unknown config {name} gave state {state}, expected failed"
