"""The local backend's agents behave as the chosen stack: device plugin v0.17.4 (GPU Operator v25.3.4) folds
`1g.10gb+me` into `nvidia.com/mig-1g.10gb`, GFD writes the R550 profile memory of driver 550.54.15 and
`nvidia.com/vgpu.present=false`, and the ClusterPolicy records the versions (what detection reads back)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mig_conformance.cluster.local.backend import LocalCluster
from mig_conformance.cluster.stack_detect import detect
from mig_conformance.k8s import labels as L
from mig_conformance.k8s import stack
from support.control_plane import control_plane_assets

CHOICE = "gpu-operator=v25.3.4,driver=550.54.15"


@pytest.fixture(scope="module")
def local() -> Iterator[LocalCluster]:
    control_plane_assets()
    profile = stack.resolve([(stack.parse_choices(CHOICE, "test"), "option --mig-stack")])
    cluster = LocalCluster.start("p5.48xlarge", agents=True, mig_manager_delay=0.0, stack=profile)
    yield cluster
    cluster.close()


def _apply(cluster: LocalCluster, config: str) -> dict[str, str]:
    (node,) = cluster.list_gpu_nodes()
    cluster.request_mig_config(node.name, config)
    done = cluster.wait_for_node(node.name, lambda n: n.labels.get(L.MIG_CONFIG) == config and
                                 n.labels.get(L.MIG_CONFIG_STATE) == "success" and
                                 n.allocatable.get("nvidia.com/gpu") == 0 and
                                 any(k.startswith("nvidia.com/mig-") and v for k, v in n.allocatable.items()),
                                 60, f"{config} applied")
    return {**done.labels, **{f"allocatable:{k}": str(v) for k, v in done.allocatable.items()
                              if k.startswith("nvidia.com/") and v}}


def test_the_agents_model_the_chosen_versions(local: LocalCluster) -> None:
    assert local.stack.device_plugin.value == "v0.17.4" and local.stack.driver.value == "550.54.15"
    got = _apply(local, "all-balanced")
    assert got["nvidia.com/cuda.driver-version.full"] == "550.54.15"
    assert got["nvidia.com/mig-3g.40gb.memory"] == "40320"  # R550 (R580: 40448)
    assert got["nvidia.com/vgpu.present"] == "false"
    got = _apply(local, "all-1g.10gb.me")
    assert got["allocatable:nvidia.com/mig-1g.10gb"] == "8" and "allocatable:nvidia.com/mig-1g.10gb.me" not in got
    assert "nvidia.com/mig-1g.10gb.me.memory" not in got  # unknown under R550: left out, never R580's number


def test_the_cluster_policy_records_the_versions(local: LocalCluster) -> None:
    found = detect(local)
    assert found.components["gpu_operator"].value == "v25.3.4"
    assert found.components["mig_manager"].value == "v0.12.3"
    assert found.components["device_plugin"].value == "v0.17.4"
    assert found.components["driver"].value == "550.54.15"  # GFD's label on the node
    assert "label nvidia.com/cuda.driver-version.full" in found.components["driver"].source
