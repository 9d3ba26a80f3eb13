"""The simulated GPU Operator agents of the `local` backend (mig_conformance.simulators.agents): the pure functions
(resources, labels, policy, work queue), which take no API. The agents runtime and the agents process against a real
control plane are in tests/control_plane/test_agents_local.py.
"""
from __future__ import annotations

import copy
import time
from pathlib import Path

import pytest

from mig_conformance.gpus.instance_types import load_instance_types
from mig_conformance.k8s import labels as L
from mig_conformance.mig.default_config import default_config_text
from mig_conformance.mig.spec import parse_spec_text
from mig_conformance.mig.state import GpuMigState
from mig_conformance.simulators import nvml as nv
from mig_conformance.simulators.agents import device_plugin, gfd, gpu_operator
from mig_conformance.simulators.agents.context import Policy
from mig_conformance.simulators.agents.node import gpu_models, load_nvml, save_nvml
from mig_conformance.simulators.agents.workqueue import WorkQueue
from mig_conformance.simulators.node_gpus import ActiveRun, NodeGpus

P5 = "gpu-p5-0"
BALANCED_H100 = {"nvidia.com/mig-1g.10gb": 16, "nvidia.com/mig-2g.20gb": 8, "nvidia.com/mig-3g.40gb": 8}


def p5_states(config: str | None) -> tuple[GpuMigState, ...]:
    """The GPUs of a p5.48xlarge after mig-parted applied `config` (None: fresh)."""
    gpus = NodeGpus(nv.NvmlSimulator.from_instance_type("p5.48xlarge", "n"), time.monotonic)
    if config:
        assert gpus.parted.apply(parse_spec_text(default_config_text()), config).ok
    return gpus.gpu_states()


# ---- pure functions ---------------------------------------------------------------------------------


def test_mixed_all_balanced_resources_and_zero_for_what_kubelet_keeps() -> None:
    want, error = device_plugin.desired("mixed", p5_states("all-balanced"), {"nvidia.com/gpu": "8", "cpu": "192"})
    assert error is None
    assert want == {"nvidia.com/gpu": 0, **BALANCED_H100}


def test_single_all_1g_is_56_gpus_and_a_failing_plugin_zeroes_everything() -> None:
    assert device_plugin.desired("single", p5_states("all-1g.10gb"), {})[0] == {"nvidia.com/gpu": 56}
    registered = {"nvidia.com/gpu": "56", "nvidia.com/mig-3g.40gb": "8"}
    want, error = device_plugin.desired("single", p5_states("all-balanced"), registered)
    assert error and "more than one MIG device type" in error
    assert want == {"nvidia.com/gpu": 0, "nvidia.com/mig-3g.40gb": 0}


def test_status_patch_only_when_different_and_only_plugin_resources() -> None:
    node = {"status": {"capacity": {"cpu": "192", "nvidia.com/gpu": "8"}, "allocatable": {"nvidia.com/gpu": "8"}}}
    assert device_plugin.status_patch(node, {"nvidia.com/gpu": 8}) is None
    assert device_plugin.status_patch(node, {"nvidia.com/gpu": 0, "nvidia.com/mig-1g.10gb": 56}) == {
        "capacity": {"nvidia.com/gpu": "0", "nvidia.com/mig-1g.10gb": "56"},
        "allocatable": {"nvidia.com/gpu": "0", "nvidia.com/mig-1g.10gb": "56"}}
    # an allocatable that someone else reset is repaired even when capacity is right
    node["status"]["allocatable"] = {}
    assert device_plugin.status_patch(node, {"nvidia.com/gpu": 8}) is not None
    assert device_plugin.plugin_resource("nvidia.com/mig-1g.10gb.me")
    assert not device_plugin.plugin_resource("cpu")


def test_gfd_patch_removes_only_labels_it_set_before() -> None:
    node = {"metadata": {"labels": {L.MIG_CONFIG: "all-balanced", "nvidia.com/gpu.deploy.mig-manager": "true",
                                    "nvidia.com/mig-3g.40gb.count": "8", "nvidia.com/mig-2g.20gb.count": "8",
                                    "nvidia.com/mig.strategy": "mixed", "nvidia.com/custom": "x"},
                         "annotations": {gfd.FEATURE_LABELS: "nvidia.com/mig-3g.40gb.count,nvidia.com/mig.strategy"}}}
    patch = gfd.metadata_patch(node, {"nvidia.com/mig.strategy": "single", "nvidia.com/gpu.count": "56"})
    assert patch["labels"] == {"nvidia.com/mig.strategy": "single", "nvidia.com/gpu.count": "56",
                               "nvidia.com/mig-3g.40gb.count": None}  # 2g.20gb was not GFD's, so it stays
    assert patch["annotations"] == {gfd.FEATURE_LABELS: "nvidia.com/gpu.count,nvidia.com/mig.strategy"}
    unchanged = copy.deepcopy(node)
    unchanged["metadata"]["labels"]["nvidia.com/mig.strategy"] = "single"
    unchanged["metadata"]["labels"]["nvidia.com/gpu.count"] = "56"
    unchanged["metadata"]["labels"].pop("nvidia.com/mig-3g.40gb.count")
    unchanged["metadata"]["annotations"][gfd.FEATURE_LABELS] = "nvidia.com/gpu.count,nvidia.com/mig.strategy"
    assert gfd.metadata_patch(unchanged, {"nvidia.com/mig.strategy": "single", "nvidia.com/gpu.count": "56"}) == {}


def test_gfd_labels_follow_the_projection() -> None:
    labels = gfd.gfd_labels("mixed", p5_states("all-balanced"), nv.DRIVER_580)
    assert labels["nvidia.com/mig-3g.40gb.count"] == "8" and labels["nvidia.com/mig.strategy"] == "mixed"
    assert labels["nvidia.com/cuda.driver-version.full"] == nv.DRIVER_580
    assert not any(k in labels for k in (L.MIG_CONFIG, L.MIG_CONFIG_STATE, L.GPU_PRESENT))
    assert gfd.gfd_labels("mixed", (), None) == {}


def test_operator_labels_default_config_only_on_first_sight_of_mig_capable_nodes() -> None:
    assert gpu_operator.operator_labels({}, True, "all-disabled", True) == {
        "nvidia.com/gpu.deploy.mig-manager": "true", L.MIG_CONFIG: "all-disabled"}
    assert gpu_operator.operator_labels({}, True, "all-disabled", False) == {
        "nvidia.com/gpu.deploy.mig-manager": "true"}
    assert gpu_operator.operator_labels({L.MIG_CONFIG: "all-balanced", "nvidia.com/gpu.deploy.mig-manager": "true"},
                                        True, "all-disabled", True) == {}
    assert gpu_operator.operator_labels({}, False, "all-disabled", True) == {}


def test_policy_from_cluster_policy() -> None:
    assert Policy.from_object(None) == Policy("single", None, None, False)  # an empty name: k8s/mig_config.py decides
    spec = {"mig": {"strategy": "mixed"},
            "migManager": {"config": {"name": "custom", "default": "all-disabled"},
                           "env": [{"name": "WITH_REBOOT", "value": "true"}]}}
    assert Policy.from_object({"spec": spec}) == Policy("mixed", "custom", "all-disabled", True)


def test_gpus_from_instance_type_or_annotation() -> None:
    it = load_instance_types()["p4d.24xlarge"]
    assert [m.key for m in gpu_models({"metadata": {"name": "a", "labels": {L.INSTANCE_TYPE: "p4d.24xlarge"}}})] == \
        [it.gpu] * it.gpu_count
    listed = {"metadata": {"name": "b", "annotations": {"mig-conformance.io/gpus": "H100-80GBx2+A10G-24GB"}}}
    assert [m.key for m in gpu_models(listed)] == ["H100-80GB", "H100-80GB", "A10G-24GB"]
    assert gpu_models({"metadata": {"name": "c", "labels": {L.INSTANCE_TYPE: "m5.large"}}}) is None
    assert gpu_models({"metadata": {"name": "d", "annotations": {"mig-conformance.io/gpus": "NoSuchGPU"}}}) is None


def test_saved_gpu_state_is_restored_only_for_the_same_node_object(tmp_path: Path) -> None:
    models = load_instance_types()["p5.48xlarge"].gpus()
    sim = nv.NvmlSimulator(models, P5)
    gpus = NodeGpus(sim, time.monotonic)
    assert gpus.parted.apply(parse_spec_text(default_config_text()), "all-balanced").ok
    save_nvml(tmp_path, sim, "uid-1")
    restored = NodeGpus(load_nvml(tmp_path, P5, "uid-1", models, nv.DRIVER_580), time.monotonic)
    assert restored.gpu_states() == gpus.gpu_states()
    fresh = NodeGpus(load_nvml(tmp_path, P5, "uid-2", models, nv.DRIVER_580), time.monotonic)
    assert not any(g.mig_enabled for g in fresh.gpu_states())


def test_mig_manager_run_steps_and_unknown_config() -> None:
    spec = parse_spec_text(default_config_text())
    gpus = NodeGpus(nv.NvmlSimulator.from_instance_type("p5.48xlarge", P5), lambda: 0.0)
    written: list[str] = []
    gpus.current = ActiveRun("all-balanced", 0.0)
    waits = list(gpus.mig_manager_run(spec, "all-balanced", False, 0.5, written.append))
    assert (written, waits) == (["pending", "success"], [0.5])
    gpus.current = ActiveRun("all-balanced", 0.0)
    assert list(gpus.mig_manager_run(spec, "all-balanced", False, 0.5, written.append)) == []
    gpus.current = ActiveRun("nope", 0.0)
    assert list(gpus.mig_manager_run(spec, "nope", False, 0.5, written.append)) == []
    assert written[2:] == ["success", "failed"]
    assert "nope" in (gpus.current.reason or "")


def test_work_queue_dedupes_serialises_and_delays() -> None:
    now = [0.0]
    q = WorkQueue(clock=lambda: now[0])
    q.add("a")
    q.add("a")
    q.add("b")
    assert q.get() == "a"
    q.add("a")  # while a is processed: once more afterwards, not in parallel
    assert q.get() == "b"
    q.done("b")
    q.done("a")
    assert q.get() == "a"
    q.done("a")
    q.add_after("c", 5.0)
    assert q.idle()
    now[0] = 5.0
    assert q.get() == "c"
    q.done("c")
    q.shut_down()
    assert q.get() is None


def test_main_rejects_bad_options_and_kubeconfig(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mig_conformance.simulators.agents.__main__ import main

    assert main(["--kubeconfig", str(tmp_path / "missing"), "--log", str(tmp_path / "a.log")]) == 2
    assert main(["--kubeconfig", str(tmp_path / "missing"), "--mig-manager-delay", "-1"]) == 2
    assert "agents: error: --mig-manager-delay must be >= 0" in capsys.readouterr().err
