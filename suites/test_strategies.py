"""Strategies: single, mixed (every uniform profile config) and all-balanced yield the expected slices."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from mig_conformance.k8s.node_hardware import node_gpu_models, not_applicable_note
from mig_conformance.mig.plans import single_strategy_config, uniform_configs
from mig_conformance.mig.profile_indices import BASE_GI_INDICES
from mig_conformance.suites._helpers import apply_and_check, node_config, report_property

if TYPE_CHECKING:
    from mig_conformance.cluster.base import Cluster
    from mig_conformance.k8s.model import GpuNode
    from mig_conformance.k8s.projection import NodeProjection
    from mig_conformance.plugin.settings import Settings

pytestmark = pytest.mark.mig_disruptive


def _skip_other_strategy(mig_settings: Settings, strategy: str) -> None:
    if mig_settings.strategy and mig_settings.strategy != strategy:
        pytest.skip(f"--mig-strategy={mig_settings.strategy}: not testing strategy {strategy}")


@pytest.mark.mig_category("single")
def test_single_strategy(mig_node: GpuNode, mig_cluster: Cluster, mig_settings: Settings,
                         mig_reconfigure: Callable[..., GpuNode], mig_expect: Callable[..., NodeProjection],
                         mig_record: Callable[..., None], request: pytest.FixtureRequest) -> None:
    _skip_other_strategy(mig_settings, "single")
    gpus = node_gpu_models(mig_node)
    config = single_strategy_config(gpus[0], node_config(mig_cluster, mig_node, report_property(request)))
    if not gpus[0].mig_capable or config is None:
        pytest.skip(f"{mig_node.name}: no uniform config for {gpus[0].key} in the cluster's mig-parted config")
    node, expected = apply_and_check(mig_node, mig_reconfigure, mig_expect, mig_record, "single", config, "single")
    product = node.labels.get("nvidia.com/gpu.product", "")
    assert product.endswith("-MIG-" + expected.gpus[0].devices[0]), \
        f"{node.name}: under single strategy gpu.product should end in -MIG-<profile>, got {product}"


MIXED_PROFILES = tuple(BASE_GI_INDICES)


@pytest.mark.mig_category("mixed")
@pytest.mark.parametrize("size", MIXED_PROFILES)
def test_mixed_strategy_uniform_profile(mig_node: GpuNode, size: str, mig_cluster: Cluster, mig_settings: Settings,
                                        mig_reconfigure: Callable[..., GpuNode],
                                        mig_expect: Callable[..., NodeProjection],
                                        mig_record: Callable[..., None],
                                        request: pytest.FixtureRequest) -> None:
    _skip_other_strategy(mig_settings, "mixed")
    gpu = node_gpu_models(mig_node)[0]
    config = uniform_configs(gpu, node_config(mig_cluster, mig_node, report_property(request))).get(size)
    if not gpu.mig_capable or config is None:
        pytest.skip(f"{mig_node.name}: {gpu.key} has no {size} profile with an all-<profile> config")
    apply_and_check(mig_node, mig_reconfigure, mig_expect, mig_record, "mixed", config, "mixed")


@pytest.mark.mig_category("all-balanced")
def test_all_balanced(mig_node: GpuNode, mig_cluster: Cluster, mig_settings: Settings,
                      mig_reconfigure: Callable[..., GpuNode], mig_expect: Callable[..., NodeProjection],
                      mig_record: Callable[..., None], request: pytest.FixtureRequest) -> None:
    strategy = mig_settings.strategy or "mixed"
    if "all-balanced" not in node_config(mig_cluster, mig_node, report_property(request)).configs:
        pytest.skip(f"{mig_node.name}: its mig-parted config ({mig_cluster.node_mig_config(mig_node.name).line()}) "
                    "has no all-balanced")
    gpu = node_gpu_models(mig_node)[0]
    if not gpu.mig_capable:
        pytest.skip(f"{mig_node.name}: {gpu.key} is not MIG capable{not_applicable_note(mig_node)}")
    _, expected = apply_and_check(mig_node, mig_reconfigure, mig_expect, mig_record, "all-balanced",
                                  "all-balanced", strategy)
    assert expected.state == "success", f"all-balanced should apply on {gpu.key}: {expected.reason}"
