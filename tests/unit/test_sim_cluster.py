"""The sim backend: mig-manager through the NVML and mig-parted simulators, device plugin, GFD, scheduler, journal,
simulated clock, and the target registry."""

from __future__ import annotations

import time

import pytest
import yaml

from mig_conformance.cluster.base import ChangeNotAllowed, ClusterError, WaitTimeout
from mig_conformance.cluster.registry import open_cluster, parse_target
from mig_conformance.cluster.sim.backend import SimCluster
from mig_conformance.cluster.sim.fleet import MAX_NODES, default_fleet, parse_fleet
from mig_conformance.cluster.targets import Target
from mig_conformance.gpus.instance_types import load_instance_types
from mig_conformance.k8s import labels as L
from mig_conformance.k8s import stack as stack_mod
from mig_conformance.k8s.model import PodRequest
from mig_conformance.k8s.node_hardware import node_gpu_models
from mig_conformance.k8s.projection import project_node
from mig_conformance.mig.default_config import default_config_text, default_spec
from mig_conformance.mig.spec import parse_spec_text
from mig_conformance.simulators.mig_parted import MigParted

#: a stack whose mig-manager reads the static default-mig-parted-config (GPU Operator v25.10.1, mig-manager v0.13.1)
STATIC_STACK = stack_mod.resolve([({"gpu_operator": "v25.10.1"}, "tests: the static ConfigMap")])

P5 = "sim-p5-48xlarge-0"
BALANCED_H100 = {"nvidia.com/mig-1g.10gb": 16, "nvidia.com/mig-2g.20gb": 8, "nvidia.com/mig-3g.40gb": 8}


def nonzero(node) -> dict[str, int]:
    return {k: v for k, v in node.extended().items() if v}


def state(cluster: SimCluster, node: str) -> str | None:
    return cluster.get_node(node).labels.get(L.MIG_CONFIG_STATE)


def custom(configs: dict) -> str:
    return yaml.safe_dump({"version": "v1", "mig-configs": configs}, sort_keys=False)


@pytest.fixture
def p5() -> SimCluster:
    return SimCluster("p5.48xlarge", allow_changes=True, stack=STATIC_STACK)


# ---- fleet and nodes -------------------------------------------------------------------------------


def test_fleet_names_zones_and_counts() -> None:
    nodes = parse_fleet("p5.48xlarge*4,p4d.24xlarge,p5.48xlarge")
    assert [n.name for n in nodes] == [f"sim-p5-48xlarge-{i}" for i in range(4)] + [
        "sim-p4d-24xlarge-0", "sim-p5-48xlarge-4"]
    assert [n.zone for n in nodes] == ["us-west-2a", "us-west-2b", "us-west-2c"] * 2
    assert all(len(n.gpus) == 8 for n in nodes)
    assert {n.gpus[0].key for n in nodes} == {"H100-80GB", "A100-40GB"}
    mixed = parse_fleet("H100-80GBx2+A10G-24GB")[0]
    assert mixed.instance_type is None and [g.key for g in mixed.gpus] == ["H100-80GB"] * 2 + ["A10G-24GB"]


def test_default_fleet_is_every_mig_capable_instance_type() -> None:
    wanted = {name for name, it in load_instance_types().items() if it.gpu_model().mig_capable and it.mig_available}
    assert "p6e-gb200.36xlarge" not in wanted and "p6-b300.48xlarge" in wanted  # GB200 there: CDMM, no MIG
    assert set(default_fleet().split(",")) == wanted
    cluster = SimCluster()
    assert {n.instance_type for n in cluster.list_gpu_nodes()} == wanted


@pytest.mark.parametrize(("spec", "message"), [
    ("p5.48xlarge*0", "at least 1"),
    ("p5.48xlarge,,p4d.24xlarge", "empty item"),
    ("p9.huge", "not an instance type"),
    ("p5.48xlarge*10001", "10,001 nodes, more than the cap of 10,000 nodes per fleet"),
    ("p5.48xlarge*9999,p4d.24xlarge*2", "10,001 nodes, more than the cap of 10,000"),
    ("p5.48xlarge*" + "9" * 5000, "more than a trillion nodes, more than the cap of 10,000"),  # no int() overflow
])
def test_fleet_errors(spec: str, message: str) -> None:
    with pytest.raises(ClusterError, match=message):
        parse_fleet(spec)


def test_a_fleet_of_the_cap_is_accepted() -> None:
    assert len(parse_fleet(f"p5.48xlarge*{MAX_NODES - 1},p4d.24xlarge")) == MAX_NODES == 10_000


def test_node_labels_capacity_and_taint() -> None:
    cluster = SimCluster("p5.48xlarge*2", gpu_taint=True)
    node = cluster.get_node("sim-p5-48xlarge-1")
    assert node.labels[L.INSTANCE_TYPE] == "p5.48xlarge"
    assert node.labels[L.ZONE] == "us-west-2b"
    assert node.labels["kubernetes.io/hostname"] == node.name
    assert node.labels[L.GPU_PRESENT] == "true"
    assert node.labels[L.MIG_CAPABLE] == "true"
    assert node.labels[L.GPU_PRODUCT] == "NVIDIA-H100-80GB-HBM3"
    assert node.labels[L.MIG_CONFIG] == "all-disabled" and node.labels[L.MIG_CONFIG_STATE] == "success"
    assert nonzero(node) == {"nvidia.com/gpu": 8}
    assert node.capacity["cpu"] == 192 and node.allocatable == node.capacity
    assert [(t.key, t.effect) for t in node.taints] == [(L.GPU_TAINT_KEY, "NoSchedule")]
    assert [n.name for n in cluster.list_gpu_nodes({L.ZONE: "us-west-2a"})] == ["sim-p5-48xlarge-0"]
    with pytest.raises(ClusterError, match='nodes "nope" not found'):
        cluster.get_node("nope")


def test_describe() -> None:
    info = SimCluster("p5.48xlarge*2,p4d.24xlarge").describe()
    assert info["kubernetes_version"] == "sim" and info["backend"] == "sim"
    assert info["gpu_operator"] == "simulated"
    assert info["driver"] == "580.159.04 (simulated)"
    assert info["nodes"]["count"] == 3 and info["nodes"]["gpus"] == 24
    assert info["nodes"]["by_type"] == {"p4d.24xlarge": 1, "p5.48xlarge": 2}


# ---- mig-manager, device plugin, GFD ----------------------------------------------------------------


@pytest.mark.parametrize(("strategy", "config", "expected"), [
    ("mixed", "all-balanced", BALANCED_H100),
    ("single", "all-1g.10gb", {"nvidia.com/gpu": 56}),
    ("none", "all-balanced", {"nvidia.com/gpu": 8}),
])
def test_label_success_and_allocatable_follows(strategy: str, config: str, expected: dict[str, int]) -> None:
    cluster = SimCluster("p5.48xlarge", allow_changes=True, strategy=strategy)
    cluster.set_node_label(P5, L.MIG_CONFIG, config)
    node = cluster.get_node(P5)
    assert node.labels[L.MIG_CONFIG_STATE] == "success"
    assert nonzero(node) == expected
    projected = project_node(node_gpu_models(node), strategy, None, config)
    assert nonzero(node) == {k: v for k, v in projected.allocatable.items() if v}
    run = cluster.mig_manager_runs(P5)[-1]
    assert [s for _, s in run.states] == ["pending", "success"] and run.mode_change
    layout = cluster.node_nvml(P5).mig_layout(0)
    assert sorted(ci for gi in layout for ci in gi["compute_instances"]) == sorted(projected.gpus[0].devices)


@pytest.mark.slow  # 81 configs x every node type of the default fleet
def test_every_default_config_matches_the_projection() -> None:
    """The simulators (NVML + mig-parted) and the pure projection agree on every default config and node type."""
    spec = default_spec()
    for config in spec.configs:
        cluster = SimCluster(allow_changes=True, stack=STATIC_STACK)  # the static map is what mig-manager reads
        for node in cluster.list_gpu_nodes():
            cluster.set_node_label(node.name, L.MIG_CONFIG, config)
            got = cluster.get_node(node.name)
            want = project_node(node_gpu_models(got), "mixed", spec, config, driver="580.159.04",
                                device_plugin_version=STATIC_STACK.device_plugin_model)
            assert (config, got.labels[L.MIG_CONFIG_STATE]) == (config, want.state), node.name
            assert nonzero(got) == {k: v for k, v in want.allocatable.items() if v}, (config, node.name)
            assert {k: got.labels.get(k) for k in want.labels} == want.labels, (config, node.name)


def test_unknown_config_fails_at_once_and_leaves_gpus(p5: SimCluster) -> None:
    p5.set_node_label(P5, L.MIG_CONFIG, "all-balanced")
    p5.set_node_label(P5, L.MIG_CONFIG, "no-such-config")
    node = p5.get_node(P5)
    assert node.labels[L.MIG_CONFIG_STATE] == "failed"
    run = p5.mig_manager_runs(P5)[-1]
    assert [s for _, s in run.states] == ["failed"]
    assert "selected mig-config not present: no-such-config" in (run.reason or "")
    assert nonzero(node) == BALANCED_H100


def test_config_that_does_not_fit_fails_and_empties_the_gpus() -> None:
    text = custom({"too-many": [{"devices": "all", "mig-enabled": True, "mig-devices": {"3g.40gb": 3}}]})
    cluster = SimCluster("p5.48xlarge", allow_changes=True, config_text=text, default_config=None)
    cluster.set_node_label(P5, L.MIG_CONFIG, "too-many")
    run = cluster.mig_manager_runs(P5)[-1]
    assert [s for _, s in run.states] == ["pending", "failed"]
    assert "all orderings failed" in (run.reason or "")
    assert nonzero(cluster.get_node(P5)) == {}
    assert cluster.get_node(P5).allocatable["nvidia.com/gpu"] == 0  # registered before: kubelet keeps it at 0


def test_profile_not_on_this_gpu_fails() -> None:
    text = custom({"a100-only": [{"devices": "all", "mig-enabled": True, "mig-devices": {"1g.5gb": 7}}]})
    cluster = SimCluster("A100-40GB+H100-80GB", allow_changes=True, config_text=text)
    name = cluster.list_gpu_nodes()[0].name
    cluster.set_node_label(name, L.MIG_CONFIG, "a100-only")
    assert state(cluster, name) == "failed"
    assert "all orderings failed" in (cluster.mig_manager_runs(name)[-1].reason or "")
    nvml = cluster.node_nvml(name)
    assert len(nvml.mig_layout(0)) == 7 and nvml.mig_layout(1) == []  # the H100 is left MIG-enabled and empty
    assert nonzero(cluster.get_node(name)) == {"nvidia.com/mig-1g.5gb": 7}


def test_non_mig_gpu_in_the_config_fails() -> None:
    text = custom({"gpu1": [{"devices": [1], "mig-enabled": True, "mig-devices": {}}]})
    cluster = SimCluster("H100-80GB+A10G-24GB", allow_changes=True, config_text=text)
    name = cluster.list_gpu_nodes()[0].name
    cluster.set_node_label(name, L.MIG_CONFIG, "gpu1")
    assert state(cluster, name) == "failed"
    assert "cannot set MIG mode on non MIG-capable GPU" in (cluster.mig_manager_runs(name)[-1].reason or "")


def test_nodes_without_mig_capable_gpus_run_no_mig_manager() -> None:
    cluster = SimCluster("g5.xlarge", allow_changes=True)
    name = "sim-g5-xlarge-0"
    assert L.MIG_CONFIG not in cluster.get_node(name).labels  # the operator's default label is for MIG nodes
    cluster.set_node_label(name, L.MIG_CONFIG, "all-balanced")
    node = cluster.get_node(name)
    assert L.MIG_CONFIG_STATE not in node.labels and cluster.mig_manager_runs(name) == []
    assert node.labels[L.MIG_CAPABLE] == "false" and nonzero(node) == {"nvidia.com/gpu": 1}


def test_removing_the_label_leaves_the_gpus(p5: SimCluster) -> None:
    p5.set_node_label(P5, L.MIG_CONFIG, "all-balanced")
    p5.set_node_label(P5, L.MIG_CONFIG, None)
    node = p5.get_node(P5)
    assert L.MIG_CONFIG not in node.labels and nonzero(node) == BALANCED_H100
    p5.set_node_label(P5, L.MIG_CONFIG, "all-balanced")  # the same value again is a new run; already applied
    assert [s for _, s in p5.mig_manager_runs(P5)[-1].states] == ["success"]


def test_strategy_switch_readvertises_every_node() -> None:
    cluster = SimCluster("p5.48xlarge*2", allow_changes=True)
    for name in ("sim-p5-48xlarge-0", "sim-p5-48xlarge-1"):
        cluster.set_node_label(name, L.MIG_CONFIG, "all-1g.10gb")
    assert nonzero(cluster.get_node("sim-p5-48xlarge-1")) == {"nvidia.com/mig-1g.10gb": 56}
    cluster.set_mig_strategy("single")
    for node in cluster.list_gpu_nodes():
        assert nonzero(node) == {"nvidia.com/gpu": 56}
        assert node.allocatable["nvidia.com/mig-1g.10gb"] == 0
        assert node.labels[L.MIG_STRATEGY] == "single"
        assert node.labels[L.GPU_PRODUCT] == "NVIDIA-H100-80GB-HBM3-MIG-1g.10gb"
        assert "nvidia.com/mig-1g.10gb.count" not in node.labels  # mixed-only GFD labels are gone
    cluster.set_node_label("sim-p5-48xlarge-0", L.MIG_CONFIG, "all-balanced")
    assert nonzero(cluster.get_node("sim-p5-48xlarge-0")) == {}  # single: more than one MIG device type
    assert "more than one MIG device type present on node" in (cluster.device_plugin_error("sim-p5-48xlarge-0")
                                                                or "")
    assert cluster.device_plugin_error("sim-p5-48xlarge-1") is None
    with pytest.raises(ClusterError, match="unknown MIG strategy"):
        cluster.set_mig_strategy("double")


def test_config_text_change_takes_effect_at_the_next_label_change(p5: SimCluster) -> None:
    text = custom({"all-balanced": [{"devices": "all", "mig-enabled": True, "mig-devices": {"7g.80gb": 1}}],
                   "half": [{"devices": "all", "mig-enabled": True, "mig-devices": {"3g.40gb": 2}}]})
    p5.set_node_label(P5, L.MIG_CONFIG, "all-balanced")
    p5.set_mig_config(text)
    assert p5.get_mig_config() == ("default-mig-parted-config", text)
    assert nonzero(p5.get_node(P5)) == BALANCED_H100  # not re-read until the label changes
    p5.set_node_label(P5, L.MIG_CONFIG, "half")
    assert nonzero(p5.get_node(P5)) == {"nvidia.com/mig-3g.40gb": 16}


@pytest.mark.parametrize("version", ["v0.19.3", "v0.20.0"])
def test_device_plugin_names_agree_with_mig_parted(version: str) -> None:
    """The device plugin's per-device profile lookup and mig-parted's walk name the same MIG devices."""
    p5 = SimCluster("p5.48xlarge", allow_changes=True, device_plugin_version=version)
    text = custom({"odd": [{"devices": [0], "mig-enabled": True, "mig-devices": {"1g.10gb+me": 1, "1c.3g.40gb": 2}},
                           {"devices": [1, 2, 3, 4, 5, 6, 7], "mig-enabled": False}]})
    p5.set_mig_config(text)
    p5.set_node_label(P5, L.MIG_CONFIG, "odd")
    assert state(p5, P5) == "success"
    nvml = p5.node_nvml(P5)
    parted = MigParted(nvml)
    nvml.nvmlInit()
    try:
        walked = parted.get_mig_config(0)
    finally:
        nvml.nvmlShutdown()
    assert walked == {"1g.10gb+me": 1, "1c.3g.40gb": 2}
    if version == "v0.19.3":  # unanchored patterns fold +me into 1g.10gb and each CI into a whole 3g.40gb (#1462)
        assert nonzero(p5.get_node(P5)) == {"nvidia.com/gpu": 7, "nvidia.com/mig-1g.10gb": 1,
                                            "nvidia.com/mig-3g.40gb": 2}
    else:  # v0.20.0 anchors them: a compute instance matches no pattern and the plugin exits (PR #1807)
        assert nonzero(p5.get_node(P5)) == {}
        assert "'1c.3g.40gb' does not match any resource patterns" in (p5.device_plugin_error(P5) or "")
    assert p5.get_node(P5).labels["nvidia.com/mig-1g.10gb.me.count"] == "1"


def test_ampere_mode_change_with_reboot_when_a_reset_cannot_complete_it() -> None:
    cluster = SimCluster("p4d.24xlarge", allow_changes=True, with_reboot=True, gpu_reset_works=False,
                         mig_manager_delay=30)
    name = "sim-p4d-24xlarge-0"
    cluster.set_node_label(name, L.MIG_CONFIG, "all-1g.5gb")
    node = cluster.wait_for_node(name, lambda n: n.labels.get(L.MIG_CONFIG_STATE) in ("success", "failed"), 600,
                                 "all-1g.5gb")
    run = cluster.mig_manager_runs(name)[-1]
    assert run.states == ((0.0, "pending"), (30.0, "rebooting"), (60.0, "pending"), (90.0, "success"))
    assert nonzero(node) == {"nvidia.com/mig-1g.5gb": 56}


@pytest.mark.parametrize("with_reboot", [False, True])
@pytest.mark.parametrize("reset_works", [False, True])
@pytest.mark.parametrize("instance_type", ["p4d.24xlarge", "p5.48xlarge"])
def test_state_sequence_matches_the_projection(instance_type: str, with_reboot: bool, reset_works: bool) -> None:
    cluster = SimCluster(instance_type, allow_changes=True, with_reboot=with_reboot, gpu_reset_works=reset_works)
    name = cluster.list_gpu_nodes()[0].name
    cluster.set_node_label(name, L.MIG_CONFIG, "all-balanced")
    want = project_node(node_gpu_models(cluster.get_node(name)), "mixed", None, "all-balanced",
                        with_reboot=with_reboot, gpu_reset_works=reset_works)
    run = cluster.mig_manager_runs(name)[-1]
    assert tuple(s for _, s in run.states) == want.states
    assert state(cluster, name) == want.state
    assert nonzero(cluster.get_node(name)) == {k: v for k, v in want.allocatable.items() if v}


def test_config_text_that_does_not_parse_fails(p5: SimCluster) -> None:
    p5.set_mig_config("version: v1\nmig-configs: [not, a, mapping]\n")
    p5.set_node_label(P5, L.MIG_CONFIG, "all-balanced")
    assert state(p5, P5) == "failed"
    assert "Error parsing config file" in (p5.mig_manager_runs(P5)[-1].reason or "")


# ---- simulated clock ---------------------------------------------------------------------------------


@pytest.fixture
def no_real_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """time.sleep fails the test: the sim backend waits on its simulated clock only."""
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        raise AssertionError(f"time.sleep({seconds}) called: the sim backend must not sleep for real")
    monkeypatch.setattr(time, "sleep", sleep)
    return slept


def test_delayed_mig_manager_runs_on_the_simulated_clock(no_real_sleep: list[float]) -> None:
    cluster = SimCluster("p5.48xlarge", allow_changes=True, mig_manager_delay=120)
    cluster.set_node_label(P5, L.MIG_CONFIG, "all-balanced")
    assert state(cluster, P5) == "pending"
    assert nonzero(cluster.get_node(P5)) == {"nvidia.com/gpu": 8}  # nothing applied yet
    node = cluster.wait_for_node(P5, lambda n: n.labels.get(L.MIG_CONFIG_STATE) == "success", 900, "all-balanced")
    assert no_real_sleep == []  # 120 simulated seconds, no real sleeping
    assert 120.0 <= cluster.clock() < 125.0
    assert nonzero(node) == BALANCED_H100
    assert cluster.mig_manager_runs(P5)[-1].states == ((0.0, "pending"), (120.0, "success"))


def test_wait_timeout_names_the_node_and_its_last_state(no_real_sleep: list[float]) -> None:
    cluster = SimCluster("p5.48xlarge", allow_changes=True, mig_manager_delay=600)
    cluster.set_node_label(P5, L.MIG_CONFIG, "all-balanced")
    started = cluster.clock()
    with pytest.raises(WaitTimeout) as info:
        cluster.wait_for_node(P5, lambda n: n.labels.get(L.MIG_CONFIG_STATE) == "success", 60, "all-balanced")
    assert no_real_sleep == [] and 60.0 <= cluster.clock() - started < 65.0  # the timeout ran on the simulated clock
    message = str(info.value)
    assert P5 in message and "state=pending" in message and "all-balanced" in message
    cluster.advance(600)
    assert state(cluster, P5) == "success"


def test_label_change_while_mig_manager_is_busy_is_applied_after_the_run() -> None:
    cluster = SimCluster("p5.48xlarge", allow_changes=True, mig_manager_delay=10)
    cluster.set_node_label(P5, L.MIG_CONFIG, "all-balanced")
    cluster.set_node_label(P5, L.MIG_CONFIG, "all-1g.10gb")
    cluster.advance(5)
    assert [r.config for r in cluster.mig_manager_runs(P5)][-1] == "all-balanced"
    cluster.advance(30)
    assert [r.config for r in cluster.mig_manager_runs(P5)][-2:] == ["all-balanced", "all-1g.10gb"]
    assert nonzero(cluster.get_node(P5)) == {"nvidia.com/mig-1g.10gb": 56}


# ---- pods and scheduling -----------------------------------------------------------------------------


def pod(name: str, resources: dict[str, int], node: str | None = P5, **kwargs) -> PodRequest:
    selector = {"kubernetes.io/hostname": node} if node else {}
    return PodRequest(name, resources, selector, **kwargs)


def test_pods_bind_until_capacity_then_pending(p5: SimCluster) -> None:
    p5.set_node_label(P5, L.MIG_CONFIG, "all-balanced")
    p5.create_namespace("t", {})
    for i in range(8):
        p5.create_pod("t", pod(f"p{i}", {"nvidia.com/mig-3g.40gb": 1}))
    assert all(s.bound and s.node == P5 for s in p5.list_pods("t"))
    p5.create_pod("t", pod("extra", {"nvidia.com/mig-3g.40gb": 1}))
    extra = p5.get_pod("t", "extra")
    assert extra.phase == "Pending" and extra.reason == "Unschedulable" and not extra.bound
    assert extra.message == ("0/1 nodes are available: 1 Insufficient nvidia.com/mig-3g.40gb. preemption: 0/1 nodes "
                             "are available: 1 No preemption victims found for incoming pod.")
    p5.create_pod("t", pod("small", {"nvidia.com/mig-1g.10gb": 1}))  # other resources are still free
    assert p5.get_pod("t", "small").bound
    p5.delete_pod("t", "p3")
    assert p5.get_pod("t", "extra").node == P5
    p5.delete_pod("t", "no-such-pod")  # not an error
    with pytest.raises(ClusterError, match='pods "p3" not found'):
        p5.get_pod("t", "p3")


def test_pending_pod_binds_when_capacity_appears(p5: SimCluster) -> None:
    p5.create_namespace("t", {})
    p5.create_pod("t", pod("early", {"nvidia.com/mig-2g.20gb": 1}))
    assert "Insufficient nvidia.com/mig-2g.20gb" in (p5.get_pod("t", "early").message or "")
    p5.set_node_label(P5, L.MIG_CONFIG, "all-balanced")
    assert p5.get_pod("t", "early").node == P5
    p5.delete_namespace("t")
    assert p5.list_pods("t") == []


def test_pod_validation_and_api_errors(p5: SimCluster) -> None:
    with pytest.raises(ClusterError, match='namespaces "t" not found'):
        p5.create_pod("t", pod("a", {"nvidia.com/gpu": 1}))
    p5.create_namespace("t", {})
    with pytest.raises(ClusterError) as info:
        p5.create_pod("t", pod("bad", {"nvidia.com/gpu": 2}, limits={"nvidia.com/gpu": 1}))
    assert str(info.value) == ('Pod "bad" is invalid: spec.containers[0].resources.requests: Invalid value: "2": '
                               "must be equal to nvidia.com/gpu limit of 1")
    assert p5.list_pods("t") == []
    p5.create_pod("t", pod("a", {"nvidia.com/gpu": 1}))
    with pytest.raises(ClusterError, match='pods "a" already exists'):
        p5.create_pod("t", pod("a", {"nvidia.com/gpu": 1}))


def test_gpu_taint_needs_a_toleration() -> None:
    cluster = SimCluster("p5.48xlarge", allow_changes=True, gpu_taint=True)
    cluster.create_namespace("t", {})
    cluster.create_pod("t", pod("tolerant", {"nvidia.com/gpu": 1}))
    cluster.create_pod("t", pod("plain", {"nvidia.com/gpu": 1}, tolerations=()))
    assert cluster.get_pod("t", "tolerant").bound
    assert "untolerated taint {nvidia.com/gpu: true}" in (cluster.get_pod("t", "plain").message or "")


# ---- journal and read-only ---------------------------------------------------------------------------


def test_restore_puts_labels_strategy_and_config_back() -> None:
    cluster = SimCluster("p5.48xlarge", allow_changes=True, stack=STATIC_STACK)  # config by name: test_effective_config
    before = cluster.get_node(P5)
    original_text = cluster.get_mig_config()[1]
    cluster.set_node_label(P5, L.MIG_CONFIG_STATE, None)
    cluster.set_node_label(P5, L.MIG_CONFIG, "all-balanced")
    cluster.set_node_label(P5, "example.com/team", "ml")
    cluster.set_mig_strategy("single")
    cluster.set_mig_config(custom({"x": [{"devices": "all", "mig-enabled": False}]}))
    assert [c.kind for c in cluster.journal.changes] == ["node-label", "node-label", "node-label", "mig-strategy",
                                                         "mig-config"]
    done = cluster.restore()
    assert len(done) == 5 and cluster.journal.changes == []
    after = cluster.get_node(P5)
    assert cluster.get_mig_strategy() == "mixed"
    assert cluster.get_mig_config()[1] == original_text
    assert after.labels == before.labels
    assert nonzero(after) == {"nvidia.com/gpu": 8}  # all-disabled applied again


def test_read_only_cluster_refuses_pods_too() -> None:
    cluster = SimCluster("p5.48xlarge")
    with pytest.raises(ChangeNotAllowed, match="refusing to create namespace ns for test pods"):
        cluster.create_run_namespace("ns", {})
    # the pod and namespace methods a test reaches through the mig_cluster fixture are refused too
    for write, what in ((lambda: cluster.create_namespace("ns", {}), "create namespace ns"),
                        (lambda: cluster.delete_namespace("kube-system"), "delete namespace kube-system"),
                        (lambda: cluster.create_pod("default", pod("p", {"cpu": 1})), "create pod default/p"),
                        (lambda: cluster.delete_pod("default", "p"), "delete pod default/p")):
        with pytest.raises(ChangeNotAllowed, match=f"refusing to {what}: the cluster is open read-only"):
            write()


def test_read_only_cluster_refuses_changes() -> None:
    cluster = SimCluster("p5.48xlarge")
    with pytest.raises(ChangeNotAllowed):
        cluster.set_node_label(P5, L.MIG_CONFIG, "all-balanced")
    with pytest.raises(ChangeNotAllowed):
        cluster.set_mig_strategy("single")
    with pytest.raises(ChangeNotAllowed):
        cluster.set_mig_config("version: v1")
    assert cluster.journal.changes == []
    assert cluster.get_node(P5).labels[L.MIG_CONFIG] == "all-disabled"
    assert cluster.get_mig_strategy() == "mixed"


def test_default_config_text_is_the_shipped_configmap() -> None:
    spec = parse_spec_text(default_config_text())
    assert spec.valid and "all-balanced" in spec.configs
    assert set(spec.configs) == set(default_spec().configs)


# ---- registry ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("target", "parsed"), [
    ("sim", ("sim", "")),
    ("sim:p5.48xlarge*4,p4d.24xlarge", ("sim", "p5.48xlarge*4,p4d.24xlarge")),
    ("local:p5.48xlarge", ("local", "p5.48xlarge")),
    ("kind", ("kind", "")),
    ("kind:mig-test", ("kind", "mig-test")),
    ("kubeconfig:prod-context", ("kubeconfig", "prod-context")),
    ("eks:prod-gpu@us-west-2", ("eks", "prod-gpu@us-west-2")),
])
def test_parse_target(target: str, parsed: tuple[str, str]) -> None:
    assert parse_target(target) == parsed


@pytest.mark.parametrize(("target", "message"), [
    ("", "empty cluster target"),
    ("gke:foo", "backend 'gke' is not one of"),
    ("sim:", "nothing after ':'"),
    ("kubeconfig", "expected kubeconfig:CONTEXT"),
    ("eks:prod-gpu", "expected eks:CLUSTER@REGION"),
    ("eks:@us-west-2", "expected eks:CLUSTER@REGION"),
    ("eks:prod gpu@us-west-2", "not a valid EKS cluster name"),
    ("eks:prod-gpu@mars", "not an AWS region"),
    ("kind:Bad_Name", "kind cluster name"),
])
def test_parse_target_errors(target: str, message: str) -> None:
    with pytest.raises(ClusterError, match=message):
        parse_target(target)


def test_open_cluster_sim() -> None:
    cluster = open_cluster("sim:p5.48xlarge*2", allow_changes=True, strategy="single", gpu_taint=True)
    assert isinstance(cluster, SimCluster) and cluster.kind == "sim" and cluster.allow_changes
    assert cluster.name == "sim:p5.48xlarge*2" and cluster.get_mig_strategy() == "single"
    assert len(cluster.list_gpu_nodes()) == 2 and cluster.get_node("sim-p5-48xlarge-0").taints


@pytest.mark.parametrize("target", ["sim", "local", "kind:x", "kubeconfig:ctx", "eks:c@us-east-1"])
def test_every_backend_names_an_unknown_option_before_connecting(target: str) -> None:
    backend = target.split(":")[0]
    with pytest.raises(ClusterError, match=rf"^{backend} backend: unknown option\(s\) colour \(allowed: .*\)"):
        open_cluster(target, allow_changes=False, colour="blue")


def test_open_cluster_from_a_target_and_settings() -> None:
    from mig_conformance.plugin.settings import Settings

    target = Target("lab", "sim", "p4d.24xlarge", {"backend": "sim", "nodes": "p4d.24xlarge", "strategy": "none",
                                                   "node_selector": {"a": "b"}})
    cluster = open_cluster(target, allow_changes=False, settings=Settings(strategy="single"))
    assert cluster.name == "lab" and cluster.get_mig_strategy() == "none"  # the clusters file wins
    assert [n.instance_type for n in cluster.list_gpu_nodes()] == ["p4d.24xlarge"]
    fleet = open_cluster("sim", allow_changes=False, settings=Settings(instance_type="p5.4xlarge"))
    assert [n.name for n in fleet.list_gpu_nodes()] == ["sim-p5-4xlarge-0"]


def test_node_nvml_renders_nvidia_smi_evidence() -> None:
    from mig_conformance.simulators import nvidia_smi
    from mig_conformance.simulators import nvml as nv

    cluster = SimCluster("p5.4xlarge", allow_changes=True)
    cluster.set_node_label("sim-p5-4xlarge-0", L.MIG_CONFIG, "all-balanced")
    previous = nv.use(cluster.node_nvml("sim-p5-4xlarge-0"))
    nv.nvmlInit()
    try:
        text = nvidia_smi.render_lgi(nv).stdout
    finally:
        nv.nvmlShutdown()
        nv.use(previous)
    assert text.count("MIG 1g.10gb") == 2 and "MIG 2g.20gb" in text and "MIG 3g.40gb" in text
