"""The sim backend's Bottlerocket nodes (`NODE@bottlerocket`, clusters-file key `bottlerocket_settings`): MIG from
the settings at boot, nvidia.com/gpu only, no mig-manager and no GFD; the label does nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from mig_conformance.cluster.base import ClusterError
from mig_conformance.cluster.sim.backend import SimCluster
from mig_conformance.cluster.sim.fleet import parse_fleet
from mig_conformance.k8s import bottlerocket
from mig_conformance.k8s import labels as L

USER_DATA = ('[settings.kubelet-device-plugins.nvidia]\ndevice-partitioning-strategy = "mig"\n'
             '[settings.kubelet-device-plugins.nvidia.mig.profile]\n"h100.80gb" = "4"\n"a100.40gb" = "3"\n')


def test_fleet_items_take_a_flavour() -> None:
    nodes = parse_fleet("p5.48xlarge*2@bottlerocket,p5.48xlarge")
    assert [(n.name, n.os) for n in nodes] == [("sim-p5-48xlarge-br-0", "bottlerocket"),
                                               ("sim-p5-48xlarge-br-1", "bottlerocket"), ("sim-p5-48xlarge-0", "linux")]
    with pytest.raises(ClusterError, match="unknown node flavour 'flatcar'"):
        parse_fleet("p5.48xlarge@flatcar")


def test_kind_refuses_the_flavour_and_local_nodes_carry_it() -> None:
    from mig_conformance.cluster.local.nodes import plan
    from mig_conformance.cluster.sim.fleet import refuse_flavours

    with pytest.raises(ClusterError, match="simulated by the sim and local backends only"):
        refuse_flavours(parse_fleet("p5.48xlarge@bottlerocket"), "kind")
    br, plain = plan("p5.48xlarge@bottlerocket,p5.48xlarge", bottlerocket_settings=USER_DATA)
    assert bottlerocket.is_bottlerocket(br.body["status"]["nodeInfo"]["osImage"])
    assert br.body["metadata"]["annotations"][bottlerocket.SETTINGS_ANNOTATION] == USER_DATA
    assert "nodeInfo" not in plain.body["status"]


def test_a_bottlerocket_node_boots_with_its_settings(tmp_path: Path) -> None:
    settings = tmp_path / "user-data.toml"
    settings.write_text(USER_DATA)
    cluster = SimCluster("p5.48xlarge@bottlerocket,p4d.24xlarge@bottlerocket,p5.48xlarge",
                         bottlerocket_settings=str(settings), allow_changes=True)
    nodes = {n.name: n for n in cluster.list_gpu_nodes()}
    p5, p4d, plain = nodes["sim-p5-48xlarge-br-0"], nodes["sim-p4d-24xlarge-br-0"], nodes["sim-p5-48xlarge-0"]
    assert bottlerocket.is_bottlerocket(p5.os_image) and plain.os_image is None
    assert p5.extended() == {"nvidia.com/gpu": 32} and p4d.extended() == {"nvidia.com/gpu": 24}
    assert not [k for k in p5.labels if k.startswith("nvidia.com/") and k != L.GPU_PRESENT]  # no GFD, no mig-manager
    assert plain.labels[L.MIG_CONFIG_STATE] == "success"  # the GPU Operator node beside it is as before
    assert cluster.describe()["bottlerocket"]["settings"] == str(settings)
    # the GPU Operator's label means nothing there; a strategy change does not reach its device plugin
    cluster.request_mig_config(p5.name, "all-balanced")
    cluster.set_mig_strategy("single")
    after = cluster.get_node(p5.name)
    assert after.extended() == {"nvidia.com/gpu": 32} and L.MIG_CONFIG_STATE not in after.labels


def test_without_settings_every_gpu_gets_its_largest_profile() -> None:
    node = SimCluster("p5.48xlarge@bottlerocket").list_gpu_nodes()[0]
    assert node.extended() == {"nvidia.com/gpu": 8}


def test_mps_with_mig_advertises_nothing(tmp_path: Path) -> None:
    settings = tmp_path / "mps.toml"
    settings.write_text(USER_DATA.replace('"mig"\n', '"mig"\ndevice-sharing-strategy = "mps"\n', 1))
    cluster = SimCluster("p5.48xlarge@bottlerocket", bottlerocket_settings=str(settings))
    node = cluster.list_gpu_nodes()[0]
    assert node.extended() == {}
    assert "mutually exclusive" in (cluster.device_plugin_error(node.name) or "")


def test_the_projection_and_the_simulator_agree(tmp_path: Path) -> None:
    """expect --bottlerocket-settings (k8s/bottlerocket.project) and a simulated node give the same resources."""
    settings = tmp_path / "s.toml"
    for value in ("1", "2", "3", "4", "7", "1g.20gb", "four"):
        settings.write_text(USER_DATA.replace('"h100.80gb" = "4"', f'"h100.80gb" = "{value}"'))
        node = SimCluster("p5.48xlarge@bottlerocket", bottlerocket_settings=str(settings)).list_gpu_nodes()[0]
        projected = bottlerocket.project(bottlerocket.load_settings(settings), *_p5())
        assert {k: v for k, v in projected.allocatable.items() if v} == node.extended(), value


def _p5() -> tuple[list, str]:
    from mig_conformance.gpus.instance_types import get_instance_type

    return get_instance_type("p5.48xlarge").gpus(), "p5"
