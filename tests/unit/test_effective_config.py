"""Which file mig-manager reads per node (generated, custom, static, fallback), keyed by the stack's versions, on the
sim backend and in the projection; custom files through spec.migManager.config.name (GPU Operator v26.3.0+)."""

from __future__ import annotations

import pytest
import yaml

from mig_conformance.cluster.base import CUSTOM_CONFIG_MAP
from mig_conformance.cluster.journal import ChangeKind
from mig_conformance.cluster.sim.backend import SimCluster
from mig_conformance.k8s import labels as L
from mig_conformance.k8s import mig_config as MC
from mig_conformance.k8s import stack as stack_mod
from mig_conformance.k8s.node_hardware import node_gpu_models
from mig_conformance.k8s.projection import project_node
from mig_conformance.mig import generate as G
from mig_conformance.mig.default_config import CONFIG_MAP, default_config_text

P5 = "sim-p5-48xlarge-0"
OLD = stack_mod.resolve([({"gpu_operator": "v25.10.1"}, "test")])  # mig-manager v0.13.1: the static map
NEW_OPERATOR_OLD_MANAGER = stack_mod.resolve([({"gpu_operator": "v26.3.0", "mig_manager": "v0.13.1"}, "test")])
OPERATOR_2510_MANAGER_014 = stack_mod.resolve([({"gpu_operator": "v25.10.1", "mig_manager": "v0.14.0"}, "test")])
USER = yaml.safe_dump({"version": "v1", "mig-configs": {
    "all-disabled": [{"devices": "all", "mig-enabled": False}],
    "training": [{"devices": "all", "mig-enabled": True, "mig-devices": {"3g.40gb": 2}}]}})


def _nonzero(cluster: SimCluster, node: str) -> dict[str, int]:
    return {k: v for k, v in cluster.get_node(node).allocatable.items() if k.startswith("nvidia.com/") and v}


def test_default_stack_generates_node_config_maps() -> None:
    cluster = SimCluster("p5.48xlarge,p4d.24xlarge,g5.xlarge", allow_changes=True)
    effective = cluster.node_mig_config(P5)
    assert (effective.kind, effective.config_map) == (MC.GENERATED, f"{P5}-mig-config")
    text, labels = cluster.read_config_map(f"{P5}-mig-config") or ("", {})
    assert labels == {"app.kubernetes.io/component": "nvidia-mig-manager", "nvidia.com/node-name": P5}
    assert text.startswith(G.HEADER) and "all-1g.10gb.me:" in text and "device-filter" not in text
    assert "all-1g.5gb:" in cluster.read_config_map("sim-p4d-24xlarge-0-mig-config")[0]  # type: ignore[index]
    assert cluster.read_config_map("sim-g5-xlarge-0-mig-config") is None  # no MIG: no mig-manager
    assert cluster.policy_config_name() is None
    assert cluster.get_node(P5).labels[L.MIG_CONFIG_STATE] == "success"  # the operator's all-disabled


def test_p5_all_1g_10gb_gives_56_devices() -> None:
    cluster = SimCluster("p5.48xlarge", allow_changes=True)
    cluster.set_node_label(P5, L.MIG_CONFIG, "all-1g.10gb")
    assert cluster.get_node(P5).labels[L.MIG_CONFIG_STATE] == "success"
    assert _nonzero(cluster, P5) == {"nvidia.com/mig-1g.10gb": 56}


def test_a_static_only_name_fails_on_a_generated_config() -> None:
    """all-1g.5gb is in the static map (for A100) but not in an H100's generated file: mig-manager fails it at
    --valid-config, and the projection says so too."""
    cluster = SimCluster("p5.48xlarge", allow_changes=True)
    cluster.set_node_label(P5, L.MIG_CONFIG, "all-1g.5gb")
    node = cluster.get_node(P5)
    assert node.labels[L.MIG_CONFIG_STATE] == "failed"
    spec = cluster.node_mig_config(P5).spec
    assert project_node(node_gpu_models(node), "mixed", spec, "all-1g.5gb").state == "failed"


@pytest.mark.parametrize(("stack", "kind"), [(OLD, MC.STATIC), (NEW_OPERATOR_OLD_MANAGER, MC.STATIC),
                                             (OPERATOR_2510_MANAGER_014, MC.STATIC)])
def test_older_versions_read_the_static_map(stack: stack_mod.StackProfile, kind: str) -> None:
    cluster = SimCluster("p5.48xlarge", allow_changes=True, stack=stack)
    effective = cluster.node_mig_config(P5)
    assert (effective.kind, effective.config_map, effective.text) == (kind, CONFIG_MAP, default_config_text())
    assert cluster.read_config_map(f"{P5}-mig-config") is None


def test_legacy_driver_falls_back_to_the_static_map() -> None:
    cluster = SimCluster("p5.48xlarge", allow_changes=True, driver="535.183.01")
    effective = cluster.node_mig_config(P5)
    assert (effective.kind, effective.config_map) == (MC.FALLBACK, CONFIG_MAP)
    assert "no MIG profiles discovered" in effective.why
    assert cluster.read_config_map(f"{P5}-mig-config") is None


def test_generated_config_is_the_projections_and_expect_agrees() -> None:
    cluster = SimCluster("p5.48xlarge,p4d.24xlarge,p5.4xlarge", allow_changes=True)
    for node in cluster.list_gpu_nodes():
        spec = cluster.node_mig_config(node.name).spec
        gpus = node_gpu_models(node)
        assert spec.configs.keys() == G.generate([(g, g.primary_variant.pci_device_id) for g in gpus]).keys()
        for config in ("all-balanced", "all-1g.20gb", "all-7g.80gb", "all-enabled"):
            want = project_node(gpus, "mixed", spec, config, current=None)
            cluster.set_node_label(node.name, L.MIG_CONFIG, "all-disabled")
            cluster.set_node_label(node.name, L.MIG_CONFIG, config)
            got = cluster.get_node(node.name)
            assert got.labels[L.MIG_CONFIG_STATE] == want.state, (node.name, config)
            if want.state == "success":
                assert _nonzero(cluster, node.name) == {k: v for k, v in want.allocatable.items() if v}


def test_custom_file_by_name_and_exact_restore() -> None:
    """v26.3+: the user's file becomes ConfigMap mig-conformance-config named by the ClusterPolicy (journaled
    first); mig-manager restarts with it; restore puts the name and the ConfigMaps back exactly."""
    cluster = SimCluster("p5.48xlarge", allow_changes=True)
    before = (cluster.policy_config_name(), dict(cluster.config_maps))
    assert cluster.set_mig_config(USER) == CUSTOM_CONFIG_MAP
    kinds = [c.kind for c in cluster.journal.changes]
    assert kinds == [ChangeKind.CONFIG_MAP, ChangeKind.MIG_CONFIG_NAME]
    assert [c.original for c in cluster.journal.changes] == [None, None]
    assert cluster.policy_config_name() == CUSTOM_CONFIG_MAP
    effective = cluster.node_mig_config(P5)
    assert (effective.kind, effective.config_map) == (MC.CUSTOM, CUSTOM_CONFIG_MAP)
    cluster.set_node_label(P5, L.MIG_CONFIG, "training")
    assert _nonzero(cluster, P5) == {"nvidia.com/mig-3g.40gb": 16}
    cluster.restore()
    assert (cluster.policy_config_name(), cluster.config_maps) == before
    assert cluster.node_mig_config(P5).kind == MC.GENERATED
    assert cluster.get_node(P5).labels[L.MIG_CONFIG] == "all-disabled"
    assert cluster.get_node(P5).labels[L.MIG_CONFIG_STATE] == "success"
    assert _nonzero(cluster, P5) == {"nvidia.com/gpu": 8}  # all-disabled again: whole GPUs


def test_restart_reapplies_the_current_label() -> None:
    """A new config name restarts mig-manager, which runs once more for the label it finds (AddFunc): a file without
    that name fails the node, as the real one would."""
    cluster = SimCluster("p5.48xlarge", allow_changes=True)
    runs = len(cluster.mig_manager_runs(P5))
    cluster.set_mig_config(USER.replace("all-disabled", "off"))
    assert len(cluster.mig_manager_runs(P5)) == runs + 1
    assert cluster.get_node(P5).labels[L.MIG_CONFIG_STATE] == "failed"


def test_older_operator_keeps_patching_the_named_map() -> None:
    cluster = SimCluster("p5.48xlarge", allow_changes=True, stack=OLD)
    assert cluster.set_mig_config(USER) == CONFIG_MAP
    assert [c.kind for c in cluster.journal.changes] == [ChangeKind.MIG_CONFIG]
    assert cluster.policy_config_name() == CONFIG_MAP and cluster.node_mig_config(P5).text == USER
    cluster.restore()
    assert cluster.node_mig_config(P5).text == default_config_text()


def test_config_name_changes_survive_a_journal_file_and_read_well(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A killed run's journal holds the new kinds; `mig-conformance restore` describes them."""
    from mig_conformance.cluster.base import describe_change, restore_sequence
    from mig_conformance.cluster.journal import Journal

    path = tmp_path / "journal.json"
    cluster = SimCluster("p5.48xlarge", allow_changes=True, journal=Journal(path, "r1", "sim"))
    cluster.set_mig_config(USER)
    cluster.set_node_label(P5, "example.com/x", "1")
    loaded = Journal.load(path)
    assert [describe_change(c) for c in restore_sequence(loaded.changes)] == [
        "ClusterPolicy spec.migManager.config.name (removed)", "ConfigMap mig-conformance-config (deleted)",
        f"node {P5} label example.com/x(removed)"]
