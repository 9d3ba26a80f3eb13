"""Catalog: each GPU node's GPUs are known to the kit, and what the cluster reports matches the profile table."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from mig_conformance.gpus.catalog import load_catalog
from mig_conformance.k8s import bottlerocket, gfd
from mig_conformance.k8s import labels as L
from mig_conformance.k8s.node_hardware import node_gpu_models
from mig_conformance.mig.plans import configs_for_node, single_strategy_config
from mig_conformance.mig.reconfigure import SUCCESS
from mig_conformance.mig.state import initial_states
from mig_conformance.suites._helpers import node_config, report_property

if TYPE_CHECKING:
    from mig_conformance.cluster.base import Cluster
    from mig_conformance.gpus.catalog import GpuModel
    from mig_conformance.k8s.model import GpuNode
    from mig_conformance.k8s.projection import NodeProjection
    from mig_conformance.plugin.settings import Settings

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
    if product is None and bottlerocket.is_bottlerocket(node.os_image):
        pytest.skip(f"{node.name}: {bottlerocket.NO_GFD}")
    count = node.labels.get(L.GPU_COUNT)
    strategy = node.labels.get(L.MIG_STRATEGY) or "none"  # GFD labels it under single and mixed only
    want = _gfd_now(node, mig_expect, gpus, strategy)
    base = (product or "").split("-MIG-")[0]
    found = load_catalog().find(base)
    same = found is not None and found.key == gpu.key  # gpu may be the model without MIG (node_gpu_models)
    known = base if same else " or ".join(gpu.gfd_products)
    suffix = _mig_suffix(want[L.GPU_PRODUCT]) if want is not None else ""
    expected = {"gpu.product": known + suffix, "gpu.count": want[L.GPU_COUNT] if want is not None else None}
    mig_record(category="catalog", node=node.name, instance_type=node.instance_type, gpu_model=gpu.key,
               config=node.labels.get(L.MIG_CONFIG), strategy=node.labels.get(L.MIG_STRATEGY),
               expected=expected, measured={"gpu.product": product, "gpu.count": count})
    if product is not None:
        assert same, \
            f"{node.name}: GFD product {product} is not the {gpu.key} the instance type implies"
        if want is not None:
            assert _mig_suffix(product) == suffix, \
                f"{node.name}: GFD product {product}, expected {base}{suffix} (strategy {strategy})"
    if count is not None and want is not None:
        assert count == want[L.GPU_COUNT], \
            f"{node.name}: GFD gpu.count {count}, expected {want[L.GPU_COUNT]} for {len(gpus)} x {gpu.key} " \
            f"(strategy {strategy}, {L.MIG_CONFIG}={node.labels.get(L.MIG_CONFIG)})"


def _published_profiles(node: GpuNode) -> list[str]:
    """The MIG profiles GFD publishes `nvidia.com/mig-<profile>.*` labels for (under the mixed strategy)."""
    prefix, suffix = L.MIG_RESOURCE_PREFIX, ".count"
    return sorted(k[len(prefix):-len(suffix)] for k in node.labels if k.startswith(prefix) and k.endswith(suffix))


def _config_to_publish_labels(gpu: GpuModel, mig_cluster: Cluster, mig_settings: Settings, node: GpuNode,
                              record: Callable[[str, object], None]) -> tuple[str, None] | tuple[None, str]:
    """(config, None): a config of the cluster's mig-parted file that gives the GPU MIG devices (all-balanced, else
    a uniform all-<profile> config), for the test to apply under mixed; or (None, why it may not reconfigure)."""
    if not gpu.mig_capable:
        return None, f"{gpu.key} is not MIG capable"
    if not mig_cluster.allow_changes:
        return None, "the run may not change the cluster (--mig-allow-reconfigure allows it)"
    if mig_settings.strategy not in (None, "mixed"):
        return None, f"--mig-strategy={mig_settings.strategy}, and GFD publishes them under mixed"
    spec = node_config(mig_cluster, node, record)
    name = mig_cluster.node_mig_config(node.name).config_map
    config = "all-balanced" if "all-balanced" in configs_for_node([gpu], spec) else single_strategy_config(gpu, spec)
    return (config, None) if config else (None, f"ConfigMap {name} has no config with MIG devices for {gpu.key}")


def test_mig_labels_match_profile_table(mig_node: GpuNode, mig_cluster: Cluster, mig_settings: Settings,
                                        mig_reconfigure: Callable[..., GpuNode],
                                        mig_record: Callable[..., None],
                                        request: pytest.FixtureRequest) -> None:
    """Every nvidia.com/mig-<profile>.* label GFD publishes equals the catalog's numbers for that profile.

    GFD publishes them under the mixed strategy for the MIG devices a node has. A node that shows none now (every
    node of a fresh cluster: the GPU Operator's default config is all-disabled) is first reconfigured to
    all-balanced under mixed where the run may change the cluster (sim, local, --mig-allow-reconfigure), so that
    the check runs by default; a read-only run checks what a node publishes and skips, saying why, where it
    publishes nothing. The change is journaled and restored like any other suite's."""
    gpu = node_gpu_models(mig_node)[0]
    node = mig_cluster.get_node(mig_node.name)  # as it is now (mig_node is the node as collected)
    mig_record(category="catalog", node=node.name, instance_type=node.instance_type, gpu_model=gpu.key,
               config=node.labels.get(L.MIG_CONFIG), strategy=node.labels.get(L.MIG_STRATEGY))
    published = _published_profiles(node)
    if not published:
        config, why_not = _config_to_publish_labels(gpu, mig_cluster, mig_settings, node, report_property(request))
        if config is None:
            pytest.skip(f"{node.name} publishes no MIG profile labels now (MIG disabled or strategy not mixed) and is "
                        f"not reconfigured: {why_not}")
        mig_record(config=config, strategy="mixed")
        node = mig_reconfigure(node, config, "mixed")
        state = node.labels.get(L.MIG_CONFIG_STATE)
        assert state == SUCCESS, f"{node.name}: {config} under mixed did not apply (state {state}): no MIG profile " \
                                 "labels to check"
        published = _published_profiles(node)
        assert published, f"{node.name}: GFD publishes no nvidia.com/mig-<profile>.* labels with {config} under mixed"
    expected: dict[str, object] = {}
    measured: dict[str, object] = {}
    # profile memory differs by driver branch: compare with the numbers of the driver the node runs (a driver label
    # the kit cannot read: the catalog's rows; a mismatch shows both numbers)
    with contextlib.suppress(ValueError):
        gpu = gpu.at_driver(node.labels.get(L.CUDA_DRIVER_FULL))
    unknown = [name for name in published if gpu.profile(name) is None]
    assert not unknown, f"{node.name}: GFD reports {', '.join(unknown)}, which {gpu.key} does not have"
    for name in published:
        profile = gpu.profile(name)
        assert profile is not None
        for key, value in (("multiprocessors", profile.sm), ("slices.gi", profile.slices),
                           ("memory", profile.memory_mib)):
            got = node.labels.get(f"{L.MIG_RESOURCE_PREFIX}{name}.{key}")
            if value is not None and got is not None:
                expected[f"{name}.{key}"], measured[f"{name}.{key}"] = str(value), got
    mig_record(expected=expected, measured=measured)
    mismatches = {k: (measured[k], v) for k, v in expected.items() if measured[k] != v}
    assert not mismatches, f"{node.name}: labels differ from the {gpu.key} profile table: {mismatches}"
