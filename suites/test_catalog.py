"""Catalog: each GPU node's GPUs are known to the kit, and what the cluster reports matches the profile table."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from mig_conformance.gpus.catalog import load_catalog
from mig_conformance.k8s import gfd
from mig_conformance.k8s import labels as L
from mig_conformance.k8s.node_hardware import node_gpu_models
from mig_conformance.mig.reconfigure import SUCCESS
from mig_conformance.mig.state import initial_states

if TYPE_CHECKING:
    from mig_conformance.cluster.base import Cluster
    from mig_conformance.gpus.catalog import GpuModel
    from mig_conformance.k8s.model import GpuNode
    from mig_conformance.k8s.projection import NodeProjection

pytestmark = pytest.mark.mig_category("catalog")


def _mig_suffix(product: str) -> str:
    """`-MIG-<profile>` or `-MIG-INVALID` of a GFD product under the single strategy, else ''."""
    return product[len(product.split("-MIG-")[0]):]


def _gfd_now(node: GpuNode, mig_expect: Callable[..., NodeProjection], gpus: list[GpuModel],
             strategy: str) -> dict[str, str] | None:
    """The labels GFD should publish for the node as it is now, under the strategy GFD says it runs with (it labels
    nvidia.com/mig.strategy under single and mixed only), or None where the node's MIG state cannot be known.

    Without single, gpu.product names the GPU and gpu.count counts every GPU of that name, whatever their MIG mode.
    Under single they describe the MIG devices (`<GPU>-MIG-<profile>` and how many, or `<GPU>-MIG-INVALID` and 0):
    what the node's nvidia.com/mig.config left, projected as for any other suite (mig_expect, nothing applied) when
    mig-manager reported success or never ran; a pending, rebooting or failed run leaves it unknown."""
    if strategy != "single":
        return gfd.labels(strategy, initial_states(gpus))
    if node.labels.get(L.MIG_CONFIG_STATE) not in (None, SUCCESS):
        return None
    return mig_expect(node, node.labels.get(L.MIG_CONFIG), strategy).labels


def test_node_gpu_is_in_catalog(mig_node: GpuNode, mig_cluster: Cluster, mig_expect: Callable[..., NodeProjection],
                                mig_record: Callable[..., None]) -> None:
    """GFD's gpu.product names the catalog GPU the instance type implies, with the -MIG- suffix (or none) and the
    gpu.count GFD publishes for the node's strategy and MIG state."""
    node = mig_cluster.get_node(mig_node.name)  # as it is now (mig_node is the node as collected)
    gpus = node_gpu_models(node)
    assert gpus, f"{node.name}: no GPUs"
    gpu = gpus[0]
    product = node.labels.get(L.GPU_PRODUCT)
    count = node.labels.get(L.GPU_COUNT)
    strategy = node.labels.get(L.MIG_STRATEGY) or "none"  # GFD labels it under single and mixed only
    want = _gfd_now(node, mig_expect, gpus, strategy)
    base = (product or "").split("-MIG-")[0]
    known = base if load_catalog().find(base) is gpu else " or ".join(gpu.gfd_products)
    suffix = _mig_suffix(want[L.GPU_PRODUCT]) if want is not None else ""
    expected = {"gpu.product": known + suffix, "gpu.count": want[L.GPU_COUNT] if want is not None else None}
    mig_record(category="catalog", node=node.name, instance_type=node.instance_type, gpu_model=gpu.key,
               expected=expected, measured={"gpu.product": product, "gpu.count": count})
    if product is not None:
        assert load_catalog().find(base) is gpu, \
            f"{node.name}: GFD product {product} is not the {gpu.key} the instance type implies"
        if want is not None:
            assert _mig_suffix(product) == suffix, \
                f"{node.name}: GFD product {product}, expected {base}{suffix} (strategy {strategy})"
    if count is not None and want is not None:
        assert count == want[L.GPU_COUNT], \
            f"{node.name}: GFD gpu.count {count}, expected {want[L.GPU_COUNT]} for {len(gpus)} x {gpu.key} " \
            f"(strategy {strategy}, {L.MIG_CONFIG}={node.labels.get(L.MIG_CONFIG)})"


def test_mig_labels_match_profile_table(mig_node: GpuNode, mig_record: Callable[..., None]) -> None:
    """Every nvidia.com/mig-<profile>.* label GFD publishes equals the catalog's numbers for that profile."""
    gpu = node_gpu_models(mig_node)[0]
    published = {k[len("nvidia.com/mig-"):-len(".count")] for k in mig_node.labels
                 if k.startswith("nvidia.com/mig-") and k.endswith(".count")}
    if not published:
        pytest.skip(f"{mig_node.name} publishes no MIG profile labels now (MIG disabled or strategy not mixed)")
    mismatches = {}
    for name in sorted(published):
        profile = gpu.profile(name)
        assert profile is not None, f"{mig_node.name}: GFD reports {name}, which {gpu.key} does not have"
        want = {"multiprocessors": profile.sm, "slices.gi": profile.slices,
                "memory": profile.memory_mib}
        for key, value in want.items():
            got = mig_node.labels.get(f"nvidia.com/mig-{name}.{key}")
            if value is not None and got is not None and str(value) != got:
                mismatches[f"{name}.{key}"] = (got, value)
    mig_record(category="catalog", node=mig_node.name, instance_type=mig_node.instance_type, gpu_model=gpu.key,
               expected={k: v[1] for k, v in mismatches.items()}, measured={k: v[0] for k, v in mismatches.items()})
    assert not mismatches, f"{mig_node.name}: labels differ from the {gpu.key} profile table: {mismatches}"
