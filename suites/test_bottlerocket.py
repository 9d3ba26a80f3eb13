"""Bottlerocket nodes: no GPU Operator, MIG from settings applied at boot, MIG devices as nvidia.com/gpu (single
strategy only). What the node advertises must be what Bottlerocket's tables give for its GPUs, and every advertised
device takes a pod (docs/reference/bottlerocket.md). Other nodes skip these tests; Bottlerocket nodes skip the
mig-manager suites (the session says why)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from mig_conformance.k8s import bottlerocket
from mig_conformance.k8s import labels as L
from mig_conformance.k8s.node_hardware import node_gpu_models

if TYPE_CHECKING:
    from mig_conformance.cluster.base import Cluster
    from mig_conformance.k8s.model import GpuNode
    from mig_conformance.plugin.pods import PodFactory

pytestmark = pytest.mark.mig_category("single")


def _bottlerocket_only(node: GpuNode) -> None:
    if not bottlerocket.is_bottlerocket(node.os_image):
        pytest.skip(f"{node.name}: not a Bottlerocket node (osImage {node.os_image or 'unknown'})")


def _expected(cluster: Cluster, node: GpuNode) -> tuple[dict[str, int] | None, str]:
    """What the node should advertise when the kit knows its settings (sim), else None, with what was known."""
    settings: bottlerocket.Settings | None = getattr(cluster, "bottlerocket_settings", None)
    if settings is None:
        return None, "settings not visible through the API: checked against Bottlerocket's tables"
    projected = bottlerocket.project(settings, node_gpu_models(node), node.name, node.instance_type)
    p = projected.plan
    return projected.allocatable, f"settings {settings.file}: \"{p.key}\" = \"{p.value}\" -> {p.profile} x{p.count}"


def _possible(node: GpuNode) -> dict[int, str]:
    """Per-GPU device counts some Bottlerocket setting gives on this node's GPUs: count -> profile."""
    gpus = node_gpu_models(node)
    table = bottlerocket.load_tables().for_pci(bottlerocket.Board.of(gpus[0]).pci_id) if gpus else None
    return {int(n): profile for n, profile in table.counts.items()} if table else {}


def test_bottlerocket_node_advertises_its_settings(mig_node: GpuNode, mig_cluster: Cluster,
                                                   mig_record: Callable[..., None]) -> None:
    """nvidia.com/gpu counts MIG devices (single strategy), no nvidia.com/mig-* resource, no mig-manager label."""
    _bottlerocket_only(mig_node)
    node = mig_cluster.get_node(mig_node.name)
    gpus = node_gpu_models(node)
    measured = {k: v for k, v in node.extended().items() if v}
    expected, known = _expected(mig_cluster, node)
    devices = measured.get(L.GPU_RESOURCE, 0)
    per_gpu = devices // len(gpus) if gpus and devices % len(gpus) == 0 else None
    possible = _possible(node)
    record: dict[str, Any] = {"known": known, "per_gpu": per_gpu}
    mig_record(category="single", node=node.name, instance_type=node.instance_type,
               gpu_model=gpus[0].key if gpus else None, config="bottlerocket settings", strategy="single",
               expected=expected if expected is not None else
               {L.GPU_RESOURCE: f"{len(gpus)} x one of {sorted(possible)}"},
               measured={**measured, **record})
    assert not [k for k in measured if k.startswith(L.MIG_RESOURCE_PREFIX)], \
        f"{node.name}: Bottlerocket offers MIG devices only as nvidia.com/gpu (single strategy), got {measured}"
    assert L.MIG_CONFIG_STATE not in node.labels, f"{node.name}: a mig-manager verdict on a Bottlerocket node"
    if expected is not None:
        assert {k: v for k, v in expected.items() if v} == measured, \
            f"{node.name}: advertises {measured}, Bottlerocket's tables give {expected} ({known})"
    elif gpus and gpus[0].mig_capable and possible:
        assert per_gpu in possible, (f"{node.name}: {devices} nvidia.com/gpu on {len(gpus)} GPUs is no count "
                                     f"Bottlerocket's settings give ({sorted(possible)} per GPU)")


@pytest.mark.mig_disruptive
def test_every_bottlerocket_device_takes_a_pod(mig_node: GpuNode, mig_cluster: Cluster, mig_pods: PodFactory,
                                               mig_record: Callable[..., None]) -> None:
    """Every advertised nvidia.com/gpu binds a pod; one more stays Pending with the scheduler's reason."""
    _bottlerocket_only(mig_node)
    node = mig_cluster.get_node(mig_node.name)
    count = node.allocatable.get(L.GPU_RESOURCE, 0)
    if count == 0:
        pytest.skip(f"{node.name}: advertises no nvidia.com/gpu")
    pods = [mig_pods.create({L.GPU_RESOURCE: 1}, node=node.name) for _ in range(count)]
    bound = sum(1 for p in pods if mig_pods.wait_bound(p).node == node.name)
    extra = mig_pods.wait_unschedulable(mig_pods.create({L.GPU_RESOURCE: 1}, node=node.name))
    mig_record(category="scheduling", node=node.name, instance_type=node.instance_type, config="bottlerocket settings",
               strategy="single", expected={L.GPU_RESOURCE: count, "extra pod": "Pending"},
               measured={L.GPU_RESOURCE: bound, "extra pod": "bound" if extra.bound else "Pending"})
    assert bound == count
    assert not extra.bound and f"Insufficient {L.GPU_RESOURCE}" in (extra.message or "")
