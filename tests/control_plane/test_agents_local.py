"""The simulated GPU Operator agents of the `local` backend (mig_conformance.simulators.agents) against a real
control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok nodes): the agents runtime in this
process, with faults injected on the real servers (kube-apiserver stopped and restarted, RBAC taken away, a status
overwritten, a resourceVersion too old for the watch cache), and the agents process. The control plane's binaries are
required under CI and these tests are skipped without them otherwise. The pure functions are in
tests/unit/test_agents.py.
"""
from __future__ import annotations

import contextlib
import copy
import json
import logging
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mig_conformance.cluster.base import append_new
from mig_conformance.cluster.local import kubeconfig, nodes, operator, processes
from mig_conformance.cluster.local.backend import AGENTS, LocalCluster
from mig_conformance.cluster.local.rest import path_of
from mig_conformance.cluster.sim.fleet import parse_fleet
from mig_conformance.k8s import labels as L
from mig_conformance.simulators.agents.api import Gone, KubeApi, Obj, Unavailable
from mig_conformance.simulators.agents.context import Context, Options
from mig_conformance.simulators.agents.runner import Agents
from mig_conformance.simulators.node_gpus import RunRecord
from support.control_plane import control_plane_assets

BALANCED_H100 = {"nvidia.com/mig-1g.10gb": 16, "nvidia.com/mig-2g.20gb": 8, "nvidia.com/mig-3g.40gb": 8}
MIXED = {"mig": {"strategy": "mixed"}, "migManager": {"config": {"name": "default-mig-parted-config"}}}


def nonzero(resources: dict[str, Any]) -> dict[str, int]:
    return {k: int(v) for k, v in resources.items() if k.startswith("nvidia.com/") and int(v)}


# ---- the agents runtime in this process, against the real local control plane ---------------------------------
#
# One control plane for the module (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok), started
# without the agents process: each test runs `Agents(Context(KubeApi(...)))` in this process, as the agents'
# ServiceAccount (the agents process's own identity and RBAC), on kwok nodes of its own. Every test's nodes carry
# the label TEST_LABEL=<test id> and its agents select `nvidia.com/gpu.present=true,TEST_LABEL=<test id>`, so tests
# never see each other's nodes (nor the module's four nodes, which the agents process serves in the last tier).
# What the agents wrote is read from a watch of the test's nodes (every change, in order), never by polling.

TEST_LABEL = "mig-conformance.io/agents-test"
AGENTS_USER = f"system:serviceaccount:{operator.NAMESPACE}:{operator.AGENTS_SA}"


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """The module's control plane with the nodes p5.48xlarge*4 (for the agents-process tier); agents start later."""
    control_plane_assets()
    cluster = LocalCluster.start("p5.48xlarge*4", state_dir=tmp_path_factory.mktemp("local"), agents=False)
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def agents_kubeconfig(local: LocalCluster) -> Path:
    """A kubeconfig with a token of the agents' ServiceAccount (as backend.start_agents writes for the process)."""
    assert local.plane.pki is not None
    with local.admin() as admin:
        token = admin.token_for(operator.NAMESPACE, operator.AGENTS_SA, 3600)
    return kubeconfig.write(local.state_dir / "agents-in-process.kubeconfig", kubeconfig.build(
        local.plane.server, local.plane.pki.ca.cert, AGENTS_USER, token=token))


@pytest.fixture(scope="module")
def original_policy(local: LocalCluster) -> Obj:
    """The ClusterPolicy spec as LocalCluster created it (every test puts it back)."""
    with local.admin() as admin:
        return admin.get("ClusterPolicy", operator.POLICY)["spec"]


class NodeWatch(threading.Thread):
    """Every change of the nodes with a label selector, in order, as one watch (admin identity) delivers them.
    It resumes from the last resourceVersion after a dropped connection and relists after 410 Gone (recording the
    listed objects as SYNC events); `wait` blocks on a condition notified at every event (no polling)."""

    def __init__(self, kubeconfig_path: Path, selector: str) -> None:
        super().__init__(name=f"test-watch-{selector}", daemon=True)
        from kubernetes import client, config

        self.selector = selector
        self.events: list[tuple[str, Obj]] = []
        self.latest: dict[str, Obj] = {}
        self._client = config.new_client_from_config(config_file=str(kubeconfig_path))
        self._core = client.CoreV1Api(self._client)
        self._cond = threading.Condition()
        self._stopped = threading.Event()
        self._response: Any = None
        self.rv = self._relist()

    def _record(self, kind: str, obj: Obj) -> None:
        with self._cond:
            name = obj["metadata"]["name"]
            if kind == "DELETED":
                self.latest.pop(name, None)
            else:
                self.latest[name] = obj
            self.events.append((kind, obj))
            self._cond.notify_all()

    def _relist(self) -> str:
        data = json.loads(self._core.list_node(label_selector=self.selector, _preload_content=False).data)
        listed = {o["metadata"]["name"]: o for o in data.get("items") or []}
        for name, obj in list(self.latest.items()):
            if name not in listed:
                self._record("DELETED", obj)
        for obj in listed.values():
            self._record("SYNC", obj)
        return data["metadata"]["resourceVersion"]

    def run(self) -> None:
        from kubernetes.client.exceptions import ApiException

        while not self._stopped.is_set():
            try:
                self._follow()
            except Exception as exc:
                if self._stopped.is_set():
                    return
                if isinstance(exc, ApiException) and exc.status == 410:
                    with contextlib.suppress(Exception):
                        self.rv = self._relist()
                self._stopped.wait(0.2)  # kube-apiserver restarting: resume from self.rv

    def _follow(self) -> None:
        from kubernetes.watch.watch import iter_resp_lines

        self._response = self._core.list_node(
            watch=True, label_selector=self.selector, resource_version=self.rv, allow_watch_bookmarks=True,
            timeout_seconds=60, _preload_content=False)
        for line in iter_resp_lines(self._response):
            if self._stopped.is_set():
                return
            if not line.strip():
                continue
            event = json.loads(line)
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                if obj.get("code") == 410:  # too old (a restarted API server's watch cache): relist
                    self.rv = self._relist()
                return
            self.rv = obj.get("metadata", {}).get("resourceVersion", self.rv)
            if kind in ("ADDED", "MODIFIED", "DELETED"):
                self._record(kind, obj)

    def stop(self) -> None:
        self._stopped.set()
        response = self._response
        if response is not None:
            with contextlib.suppress(Exception):
                response.shutdown()  # ends a blocked read at once
        self.join(timeout=10)
        self._client.close()

    # ---- reading what was seen ------------------------------------------------------------------------------
    def wait(self, predicate: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    states = {n: self.states(n) for n in sorted(self.latest)[:5]}
                    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what or 'the agents'}; "
                                f"states seen {states}", pytrace=False)
                self._cond.wait(left)

    def node(self, name: str) -> Obj:
        with self._cond:
            return copy.deepcopy(self.latest[name])

    def has(self, name: str) -> bool:
        with self._cond:
            return name in self.latest

    def labels(self, name: str) -> dict[str, str]:
        with self._cond:
            return dict(self.latest[name]["metadata"].get("labels") or {})

    def state(self, name: str) -> str | None:
        with self._cond:
            return self.labels(name).get(L.MIG_CONFIG_STATE) if name in self.latest else None

    def allocatable(self, name: str) -> dict[str, int]:
        with self._cond:
            return nonzero(self.latest[name].get("status", {}).get("allocatable") or {}) if name in self.latest \
                else {}

    def objects(self, name: str) -> list[Obj]:
        """The node's versions as the watch delivered them (not deletions)."""
        with self._cond:
            return [o for k, o in self.events if k != "DELETED" and o["metadata"]["name"] == name]

    def states(self, name: str) -> list[str]:
        """The distinct successive `nvidia.com/mig.config.state` values the node had (absence left out)."""
        seen: list[str | None] = []
        for obj in self.objects(name):
            append_new(seen, (obj["metadata"].get("labels") or {}).get(L.MIG_CONFIG_STATE))
        return [s for s in seen if s is not None]

    def wait_state(self, name: str, *values: str, timeout: float = 20.0) -> str:
        self.wait(lambda: self.state(name) in values, timeout, f"{name}: {L.MIG_CONFIG_STATE} in {values}")
        state = self.state(name)
        assert state is not None
        return state


class LogLines(logging.Handler):
    """The agents' log records (logger mig_conformance.agents), to wait for a message or check its absence."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._cond = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self._cond:
            self.records.append(record)
            self._cond.notify_all()

    def messages(self, threads: set[int] | None = None) -> list[str]:
        with self._cond:
            return [r.getMessage() for r in self.records if threads is None or r.thread in threads]

    def wait(self, text: str, timeout: float = 20.0, threads: set[int] | None = None) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not any(text in m for m in self.messages(threads)):
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"the agents never logged {text!r}; last lines: {self.messages()[-10:]}",
                                pytrace=False)
                self._cond.wait(left)


def eventually(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """For the agents' own in-memory state (no API object to watch): check every 20 ms."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


class Rig:
    """One test's world on the shared control plane: its nodes, its watch, its agents, and every change it makes to
    shared objects (ClusterPolicy, ConfigMaps, RBAC). Each is undone through `stack` (the fixture's ExitStack) when
    the test ends, in reverse order of the changes (so agents stop before their nodes go, the ClusterPolicy is put
    back last), every undo run even when the test or another undo failed."""

    def __init__(self, local: LocalCluster, agents_kubeconfig: Path, original_policy: Obj, folder: Path,
                 stack: contextlib.ExitStack) -> None:
        self.local, self.agents_kubeconfig, self.original_policy = local, agents_kubeconfig, original_policy
        self.folder, self.stack = folder, stack
        self.id = uuid.uuid4().hex[:8]
        self.selector = f"{TEST_LABEL}={self.id}"
        self.admin = stack.enter_context(local.admin())
        self.stack.callback(self._put_policy, original_policy)
        self.set_policy(MIXED)
        self.log = LogLines()
        logger = logging.getLogger("mig_conformance.agents")
        level = logger.level
        logger.addHandler(self.log)
        logger.setLevel(logging.INFO)
        self.stack.callback(logger.setLevel, level)
        self.stack.callback(logger.removeHandler, self.log)
        self.watch = NodeWatch(local.admin_kubeconfig, self.selector)
        self.watch.start()
        self.stack.callback(self.watch.stop)
        self.bodies: dict[str, Obj] = {}  # name -> the Node object as created
        self.stack.callback(self._delete_nodes)  # after the agents stop (registered later, so they stop first)

    # ---- nodes ------------------------------------------------------------------------------------------------
    def add_node(self, suffix: str, instance_type: str, labels: dict[str, str] | None = None) -> str:
        """A kwok GPU node of an instance type, labelled as nodes.register labels it (plus TEST_LABEL)."""
        name = f"agents-{self.id}-{suffix}"
        spec = parse_fleet(instance_type)[0]
        n = len(self.bodies)
        body = nodes.node_body(spec, name, f"10.1.{n // 250}.{n % 250 + 1}", False)
        body["metadata"]["labels"].update({TEST_LABEL: self.id, **(labels or {})})
        return self._create(body)

    def add_cpu_node(self, suffix: str) -> str:
        """A kwok node without GPUs (not `nvidia.com/gpu.present`)."""
        name = f"agents-{self.id}-{suffix}"
        capacity = {"cpu": "2", "memory": "8Gi", "pods": "110"}
        return self._create({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {L.INSTANCE_TYPE: "m5.large", TEST_LABEL: self.id},
                         "annotations": {"kwok.x-k8s.io/node": "fake"}},
            "status": {"capacity": capacity, "allocatable": dict(capacity)}})

    def _create(self, body: Obj) -> str:
        name = body["metadata"]["name"]
        self.bodies[name] = body
        self.admin.create(body)
        return name

    def recreate(self, name: str) -> None:
        """A new Node object (new uid) of a deleted node's name."""
        self._create(copy.deepcopy(self.bodies[name]))

    def delete_node(self, name: str) -> None:
        self.admin.delete("Node", name)

    def _delete_nodes(self) -> None:
        for name in self.bodies:
            self.admin.delete("Node", name)

    def get(self, name: str) -> Obj:
        return self.admin.get("Node", name)

    def label(self, name: str, key: str, value: str | None) -> None:
        self.admin.request("PATCH", path_of("Node", name), {"metadata": {"labels": {key: value}}},
                           content_type="application/strategic-merge-patch+json")

    def restart_api_server(self) -> None:
        """Stop kube-apiserver if it runs and start it again, then drop the admin client's connection: the
        server closed it, and rest.Rest retries only some of the errors a dead TLS connection gives."""
        try:
            self.local.plane.restart("kube-apiserver")
        finally:
            self.admin.close()

    # ---- shared objects ---------------------------------------------------------------------------------------
    def set_policy(self, sections: Obj) -> None:
        """The ClusterPolicy with these spec sections (mig, migManager) replaced (put back when the test ends)."""
        self._put_policy({**self.original_policy, **copy.deepcopy(sections)})

    def _put_policy(self, spec: Obj) -> None:
        policy = self.admin.get("ClusterPolicy", operator.POLICY)
        policy["spec"] = copy.deepcopy(spec)
        self.admin.request("PUT", path_of("ClusterPolicy", operator.POLICY), policy)

    def create_config_map(self, name: str, text: str) -> None:
        self.stack.callback(self.admin.delete, "ConfigMap", name, operator.NAMESPACE)
        self.admin.create({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": name, "namespace": operator.NAMESPACE},
                           "data": {"config.yaml": text}})

    def agents_role(self) -> Obj:
        return next(copy.deepcopy(d) for d in operator.agents_rbac() if d["kind"] == "ClusterRole")

    def restrict_agents(self, resource: str) -> None:
        """Take `resource` (e.g. nodes/status) out of the agents' ClusterRole, and wait until the API server's
        authorizer refuses them a patch of it; `restore_agents()` (and the test's end) puts the role back."""
        self.stack.callback(self.restore_agents)
        role = self.agents_role()
        role["rules"] = [{**r, "resources": [x for x in r["resources"] if x != resource]} for r in role["rules"]]
        self.admin.replace({**role, "rules": [r for r in role["rules"] if r["resources"]]})
        kind, _, sub = resource.partition("/")
        eventually(lambda: not self.agents_may("patch", kind, sub), 10, f"RBAC without {resource} in effect")

    def restore_agents(self) -> None:
        self.admin.replace(self.agents_role())

    def agents_may(self, verb: str, resource: str, subresource: str = "") -> bool:
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {
            "user": AGENTS_USER, "groups": ["system:serviceaccounts", f"system:serviceaccounts:{operator.NAMESPACE}",
                                            "system:authenticated"],
            "resourceAttributes": {"verb": verb, "resource": resource, "subresource": subresource}}}
        answer = self.admin.request("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", review)
        return bool(answer["status"].get("allowed"))

    # ---- agents -----------------------------------------------------------------------------------------------
    def agents(self, prepare: Callable[[Agents], None] | None = None, ready_timeout: float = 20.0,
               **options: Any) -> Agents:
        """Start the agents in this process as their ServiceAccount, serving this test's GPU nodes only."""
        opts = {"mig_manager_delay": 0.05, "state_dir": self.folder / "state", "resync": 2, "workers": 4,
                "node_selector": f"{L.GPU_PRESENT}=true,{self.selector}", **options}
        api = KubeApi(str(self.agents_kubeconfig), pool_size=int(opts["workers"]) + 4)
        self.stack.callback(api.close)
        agents = Agents(Context(api, Options(**opts)))
        if prepare is not None:
            prepare(agents)
        self.stack.callback(agents.stop)
        agents.start()
        assert agents.wait_ready(ready_timeout), "agents not ready"
        return agents


@pytest.fixture
def rig(local: LocalCluster, agents_kubeconfig: Path, original_policy: Obj, tmp_path: Path) -> Iterator[Rig]:
    local.stop_agents()  # the agents process (if the process tier ran first) would serve these nodes too
    with contextlib.ExitStack() as stack:
        yield Rig(local, agents_kubeconfig, original_policy, tmp_path, stack)


def last_run(agents: Agents, name: str) -> RunRecord:
    """The node's last finished mig-manager run (recorded just after its final state is written)."""
    eventually(lambda: name in agents.nodes and bool(agents.nodes[name].runs), what=f"a finished run on {name}")
    return agents.nodes[name].runs[-1]


def thread_ids(agents: Agents, prefix: str) -> set[int]:
    return {t.ident for t in agents._threads if t.name.startswith(prefix) and t.ident is not None}


def test_fresh_node_gets_full_gpus_and_gfd_labels_and_keeps_foreign_labels(rig: Rig) -> None:
    p5 = rig.add_node("p5", "p5.48xlarge", {"team": "ml"})
    cpu = rig.add_cpu_node("cpu-0")  # not selected: never touched
    cpu_labels = rig.get(cpu)["metadata"]["labels"]
    agents = rig.agents()
    rig.watch.wait(lambda: "nvidia.com/gpu" in rig.watch.allocatable(p5), what="the device plugin")
    node = rig.get(p5)
    assert nonzero(node["status"]["capacity"]) == nonzero(node["status"]["allocatable"]) == {"nvidia.com/gpu": 8}
    assert node["status"]["capacity"]["cpu"] == "192"
    labels = node["metadata"]["labels"]
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3" and labels["nvidia.com/mig.capable"] == "true"
    assert labels["team"] == "ml" and labels[L.INSTANCE_TYPE] == "p5.48xlarge"
    assert L.MIG_CONFIG not in labels  # no ClusterPolicy default configured
    cpu_node = rig.get(cpu)
    assert cpu_node["metadata"]["labels"] == cpu_labels and cpu not in agents.nodes
    assert not nonzero(cpu_node["status"]["allocatable"])


def test_all_balanced_pending_then_success_with_mixed_resources(rig: Rig) -> None:
    p5 = rig.add_node("p5", "p5.48xlarge")
    rig.agents(mig_manager_delay=0.3)
    rig.label(p5, L.MIG_CONFIG, "all-balanced")
    assert rig.watch.wait_state(p5, "pending") == "pending"
    assert rig.watch.wait_state(p5, "success", "failed") == "success"
    assert rig.watch.states(p5) == ["pending", "success"]
    seen = [(o["metadata"]["labels"].get(L.MIG_CONFIG_STATE), nonzero(o["status"]["allocatable"]))
            for o in rig.watch.objects(p5)]
    assert next(a for s, a in seen if s == "pending") == {"nvidia.com/gpu": 8}  # unchanged while mig-manager works
    changes: list[dict[str, int]] = []
    for _, a in seen:
        if a and (not changes or changes[-1] != a):
            changes.append(a)
    assert changes == [{"nvidia.com/gpu": 8}, BALANCED_H100]  # one switch, at the run's end
    node = rig.get(p5)
    assert nonzero(node["status"]["allocatable"]) == BALANCED_H100
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == "0"  # kubelet keeps the old name
    assert node["metadata"]["labels"]["nvidia.com/mig-3g.40gb.count"] == "8"


def test_success_is_written_after_the_new_allocatable(rig: Rig) -> None:
    p5 = rig.add_node("p5", "p5.48xlarge")
    rig.agents()
    rig.label(p5, L.MIG_CONFIG, "all-balanced")
    rig.watch.wait_state(p5, "success")
    seen = [(o["metadata"]["labels"].get(L.MIG_CONFIG_STATE), nonzero(o["status"]["allocatable"]))
            for o in rig.watch.objects(p5)]
    first_success = next(i for i, (state, _) in enumerate(seen) if state == "success")
    assert seen[first_success][1] == BALANCED_H100


def test_strategy_switch_to_single_with_all_1g(rig: Rig) -> None:
    p5 = rig.add_node("p5", "p5.48xlarge")
    rig.agents()
    rig.label(p5, L.MIG_CONFIG, "all-1g.10gb")
    rig.watch.wait_state(p5, "success")
    assert rig.watch.allocatable(p5) == {"nvidia.com/mig-1g.10gb": 56}
    rig.set_policy({**MIXED, "mig": {"strategy": "single"}})
    rig.watch.wait(lambda: rig.watch.labels(p5).get(L.MIG_STRATEGY) == "single", what="the single strategy")
    first_single = next(o for o in rig.watch.objects(p5) if o["metadata"]["labels"].get(L.MIG_STRATEGY) == "single")
    assert nonzero(first_single["status"]["allocatable"]) == {"nvidia.com/gpu": 56}  # published before the label
    node = rig.get(p5)
    assert node["status"]["allocatable"]["nvidia.com/mig-1g.10gb"] == "0"
    labels = node["metadata"]["labels"]
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3-MIG-1g.10gb"
    assert not any(k.startswith("nvidia.com/mig-1g.10gb.") for k in labels)  # GFD's mixed labels removed
    assert rig.watch.states(p5) == ["pending", "success"]  # a strategy change runs no mig-manager


def test_unknown_config_fails_without_pending_and_leaves_gpus(rig: Rig) -> None:
    p5 = rig.add_node("p5", "p5.48xlarge")
    agents = rig.agents()
    rig.label(p5, L.MIG_CONFIG, "no-such-config")
    assert rig.watch.wait_state(p5, "success", "failed") == "failed"
    assert rig.watch.states(p5) == ["failed"]
    assert nonzero(rig.get(p5)["status"]["allocatable"]) == {"nvidia.com/gpu": 8}
    assert "no-such-config" in (last_run(agents, p5).reason or "")


def test_missing_config_map_fails_and_is_reread_at_the_next_run(rig: Rig) -> None:
    p5 = rig.add_node("p5", "p5.48xlarge")
    custom = f"agents-{rig.id}-custom"
    rig.set_policy({**MIXED, "migManager": {"config": {"name": custom}}})
    agents = rig.agents()
    rig.label(p5, L.MIG_CONFIG, "all-balanced")
    assert rig.watch.wait_state(p5, "success", "failed") == "failed"
    assert f"ConfigMap {operator.NAMESPACE}/{custom} not found" in (last_run(agents, p5).reason or "")
    rig.create_config_map(custom, "version: v1\nmig-configs:\n  whole:\n    - devices: all\n      mig-enabled: true\n"
                                  "      mig-devices: {'7g.80gb': 1}\n")
    rig.label(p5, L.MIG_CONFIG_STATE, None)
    rig.label(p5, L.MIG_CONFIG, "whole")
    assert rig.watch.wait_state(p5, "success", "failed") == "success"
    assert nonzero(rig.get(p5)["status"]["allocatable"]) == {"nvidia.com/mig-7g.80gb": 8}


def test_label_changed_during_a_run_is_applied_afterwards(rig: Rig) -> None:
    p5 = rig.add_node("p5", "p5.48xlarge")
    rig.agents(mig_manager_delay=0.3)
    rig.label(p5, L.MIG_CONFIG, "all-balanced")
    rig.watch.wait_state(p5, "pending")
    rig.label(p5, L.MIG_CONFIG, "all-3g.40gb")
    rig.watch.wait(lambda: len(rig.watch.states(p5)) == 4 and rig.watch.state(p5) == "success", what="two runs")
    assert rig.watch.states(p5) == ["pending", "success", "pending", "success"]
    assert nonzero(rig.get(p5)["status"]["allocatable"]) == {"nvidia.com/mig-3g.40gb": 16}


def test_cluster_policy_default_config_labels_mig_capable_nodes(rig: Rig) -> None:
    rig.set_policy({**MIXED, "migManager": {"config": {"name": "default-mig-parted-config",
                                                       "default": "all-disabled"}}})
    p5 = rig.add_node("p5", "p5.48xlarge")
    g5 = rig.add_node("g5", "g5.xlarge")
    rig.agents()
    assert rig.watch.wait_state(p5, "success", "failed") == "success"
    labels = rig.get(p5)["metadata"]["labels"]
    assert labels[L.MIG_CONFIG] == "all-disabled" and labels["nvidia.com/gpu.deploy.mig-manager"] == "true"
    rig.watch.wait(lambda: "nvidia.com/gpu" in rig.watch.allocatable(g5), what="the g5 device plugin")
    g5_node = rig.get(g5)
    assert L.MIG_CONFIG not in g5_node["metadata"]["labels"]  # no MIG-capable GPU: no mig-manager
    assert nonzero(g5_node["status"]["allocatable"]) == {"nvidia.com/gpu": 1}
    assert rig.watch.states(g5) == []


def test_with_reboot_from_the_cluster_policy_on_ampere_without_gpu_reset(rig: Rig) -> None:
    rig.set_policy({**MIXED, "migManager": {"config": {"name": "default-mig-parted-config"},
                                            "env": [{"name": "WITH_REBOOT", "value": "true"}]}})
    p4d = rig.add_node("p4d", "p4d.24xlarge")
    rig.agents(gpu_reset_works=False)
    rig.label(p4d, L.MIG_CONFIG, "all-balanced")
    rig.watch.wait_state(p4d, "success", "failed")
    assert rig.watch.states(p4d) == ["pending", "rebooting", "pending", "success"]
    assert nonzero(rig.get(p4d)["status"]["allocatable"]) == {
        "nvidia.com/mig-1g.5gb": 16, "nvidia.com/mig-2g.10gb": 8, "nvidia.com/mig-3g.20gb": 8}


def test_restart_keeps_gpu_state(rig: Rig) -> None:
    p5 = rig.add_node("p5", "p5.48xlarge")
    first = rig.agents()
    rig.label(p5, L.MIG_CONFIG, "all-balanced")
    rig.watch.wait_state(p5, "success")
    first.stop()
    second = rig.agents()
    assert [s for _, s in last_run(second, p5).states] == ["success"]  # assert passed at once: no pending
    assert rig.watch.states(p5) == ["pending", "success"]
    assert nonzero(rig.get(p5)["status"]["allocatable"]) == BALANCED_H100


def test_restart_without_state_dir_reconfigures_from_scratch(rig: Rig) -> None:
    p5 = rig.add_node("p5", "p5.48xlarge")
    first = rig.agents(state_dir=None)
    rig.label(p5, L.MIG_CONFIG, "all-balanced")
    rig.watch.wait_state(p5, "success")
    first.stop()
    rig.agents(state_dir=None)
    rig.watch.wait(lambda: len(rig.watch.states(p5)) == 4, what="a second run")
    assert rig.watch.states(p5) == ["pending", "success", "pending", "success"]
    assert nonzero(rig.get(p5)["status"]["allocatable"]) == BALANCED_H100


def test_api_outage_during_a_run_then_recovery(rig: Rig, local: LocalCluster) -> None:
    """kube-apiserver stopped while a run is pending: the run's final write and both watches fail meanwhile;
    the write is retried and the watches relist once it is back."""
    p5 = rig.add_node("p5", "p5.48xlarge")
    agents = rig.agents(mig_manager_delay=1.0)
    watches = thread_ids(agents, "watch-")
    rig.label(p5, L.MIG_CONFIG, "all-balanced")
    rig.watch.wait_state(p5, "pending")
    try:
        local.plane.stop_process("kube-apiserver", grace=2.0)
        rig.log.wait(f"patch node {p5} status: API server unavailable", timeout=10)  # the run's end, refused
        for what in ("nodes", "clusterpolicies"):
            rig.log.wait(f"watch {what}: API server unavailable", timeout=10, threads=watches)
    finally:
        rig.restart_api_server()
    assert rig.watch.wait_state(p5, "success", "failed", timeout=60) == "success"
    assert rig.watch.states(p5) == ["pending", "success"]
    assert nonzero(rig.get(p5)["status"]["allocatable"]) == BALANCED_H100
    rig.label(p5, L.MIG_CONFIG, "all-1g.10gb")  # the watches work again
    rig.watch.wait(lambda: rig.watch.allocatable(p5) == {"nvidia.com/mig-1g.10gb": 56}, 30, "all-1g.10gb")
    rig.log.wait("watch nodes: API server reachable again", threads=watches)


def test_watch_from_a_too_old_resource_version_relists(rig: Rig, local: LocalCluster) -> None:
    """A real 410 Gone: kube-apiserver restarts between the agents' node list and their watch from the list's
    resourceVersion, which is older than the new server's watch cache. The test holds the agents' watch thread in
    its list callback to open that window (no other seam); the agents must relist at once and keep working."""
    p5 = rig.add_node("p5", "p5.48xlarge")
    lists: list[float] = []
    paused, resume = threading.Event(), threading.Event()

    def prepare(agents: Agents) -> None:
        on_list = agents._nodes_list

        def held(items: list[Obj]) -> None:
            on_list(items)
            lists.append(time.monotonic())
            if len(lists) == 1:  # between the first list and its watch
                paused.set()
                resume.wait(60)

        agents._nodes_list = held

    try:
        agents = rig.agents(prepare=prepare, resync=300)  # no relist but after an error
        assert paused.wait(10)
        listed_rv = rig.admin.request("GET", "/api/v1/nodes", query={"labelSelector": rig.selector})[
            "metadata"]["resourceVersion"]  # at least the agents' list's
        rig.label(p5, "mig-conformance.io/touched", "1")  # etcd moves past it
        rig.restart_api_server()
        probe = KubeApi(str(local.admin_kubeconfig))
        try:
            deadline = time.monotonic() + 30
            while True:  # the new API server answers that resourceVersion with 410 (once its watch cache is up)
                try:
                    for _ in probe.watch_nodes(rig.selector, listed_rv, 1):
                        pass
                    pytest.fail(f"a watch from resourceVersion {listed_rv} was served after the restart")
                except Gone:
                    break
                except Unavailable:
                    assert time.monotonic() < deadline, "kube-apiserver not serving watches after its restart"
                    time.sleep(0.1)
        finally:
            probe.close()
        # and its RBAC authorizer has synced (until then it refuses the agents with 403)
        eventually(lambda: rig.agents_may("watch", "nodes"), 30, "the agents authorized again")
    finally:
        resume.set()
    eventually(lambda: len(lists) >= 2, 10, "a relist after the 410")
    assert lists[1] - lists[0] < 60  # not the resync's relist (300 s)
    watch_thread = thread_ids(agents, "watch-nodes")
    assert not [m for m in rig.log.messages(watch_thread) if m.startswith("watch nodes")]  # no error: it was Gone
    rig.label(p5, L.MIG_CONFIG, "all-balanced")  # the new watch works
    assert rig.watch.wait_state(p5, "success", "failed") == "success"
    assert nonzero(rig.get(p5)["status"]["allocatable"]) == BALANCED_H100


def test_refused_write_during_a_run_starts_the_run_over(rig: Rig) -> None:
    """A 403 on the run's write of the device plugin's status (RBAC without nodes/status): the run is dropped and
    started over, and the retry finds the configuration applied."""
    p5 = rig.add_node("p5", "p5.48xlarge")
    agents = rig.agents(mig_manager_delay=0.3)
    rig.restrict_agents("nodes/status")
    rig.label(p5, L.MIG_CONFIG, "all-balanced")
    rig.watch.wait_state(p5, "pending")
    rig.log.wait(f"node {p5}: 403")  # the run's next write (the device plugin's status) is refused
    refused = next(m for m in rig.log.messages() if m.startswith(f"node {p5}: 403"))
    assert 'cannot patch resource "nodes/status"' in refused and not agents.nodes[p5].runs
    rig.restore_agents()
    assert rig.watch.wait_state(p5, "success", "failed") == "success"
    assert rig.watch.states(p5) == ["pending", "success"]
    assert nonzero(rig.get(p5)["status"]["allocatable"]) == BALANCED_H100
    run = last_run(agents, p5)
    assert [r.config for r in agents.nodes[p5].runs] == ["all-balanced"]  # the refused run never finished
    assert [s for _, s in run.states] == ["success"]  # the retry found it applied


def test_status_overwritten_by_someone_else_is_repaired(rig: Rig) -> None:
    p5 = rig.add_node("p5", "p5.48xlarge")
    rig.agents()
    stale = rig.get(p5)  # nvidia.com/gpu: 8
    rig.label(p5, L.MIG_CONFIG, "all-balanced")
    rig.watch.wait_state(p5, "success")
    done = len(rig.watch.objects(p5))
    stale["metadata"].pop("resourceVersion")  # a controller that rewrites the whole status from a stale copy
    rig.admin.request("PUT", path_of("Node", p5, sub="status"), stale)
    rig.watch.wait(lambda: any(nonzero(o["status"]["allocatable"]) == {"nvidia.com/gpu": 8}
                               for o in rig.watch.objects(p5)[done:]), what="the overwrite")
    rig.watch.wait(lambda: rig.watch.allocatable(p5) == BALANCED_H100, what="the repair")
    assert nonzero(rig.get(p5)["status"]["capacity"]) == BALANCED_H100


def test_deleted_node_is_forgotten_with_its_gpu_state(rig: Rig) -> None:
    p5 = rig.add_node("p5", "p5.48xlarge")
    agents = rig.agents()
    rig.label(p5, L.MIG_CONFIG, "all-balanced")
    rig.watch.wait_state(p5, "success")
    saved = rig.folder / "state" / f"{p5}.nvml.json"
    assert saved.is_file()
    rig.delete_node(p5)
    eventually(lambda: p5 not in agents.nodes and not saved.exists(), 10, "the node and its GPU state forgotten")
    rig.recreate(p5)  # a new instance of that name: fresh GPUs
    rig.watch.wait(lambda: rig.watch.has(p5) and rig.watch.allocatable(p5) == {"nvidia.com/gpu": 8},
                   what="the new node's GPUs")
    assert L.MIG_CONFIG_STATE not in rig.get(p5)["metadata"]["labels"]


def test_hundred_nodes_reconfigure_concurrently(rig: Rig) -> None:
    delay, workers = 1.0, 8
    names = [rig.add_node(f"p5-{i}", "p5.48xlarge") for i in range(100)]
    agents = rig.agents(mig_manager_delay=delay, workers=workers, ready_timeout=120)
    for name in names:
        rig.label(name, L.MIG_CONFIG, "all-balanced")
    rig.watch.wait(lambda: all(rig.watch.state(n) in ("success", "failed") for n in names), 120, "100 runs")
    assert all(rig.watch.state(n) == "success" and rig.watch.allocatable(n) == BALANCED_H100 for n in names)
    # concurrent: more runs overlap than there are workers (how long 100 nodes take: bench_local_reconfigure.py)
    eventually(lambda: all(agents.nodes[n].runs for n in names), what="the run records")
    spans = [(r.states[0][0], r.states[-1][0]) for n in names for r in agents.nodes[n].runs[-1:]]
    most = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert most > workers, f"at most {most} runs at once: a run holds a worker"


# ---- the agents process against a real control plane (LocalCluster: etcd, kube-apiserver, kwok, ...) ----------


@pytest.fixture
def agents_process(local: LocalCluster) -> None:
    """The agents process running on the module's cluster (started once, kept for the tests that follow)."""
    if AGENTS not in local.plane.procs or not processes.alive(local.plane.procs[AGENTS]):
        local.start_agents(mig_manager_delay=0.5)


def local_nodes(cluster: Any) -> list[str]:
    """The module's own four nodes (not a rig's, should one be left over)."""
    return sorted(n.name for n in cluster.list_gpu_nodes() if TEST_LABEL not in n.labels)


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


@pytest.mark.usefixtures("agents_process")
def test_local_all_balanced_single_strategy_and_unknown_config(local: LocalCluster) -> None:
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


@pytest.mark.usefixtures("agents_process")
def test_local_agent_restart_keeps_gpu_state(local: LocalCluster) -> None:
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


@pytest.mark.usefixtures("agents_process")
def test_local_api_server_restart_during_a_reconfiguration(local: LocalCluster) -> None:
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


@pytest.mark.usefixtures("agents_process")
def test_local_kwok_leaves_resources_and_overwrites_are_repaired(local: LocalCluster) -> None:
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
