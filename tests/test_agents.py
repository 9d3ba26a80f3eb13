"""The simulated GPU Operator agents of the `local` backend (mig_conformance.simulators.agents).

Three tiers: pure functions (resources, labels, policy, work queue); the whole agents runtime against an in-memory
API (`FakeApi`: fast, deterministic, can fail on demand); and the agents process against a real etcd +
kube-apiserver (+ kwok), skipped when the binaries are missing unless CI is set.
"""

from __future__ import annotations

import copy
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mig_conformance.cluster.local.backend import LocalCluster
from mig_conformance.cluster.sim import default_config_text
from mig_conformance.instance_types import load_instance_types
from mig_conformance.k8s import labels as L
from mig_conformance.k8s.state import GpuMigState
from mig_conformance.mig.spec import parse_spec_text
from mig_conformance.simulators import nvml as nv
from mig_conformance.simulators.agents import device_plugin, gfd, gpu_operator
from mig_conformance.simulators.agents.api import ApiError, Gone, NotFound, Obj, Unavailable
from mig_conformance.simulators.agents.context import Context, Options, Policy
from mig_conformance.simulators.agents.node import gpu_models, load_nvml, save_nvml
from mig_conformance.simulators.agents.runner import Agents
from mig_conformance.simulators.agents.workqueue import WorkQueue
from mig_conformance.simulators.node_gpus import ActiveRun, NodeGpus
from support.control_plane import control_plane_assets

P5 = "gpu-p5-0"
P5_LABELS = {L.INSTANCE_TYPE: "p5.48xlarge", L.GPU_PRESENT: "true", "team": "ml"}
BALANCED_H100 = {"nvidia.com/mig-1g.10gb": 16, "nvidia.com/mig-2g.20gb": 8, "nvidia.com/mig-3g.40gb": 8}
MIXED = {"mig": {"strategy": "mixed"}, "migManager": {"config": {"name": "default-mig-parted-config"}}}


def nonzero(resources: dict[str, Any]) -> dict[str, int]:
    return {k: int(v) for k, v in resources.items() if k.startswith("nvidia.com/") and int(v)}


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
    assert Policy.from_object(None) == Policy("single", "default-mig-parted-config", None, False)
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


# ---- the agents runtime against an in-memory API --------------------------------------------------------


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict):
            _merge(target.setdefault(key, {}), value)
        else:
            target[key] = copy.deepcopy(value)


def _matches(obj: Obj, selector: str | None) -> bool:
    labels = obj["metadata"].get("labels") or {}
    return all(labels.get(k) == v for k, _, v in (t.partition("=") for t in (selector or "").split(",") if t))


class FakeApi:
    """The agents' `Api` in memory: every change bumps a resourceVersion and becomes a watch event; patches merge
    maps as a strategic-merge patch does (None deletes); `down()` fails every call and open watch."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._rv = 0
        self.nodes: dict[str, Obj] = {}
        self.policies: dict[str, Obj] = {}
        self.config_maps: dict[tuple[str, str], Obj] = {}
        self.events: list[tuple[int, str, str, Obj]] = []  # (rv, "node"|"policy", type, object)
        self.states: dict[str, list[str | None]] = {}  # node -> mig.config.state values as the agents wrote them
        self.status_patches = 0
        self.compacted = 0  # a watch from a resourceVersion below this gets 410 Gone
        self.forbid = 0  # the next N node patches get 403 (an authorizer not ready after a restart)
        self._down = False

    def down(self) -> None:
        with self._cond:
            self._down = True
            self._cond.notify_all()

    def up(self) -> None:
        with self._cond:
            self._down = False
            self._cond.notify_all()

    def _check(self) -> None:
        if self._down:
            raise Unavailable(0, "connection refused")

    def _record(self, kind: str, event: str, obj: Obj) -> Obj:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        self.events.append((self._rv, kind, event, copy.deepcopy(obj)))
        self._cond.notify_all()
        return copy.deepcopy(obj)

    # -- what users and the control plane do --------------------------------------------------------------
    def add_node(self, name: str, labels: dict[str, str], annotations: dict[str, str] | None = None) -> None:
        with self._cond:
            base = {"cpu": "192", "pods": "110"}
            self.nodes[name] = {"metadata": {"name": name, "uid": str(uuid.uuid4()), "labels": dict(labels),
                                             "annotations": dict(annotations or {})},
                                "status": {"capacity": dict(base), "allocatable": dict(base)}}
            self._record("node", "ADDED", self.nodes[name])

    def delete_node(self, name: str) -> None:
        with self._cond:
            self._record("node", "DELETED", self.nodes.pop(name))

    def set_policy(self, spec: dict[str, Any]) -> None:
        with self._cond:
            event = "MODIFIED" if self.policies else "ADDED"
            self.policies["cluster-policy"] = {"metadata": {"name": "cluster-policy"}, "spec": copy.deepcopy(spec)}
            self._record("policy", event, self.policies["cluster-policy"])

    def set_config(self, text: str, name: str = "default-mig-parted-config") -> None:
        with self._cond:
            self.config_maps[("gpu-operator", name)] = {"metadata": {"name": name}, "data": {"config.yaml": text}}

    def label(self, name: str, key: str, value: str | None) -> None:
        with self._cond:
            _merge(self.nodes[name]["metadata"], {"labels": {key: value}})
            self._record("node", "MODIFIED", self.nodes[name])

    def node(self, name: str) -> Obj:
        with self._cond:
            return copy.deepcopy(self.nodes[name])

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                assert left > 0, "timed out waiting for the agents"
                self._cond.wait(left)

    # -- Api ----------------------------------------------------------------------------------------------
    def list_nodes(self, selector: str | None) -> tuple[list[Obj], str]:
        with self._cond:
            self._check()
            return [copy.deepcopy(o) for o in self.nodes.values() if _matches(o, selector)], str(self._rv)

    def list_policies(self) -> tuple[list[Obj], str]:
        with self._cond:
            self._check()
            return [copy.deepcopy(o) for o in self.policies.values()], str(self._rv)

    def _watch(self, kind: str, selector: str | None, since: int, timeout: int) -> Iterator[tuple[str, Obj]]:
        deadline = time.monotonic() + timeout
        with self._cond:
            self._check()
            if since < self.compacted:
                raise Gone(410, "too old resource version")
        while True:
            with self._cond:
                while True:
                    if self._down:
                        raise Unavailable(0, "connection reset by peer")
                    batch = [(rv, e, o) for rv, k, e, o in self.events
                             if rv > since and k == kind and _matches(o, selector)]
                    if batch or time.monotonic() >= deadline:
                        break
                    self._cond.wait(min(0.2, max(0.0, deadline - time.monotonic())))
            if not batch:
                return
            for rv, event, obj in batch:
                since = rv
                yield event, copy.deepcopy(obj)

    def watch_nodes(self, selector: str | None, resource_version: str, timeout: int) -> Iterator[tuple[str, Obj]]:
        return self._watch("node", selector, int(resource_version), timeout)

    def watch_policies(self, resource_version: str, timeout: int) -> Iterator[tuple[str, Obj]]:
        return self._watch("policy", None, int(resource_version), timeout)

    def read_config_map(self, namespace: str, name: str) -> Obj:
        with self._cond:
            self._check()
            if (namespace, name) not in self.config_maps:
                raise NotFound(404, f'configmaps "{name}" not found')
            return copy.deepcopy(self.config_maps[(namespace, name)])

    def _patch(self, name: str, body: Obj, part: str) -> Obj:
        with self._cond:
            self._check()
            if name not in self.nodes:
                raise NotFound(404, f'nodes "{name}" not found')
            assert set(body) == {part}, f"the agents sent {body} to the {part} endpoint"
            if self.forbid:
                self.forbid -= 1
                raise ApiError(403, f'nodes "{name}" is forbidden')
            _merge(self.nodes[name][part], body[part])
            if part == "metadata" and L.MIG_CONFIG_STATE in (body[part].get("labels") or {}):
                self.states.setdefault(name, []).append(body[part]["labels"][L.MIG_CONFIG_STATE])
            if part == "status":
                self.status_patches += 1
            return self._record("node", "MODIFIED", self.nodes[name])

    def patch_node(self, name: str, body: Obj) -> Obj:
        return self._patch(name, body, "metadata")

    def patch_node_status(self, name: str, body: Obj) -> Obj:
        return self._patch(name, body, "status")


@pytest.fixture
def fake() -> FakeApi:
    api = FakeApi()
    api.set_policy(MIXED)
    api.set_config(default_config_text())
    return api


@pytest.fixture
def run_agents(tmp_path: Path) -> Iterator[Callable[..., Agents]]:
    started: list[Agents] = []

    def start(api: FakeApi, **options: Any) -> Agents:
        opts = {"mig_manager_delay": 0.05, "state_dir": tmp_path / "state", "resync": 2, "workers": 4, **options}
        agents = Agents(Context(api, Options(**opts)))
        agents.start()
        started.append(agents)
        assert agents.wait_ready(10), "agents not ready"
        return agents

    yield start
    for agents in started:
        agents.stop()


def labels_of(api: FakeApi, name: str) -> dict[str, str]:
    return api.node(name)["metadata"]["labels"]


def allocatable(api: FakeApi, name: str) -> dict[str, int]:
    return nonzero(api.node(name)["status"]["allocatable"])


def wait_state(api: FakeApi, name: str, *values: str, timeout: float = 10.0) -> str:
    api.wait_for(lambda: api.nodes[name]["metadata"]["labels"].get(L.MIG_CONFIG_STATE) in values, timeout)
    return labels_of(api, name)[L.MIG_CONFIG_STATE]


def test_fresh_node_gets_full_gpus_and_gfd_labels_and_keeps_foreign_labels(fake: FakeApi, run_agents) -> None:
    fake.add_node(P5, P5_LABELS)
    fake.add_node("cpu-0", {L.INSTANCE_TYPE: "m5.large"})  # not selected: never touched
    run_agents(fake)
    fake.wait_for(lambda: "nvidia.com/gpu" in fake.nodes[P5]["status"]["allocatable"])
    node = fake.node(P5)
    assert nonzero(node["status"]["capacity"]) == allocatable(fake, P5) == {"nvidia.com/gpu": 8}
    assert node["status"]["capacity"]["cpu"] == "192"
    labels = node["metadata"]["labels"]
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3" and labels["nvidia.com/mig.capable"] == "true"
    assert labels["team"] == "ml" and labels[L.INSTANCE_TYPE] == "p5.48xlarge"
    assert L.MIG_CONFIG not in labels  # no ClusterPolicy default configured
    assert fake.node("cpu-0")["metadata"]["labels"] == {L.INSTANCE_TYPE: "m5.large"}


def test_all_balanced_pending_then_success_with_mixed_resources(fake: FakeApi, run_agents) -> None:
    fake.add_node(P5, P5_LABELS)
    run_agents(fake, mig_manager_delay=0.3)
    fake.label(P5, L.MIG_CONFIG, "all-balanced")
    assert wait_state(fake, P5, "pending") == "pending"
    assert allocatable(fake, P5) == {"nvidia.com/gpu": 8}  # unchanged while mig-manager works
    assert wait_state(fake, P5, "success", "failed") == "success"
    assert fake.states[P5] == ["pending", "success"]
    assert allocatable(fake, P5) == BALANCED_H100
    assert fake.node(P5)["status"]["allocatable"]["nvidia.com/gpu"] == "0"  # kubelet keeps the old name
    assert labels_of(fake, P5)["nvidia.com/mig-3g.40gb.count"] == "8"


def test_success_is_written_after_the_new_allocatable(fake: FakeApi, run_agents) -> None:
    fake.add_node(P5, P5_LABELS)
    run_agents(fake)
    fake.label(P5, L.MIG_CONFIG, "all-balanced")
    wait_state(fake, P5, "success")
    seen = [(o["metadata"]["labels"].get(L.MIG_CONFIG_STATE), nonzero(o["status"]["allocatable"]))
            for _, kind, _, o in fake.events if kind == "node" and o["metadata"]["name"] == P5]
    first_success = next(i for i, (state, _) in enumerate(seen) if state == "success")
    assert seen[first_success][1] == BALANCED_H100


def test_strategy_switch_to_single_with_all_1g(fake: FakeApi, run_agents) -> None:
    fake.add_node(P5, P5_LABELS)
    run_agents(fake)
    fake.label(P5, L.MIG_CONFIG, "all-1g.10gb")
    wait_state(fake, P5, "success")
    assert allocatable(fake, P5) == {"nvidia.com/mig-1g.10gb": 56}
    fake.set_policy({**MIXED, "mig": {"strategy": "single"}})
    fake.wait_for(lambda: fake.nodes[P5]["metadata"]["labels"].get("nvidia.com/mig.strategy") == "single")
    assert allocatable(fake, P5) == {"nvidia.com/gpu": 56}  # published before the GFD strategy label
    assert fake.node(P5)["status"]["allocatable"]["nvidia.com/mig-1g.10gb"] == "0"
    labels = labels_of(fake, P5)
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3-MIG-1g.10gb"
    assert not any(k.startswith("nvidia.com/mig-1g.10gb.") for k in labels)  # GFD's mixed labels removed
    assert fake.states[P5] == ["pending", "success"]  # a strategy change runs no mig-manager


def test_unknown_config_fails_without_pending_and_leaves_gpus(fake: FakeApi, run_agents) -> None:
    fake.add_node(P5, P5_LABELS)
    agents = run_agents(fake)
    fake.label(P5, L.MIG_CONFIG, "no-such-config")
    assert wait_state(fake, P5, "success", "failed") == "failed"
    assert fake.states[P5] == ["failed"]
    assert allocatable(fake, P5) == {"nvidia.com/gpu": 8}
    assert "no-such-config" in (agents.nodes[P5].runs[-1].reason or "")


def test_missing_config_map_fails_and_is_reread_at_the_next_run(fake: FakeApi, run_agents) -> None:
    fake.add_node(P5, P5_LABELS)
    fake.set_policy({**MIXED, "migManager": {"config": {"name": "custom"}}})
    run_agents(fake)
    fake.label(P5, L.MIG_CONFIG, "all-balanced")
    assert wait_state(fake, P5, "success", "failed") == "failed"
    fake.set_config("version: v1\nmig-configs:\n  whole:\n    - devices: all\n      mig-enabled: true\n"
                    "      mig-devices: {'7g.80gb': 1}\n", name="custom")
    fake.label(P5, L.MIG_CONFIG_STATE, None)
    fake.label(P5, L.MIG_CONFIG, "whole")
    assert wait_state(fake, P5, "success", "failed") == "success"
    assert allocatable(fake, P5) == {"nvidia.com/mig-7g.80gb": 8}


def test_label_changed_during_a_run_is_applied_afterwards(fake: FakeApi, run_agents) -> None:
    fake.add_node(P5, P5_LABELS)
    run_agents(fake, mig_manager_delay=0.3)
    fake.label(P5, L.MIG_CONFIG, "all-balanced")
    wait_state(fake, P5, "pending")
    fake.label(P5, L.MIG_CONFIG, "all-3g.40gb")
    fake.wait_for(lambda: fake.states.get(P5, [])[-1:] == ["success"] and len(fake.states[P5]) == 4)
    assert fake.states[P5] == ["pending", "success", "pending", "success"]
    assert allocatable(fake, P5) == {"nvidia.com/mig-3g.40gb": 16}


def test_cluster_policy_default_config_labels_mig_capable_nodes(fake: FakeApi, run_agents) -> None:
    fake.set_policy({**MIXED, "migManager": {"config": {"name": "default-mig-parted-config",
                                                        "default": "all-disabled"}}})
    fake.add_node(P5, P5_LABELS)
    fake.add_node("gpu-g5-0", {L.INSTANCE_TYPE: "g5.xlarge", L.GPU_PRESENT: "true"})
    run_agents(fake)
    assert wait_state(fake, P5, "success") == "success"
    labels = labels_of(fake, P5)
    assert labels[L.MIG_CONFIG] == "all-disabled" and labels["nvidia.com/gpu.deploy.mig-manager"] == "true"
    fake.wait_for(lambda: "nvidia.com/gpu" in fake.nodes["gpu-g5-0"]["status"]["allocatable"])
    assert L.MIG_CONFIG not in labels_of(fake, "gpu-g5-0")  # no MIG-capable GPU: no mig-manager
    assert allocatable(fake, "gpu-g5-0") == {"nvidia.com/gpu": 1}


def test_with_reboot_from_the_cluster_policy_on_ampere_without_gpu_reset(fake: FakeApi, run_agents) -> None:
    fake.set_policy({**MIXED, "migManager": {"config": {"name": "default-mig-parted-config"},
                                             "env": [{"name": "WITH_REBOOT", "value": "true"}]}})
    fake.add_node("gpu-p4d-0", {L.INSTANCE_TYPE: "p4d.24xlarge", L.GPU_PRESENT: "true"})
    run_agents(fake, gpu_reset_works=False)
    fake.label("gpu-p4d-0", L.MIG_CONFIG, "all-balanced")
    fake.wait_for(lambda: fake.states.get("gpu-p4d-0", [])[-1:] == ["success"])
    assert fake.states["gpu-p4d-0"] == ["pending", "rebooting", "pending", "success"]
    assert allocatable(fake, "gpu-p4d-0") == {"nvidia.com/mig-1g.5gb": 16, "nvidia.com/mig-2g.10gb": 8,
                                              "nvidia.com/mig-3g.20gb": 8}


def test_main_rejects_bad_options_and_kubeconfig(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mig_conformance.simulators.agents.__main__ import main

    assert main(["--kubeconfig", str(tmp_path / "missing"), "--log", str(tmp_path / "a.log")]) == 2
    assert main(["--kubeconfig", str(tmp_path / "missing"), "--mig-manager-delay", "-1"]) == 2
    assert "agents: error: --mig-manager-delay must be >= 0" in capsys.readouterr().err


def test_restart_keeps_gpu_state(fake: FakeApi, run_agents) -> None:
    fake.add_node(P5, P5_LABELS)
    first = run_agents(fake)
    fake.label(P5, L.MIG_CONFIG, "all-balanced")
    wait_state(fake, P5, "success")
    first.stop()
    second = run_agents(fake)
    fake.wait_for(lambda: bool(second.nodes.get(P5) and second.nodes[P5].runs))
    assert second.nodes[P5].runs[-1].states[-1][1] == "success"
    assert fake.states[P5] == ["pending", "success", "success"]  # assert passed at once: no pending
    assert allocatable(fake, P5) == BALANCED_H100


def test_restart_without_state_dir_reconfigures_from_scratch(fake: FakeApi, run_agents) -> None:
    fake.add_node(P5, P5_LABELS)
    first = run_agents(fake, state_dir=None)
    fake.label(P5, L.MIG_CONFIG, "all-balanced")
    wait_state(fake, P5, "success")
    first.stop()
    run_agents(fake, state_dir=None)
    fake.wait_for(lambda: len(fake.states[P5]) == 4)
    assert fake.states[P5] == ["pending", "success", "pending", "success"]


def test_api_outage_during_a_run_then_recovery(fake: FakeApi, run_agents) -> None:
    fake.add_node(P5, P5_LABELS)
    run_agents(fake, mig_manager_delay=0.3)
    fake.label(P5, L.MIG_CONFIG, "all-balanced")
    wait_state(fake, P5, "pending")
    fake.down()
    time.sleep(1.0)  # the run's final write and both watches fail meanwhile
    fake.compacted = fake._rv + 1  # and the old resourceVersion is gone when it returns
    fake.up()
    assert wait_state(fake, P5, "success", "failed") == "success"
    assert allocatable(fake, P5) == BALANCED_H100
    fake.label(P5, L.MIG_CONFIG, "all-1g.10gb")  # the watches work again
    fake.wait_for(lambda: allocatable(fake, P5) == {"nvidia.com/mig-1g.10gb": 56})


def test_refused_write_during_a_run_starts_the_run_over(fake: FakeApi, run_agents) -> None:
    fake.add_node(P5, P5_LABELS)
    agents = run_agents(fake, mig_manager_delay=0.3)
    fake.label(P5, L.MIG_CONFIG, "all-balanced")
    wait_state(fake, P5, "pending")
    fake.forbid = 1  # the run's next write (the device plugin's status) is refused
    assert wait_state(fake, P5, "success", "failed") == "success"
    assert allocatable(fake, P5) == BALANCED_H100
    assert [r.config for r in agents.nodes[P5].runs] == ["all-balanced"]  # the retry found it applied


def test_status_overwritten_by_someone_else_is_repaired(fake: FakeApi, run_agents) -> None:
    fake.add_node(P5, P5_LABELS)
    run_agents(fake)
    fake.label(P5, L.MIG_CONFIG, "all-balanced")
    wait_state(fake, P5, "success")
    with fake._cond:  # a controller that rewrites the whole status from a stale copy
        fake.nodes[P5]["status"] = {"capacity": {"cpu": "192"}, "allocatable": {"cpu": "192"}}
        fake._record("node", "MODIFIED", fake.nodes[P5])
    fake.wait_for(lambda: allocatable(fake, P5) == BALANCED_H100)


def test_deleted_node_is_forgotten_with_its_gpu_state(fake: FakeApi, run_agents, tmp_path: Path) -> None:
    fake.add_node(P5, P5_LABELS)
    agents = run_agents(fake)
    fake.label(P5, L.MIG_CONFIG, "all-balanced")
    wait_state(fake, P5, "success")
    assert (tmp_path / "state" / f"{P5}.nvml.json").is_file()
    fake.delete_node(P5)
    deadline = time.monotonic() + 5
    while (P5 in agents.nodes or (tmp_path / "state" / f"{P5}.nvml.json").exists()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert P5 not in agents.nodes and not (tmp_path / "state" / f"{P5}.nvml.json").exists()
    fake.add_node(P5, P5_LABELS)  # a new instance of that name: fresh GPUs
    fake.wait_for(lambda: allocatable(fake, P5) == {"nvidia.com/gpu": 8})


def test_hundred_nodes_reconfigure_concurrently(fake: FakeApi, run_agents) -> None:
    names = [f"gpu-p5-{i}" for i in range(100)]
    for name in names:
        fake.add_node(name, P5_LABELS)
    run_agents(fake, mig_manager_delay=0.5, workers=8)
    started = time.monotonic()
    for name in names:
        fake.label(name, L.MIG_CONFIG, "all-balanced")
    fake.wait_for(lambda: all(fake.nodes[n]["metadata"]["labels"].get(L.MIG_CONFIG_STATE) == "success"
                              for n in names), timeout=60)
    elapsed = time.monotonic() - started
    assert all(allocatable(fake, n) == BALANCED_H100 for n in names)
    assert elapsed < 20, f"100 nodes took {elapsed:.1f}s: runs are not concurrent"


# ---- the agents process against a real control plane (LocalCluster: etcd, kube-apiserver, kwok, ...) ----------


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    control_plane_assets()
    cluster = LocalCluster.start("p5.48xlarge*4", state_dir=tmp_path_factory.mktemp("local"),
                                     mig_manager_delay=0.5)
    try:
        yield cluster
    finally:
        cluster.close()


def local_nodes(cluster: Any) -> list[str]:
    return sorted(n.name for n in cluster.list_gpu_nodes())


def follow(cluster: Any, name: str, until: Callable[[Any], bool], timeout: float = 30.0) -> tuple[list[str], Any]:
    """Poll a node every 20 ms: (the distinct mig.config.state values seen, the node once `until` holds)."""
    from mig_conformance.cluster.base import ClusterError

    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            node = cluster.get_node(name)
        except ClusterError:  # kube-apiserver restarting (or not yet authorizing)
            assert time.monotonic() < deadline, f"{name}: API server unavailable until the deadline"
            time.sleep(0.1)
            continue
        state = node.labels.get(L.MIG_CONFIG_STATE, "-")
        if not seen or seen[-1] != state:
            seen.append(state)
        if until(node):
            return seen, node
        assert time.monotonic() < deadline, f"{name}: states {seen}, labels {dict(node.labels)}"
        time.sleep(0.02)


def done(node: Any) -> bool:
    return node.labels.get(L.MIG_CONFIG_STATE) in ("success", "failed")


def relabel(cluster: Any, name: str, config: str) -> None:
    """As the kit does: clear the old verdict, then set the config label."""
    cluster.set_node_label(name, L.MIG_CONFIG_STATE, None)
    cluster.set_node_label(name, L.MIG_CONFIG, config)


def kubectl(cluster: Any, *args: str) -> str:
    from mig_conformance.cluster.assets import find_assets

    argv = [str(find_assets(["kubectl"])["kubectl"]), f"--kubeconfig={cluster.admin_kubeconfig}", *args]
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=60).stdout


def agents_log(cluster: Any) -> str:
    return (cluster.plane.logs / "agents.log").read_text(encoding="utf-8")


def test_local_all_balanced_single_strategy_and_unknown_config(local: Any) -> None:
    name = local_nodes(local)[0]
    relabel(local, name, "all-balanced")
    seen, node = follow(local, name, done)
    assert seen[-2:] == ["pending", "success"]
    assert nonzero(node.allocatable) == nonzero(node.capacity) == BALANCED_H100
    assert node.labels["nvidia.com/mig-3g.40gb.count"] == "8"
    try:  # the issue's own command line, as a user with kubectl would do it
        kubectl(local, "patch", "clusterpolicies.nvidia.com/cluster-policy", "--type=json",
                "-p", '[{"op":"replace","path":"/spec/mig/strategy","value":"single"}]')
        relabel(local, name, "all-1g.10gb")
        _, node = follow(local, name, lambda n: done(n) and n.labels.get("nvidia.com/mig.strategy") == "single")
        assert node.labels[L.MIG_CONFIG_STATE] == "success"
        assert nonzero(node.allocatable) == {"nvidia.com/gpu": 56}
        assert node.allocatable["nvidia.com/mig-3g.40gb"] == 0  # kubelet keeps a registered name at 0
    finally:
        local.set_mig_strategy("mixed")
    _, node = follow(local, name, lambda n: nonzero(n.allocatable) == {"nvidia.com/mig-1g.10gb": 56})
    relabel(local, name, "no-such-config")
    seen, node = follow(local, name, done)
    assert seen[-1] == "failed" and "pending" not in seen
    assert nonzero(node.allocatable) == {"nvidia.com/mig-1g.10gb": 56}  # the GPUs were left alone
    assert "selected mig-config not present" in agents_log(local) or "no-such-config" in agents_log(local)


def test_local_agent_restart_keeps_gpu_state(local: Any) -> None:
    name = local_nodes(local)[1]
    relabel(local, name, "all-3g.40gb")
    follow(local, name, done)
    local.stop_agents()
    assert local.plane.procs["agents"].popen.returncode == 0  # SIGTERM is a clean stop
    before = len(agents_log(local))
    local.start_agents(mig_manager_delay=0.5)
    node = local.get_node(name)
    assert node.labels[L.MIG_CONFIG_STATE] == "success"
    assert nonzero(node.allocatable) == {"nvidia.com/mig-3g.40gb": 16}
    after = agents_log(local)[before:]
    assert f"node {name}: GPU state restored" in after
    assert f"node {name}: {L.MIG_CONFIG_STATE}=success" in after  # assert passed at once ...
    assert f"node {name}: {L.MIG_CONFIG_STATE}=pending" not in after  # ... nothing was reapplied


def test_local_api_server_restart_during_a_reconfiguration(local: Any) -> None:
    name = local_nodes(local)[2]
    local.stop_agents()
    local.start_agents(mig_manager_delay=3.0)
    try:
        relabel(local, name, "all-1g.10gb")
        follow(local, name, lambda n: n.labels.get(L.MIG_CONFIG_STATE) == "pending")
        local.plane.restart("kube-apiserver")
        _, node = follow(local, name, done, timeout=60)
        assert node.labels[L.MIG_CONFIG_STATE] == "success"
        assert nonzero(node.allocatable) == {"nvidia.com/mig-1g.10gb": 56}
        relabel(local, name, "all-balanced")  # the watch is back: a new label is picked up
        seen, node = follow(local, name, done, timeout=60)
        assert seen[-2:] == ["pending", "success"] and nonzero(node.allocatable) == BALANCED_H100
        assert "API server unavailable" in agents_log(local)
    finally:
        local.stop_agents()
        local.start_agents(mig_manager_delay=0.5)


def test_local_kwok_leaves_resources_and_overwrites_are_repaired(local: Any) -> None:
    name = local_nodes(local)[3]
    relabel(local, name, "all-2g.20gb")
    _, node = follow(local, name, done)
    want = nonzero(node.allocatable)
    assert want == {"nvidia.com/mig-2g.20gb": 24}
    with local.admin() as admin:
        # kwok runs its node stages again when the node is not Ready; the status it writes keeps ours
        admin.request("PATCH", f"/api/v1/nodes/{name}/status", {"status": {"conditions": [
            {"type": "Ready", "status": "False", "reason": "Test", "message": "flipped by the test"}]}},
            content_type="application/strategic-merge-patch+json")
        follow(local, name, lambda n: _ready(admin, name))
        assert nonzero(local.get_node(name).allocatable) == want
        # a writer that resets our resources (a stale status, a restarted kubelet) is corrected at once
        admin.request("PATCH", f"/api/v1/nodes/{name}/status", {"status": {
            "capacity": {"nvidia.com/mig-2g.20gb": "0"}, "allocatable": {"nvidia.com/mig-2g.20gb": "0"}}},
            content_type="application/strategic-merge-patch+json")
        _, node = follow(local, name, lambda n: nonzero(n.allocatable) == want, timeout=10)
    local.plane.restart("kwok")
    time.sleep(2)
    assert nonzero(local.get_node(name).allocatable) == want


def _ready(admin: Any, name: str) -> bool:
    conditions = admin.get("Node", name).get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
