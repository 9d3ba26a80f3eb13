"""Catalog: each GPU node's GPUs are known to the kit, and what the cluster reports matches the profile table."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from mig_conformance.gpus.catalog import load_catalog
from mig_conformance.k8s import labels as L
from mig_conformance.k8s.node_hardware import node_gpu_models

if TYPE_CHECKING:
    from mig_conformance.k8s.model import GpuNode

pytestmark = pytest.mark.mig_category("catalog")


def test_node_gpu_is_in_catalog(mig_node: GpuNode, mig_record: Callable[..., None]) -> None:
    gpus = node_gpu_models(mig_node)
    product = mig_node.labels.get(L.GPU_PRODUCT)
    measured = {"gpu.product": product, "gpu.count": mig_node.labels.get(L.GPU_COUNT)}
    base = (product or "").split("-MIG-")[0]
    known = base if base in gpus[0].gfd_products else " or ".join(gpus[0].gfd_products)
    expected = {"gpu.product": product if base == known else known, "gpu.count": str(len(gpus))}
    mig_record(category="catalog", node=mig_node.name, instance_type=mig_node.instance_type,
               gpu_model=gpus[0].key, expected=expected, measured=measured)
    assert gpus, f"{mig_node.name}: no GPUs"
    if product is not None:
        base = product.split("-MIG-")[0]
        assert load_catalog().find(base) is gpus[0], \
            f"{mig_node.name}: GFD product {product} is not the {gpus[0].key} the instance type implies"


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
