"""Scheduling: every advertised MIG slice takes a pod; one more stays Pending with the scheduler's reason."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from mig_conformance.k8s import labels as L
from mig_conformance.k8s.node_hardware import node_gpu_models, not_applicable_note
from mig_conformance.suites._helpers import nvidia_resources, runs_dra_driver

if TYPE_CHECKING:
    from mig_conformance.cluster.base import Cluster
    from mig_conformance.k8s.model import GpuNode
    from mig_conformance.plugin.pods import PodFactory
    from mig_conformance.plugin.settings import Settings

pytestmark = [pytest.mark.mig_disruptive, pytest.mark.mig_category("scheduling")]


@pytest.fixture
def balanced_node(mig_node: GpuNode, mig_cluster: Cluster, mig_reconfigure: Callable[..., GpuNode],
                  mig_settings: Settings, mig_record: Callable[..., None]) -> GpuNode:
    """The node reconfigured to all-balanced under mixed (the test's row says so, also when this fails)."""
    mig_record(node=mig_node.name, instance_type=mig_node.instance_type, config="all-balanced", strategy="mixed")
    gpu = node_gpu_models(mig_node)[0]
    if not gpu.mig_capable:
        pytest.skip(f"{mig_node.name}: {gpu.key} is not MIG capable{not_applicable_note(mig_node)}")
    if runs_dra_driver(mig_cluster, mig_node.name):
        pytest.skip(f"{mig_node.name} runs NVIDIA's DRA driver, not the device plugin: test_dra.py checks its claims")
    if mig_settings.strategy not in (None, "mixed"):
        pytest.skip("scheduling of MIG resources is checked under the mixed strategy")
    node = mig_reconfigure(mig_node, "all-balanced", "mixed")
    if node.labels.get(L.MIG_CONFIG_STATE) != "success":
        pytest.fail(f"{node.name}: all-balanced did not apply: {node.labels.get(L.MIG_CONFIG_STATE)}")
    return node


def test_every_slice_is_schedulable(balanced_node: GpuNode, mig_pods: PodFactory,
                                    mig_record: Callable[..., None]) -> None:
    resources = {k: v for k, v in nvidia_resources(balanced_node).items() if k.startswith(L.MIG_RESOURCE_PREFIX)}
    assert resources, f"{balanced_node.name} advertises no MIG resources under mixed"
    bound: dict[str, int] = {}
    for resource, count in sorted(resources.items()):
        pods = [mig_pods.create({resource: 1}, node=balanced_node.name) for _ in range(count)]
        bound[resource] = sum(1 for p in pods if mig_pods.wait_bound(p).node == balanced_node.name)
    extra = {}
    for resource in sorted(resources):
        status = mig_pods.wait_unschedulable(mig_pods.create({resource: 1}, node=balanced_node.name))
        extra[resource] = status.message or ""
        assert not status.bound, f"a pod beyond the {resources[resource]} advertised {resource} was bound"
        assert f"Insufficient {resource}" in (status.message or ""), \
            f"scheduler message for the extra {resource} pod: {status.message!r}"
    mig_record(category="scheduling", node=balanced_node.name, instance_type=balanced_node.instance_type,
               config="all-balanced", strategy="mixed", expected=resources, measured=bound)
    assert bound == resources


def test_mig_slices_are_not_full_gpus(balanced_node: GpuNode, mig_pods: PodFactory,
                                      mig_record: Callable[..., None]) -> None:
    status = mig_pods.wait_unschedulable(mig_pods.create({L.GPU_RESOURCE: 1}, node=balanced_node.name))
    mig_record(category="scheduling", node=balanced_node.name, instance_type=balanced_node.instance_type,
               config="all-balanced", strategy="mixed", expected={"nvidia.com/gpu pod": "Pending"},
               measured={"nvidia.com/gpu pod": "bound" if status.bound else "Pending", "message": status.message})
    assert not status.bound, "a pod asking for nvidia.com/gpu was bound on a node whose GPUs are all MIG-enabled"
    assert f"Insufficient {L.GPU_RESOURCE}" in (status.message or "")
