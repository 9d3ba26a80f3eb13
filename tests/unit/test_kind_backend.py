"""The kind backend: exact command lines, missing binaries, and the GPU attachment (operator objects, node labels,
simulated agents) run for real against the local backend's control plane with kind-like nodes."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mig_conformance.cluster import kind as K
from mig_conformance.cluster.base import ClusterError
from mig_conformance.k8s import labels as L
from support.control_plane import control_plane_assets

TOOLS = K.Tools("/opt/kind/kind", "/opt/kube/kubectl")


def _exe(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


# ---- command lines -----------------------------------------------------------------------------------------
def test_create_argv_with_config_and_image() -> None:
    assert K.create_argv(TOOLS, "mig-lab", "/w/kubeconfig", "/c/kind.yaml", "kindest/node:v1.33.1") == [
        "/opt/kind/kind", "create", "cluster", "--name", "mig-lab", "--kubeconfig", "/w/kubeconfig",
        "--config", "/c/kind.yaml", "--image", "kindest/node:v1.33.1", "--wait", "180s"]


def test_create_argv_minimal() -> None:
    assert K.create_argv(TOOLS, "lab", "/w/kc") == [
        "/opt/kind/kind", "create", "cluster", "--name", "lab", "--kubeconfig", "/w/kc", "--wait", "180s"]


def test_other_command_lines() -> None:
    assert K.get_clusters_argv(TOOLS) == ["/opt/kind/kind", "get", "clusters"]
    assert K.get_kubeconfig_argv(TOOLS, "lab") == ["/opt/kind/kind", "get", "kubeconfig", "--name", "lab"]
    assert K.delete_argv(TOOLS, "lab", "/w/kc") == [
        "/opt/kind/kind", "delete", "cluster", "--name", "lab", "--kubeconfig", "/w/kc"]
    assert K.wait_nodes_argv(TOOLS, "/w/kc") == [
        "/opt/kube/kubectl", "--kubeconfig", "/w/kc", "wait", "--for=condition=Ready", "nodes", "--all",
        "--timeout=180s"]


def test_agents_command_line(tmp_path: Path) -> None:
    agents = K.AgentsProcess(tmp_path / "kc", tmp_path / "agents", namespace="gpu-operator", python="/py")
    assert agents.argv() == [
        "/py", "-m", "mig_conformance.simulators.agents", "--kubeconfig", str(tmp_path / "kc"),
        "--namespace", "gpu-operator", "--state-dir", str(tmp_path / "agents" / "state"),
        "--log", str(tmp_path / "agents" / "agents.log"), "--ready-file", str(tmp_path / "agents" / "ready")]


# ---- binaries --------------------------------------------------------------------------------------------------
def test_tools_from_path(tmp_path: Path) -> None:
    kind, kubectl = _exe(tmp_path / "bin", "kind"), _exe(tmp_path / "bin", "kubectl")
    assert K.find_tools(path=str(tmp_path / "bin")) == K.Tools(str(kind), str(kubectl))


def test_tools_from_options_win_over_path(tmp_path: Path) -> None:
    _exe(tmp_path / "bin", "kind")
    _exe(tmp_path / "bin", "kubectl")
    mine = _exe(tmp_path / "mine", "kind-v0.30")
    assert K.find_tools(kind_bin=str(mine), path=str(tmp_path / "bin")).kind == str(mine)


@pytest.mark.parametrize(("present", "missing"), [(("kubectl",), "kind"), (("kind",), "kubectl")])
def test_a_missing_binary_is_named(tmp_path: Path, present: tuple[str, ...], missing: str) -> None:
    for name in present:
        _exe(tmp_path / "bin", name)
    with pytest.raises(K.KindUnavailable) as err:
        K.find_tools(path=str(tmp_path / "bin"))
    text = str(err.value)
    assert f"{missing}: '{missing}' is not on PATH" in text
    assert f"{present[0]}:" not in text
    assert "never downloads" in text and "kind_bin/kubectl_bin" in text


def test_a_bad_option_path_is_named(tmp_path: Path) -> None:
    _exe(tmp_path / "bin", "kubectl")
    not_exec = tmp_path / "kind"
    not_exec.write_text("")
    with pytest.raises(K.KindUnavailable, match=rf"kind: '{not_exec}' \(the clusters file's kind_bin\) is not an"):
        K.find_tools(kind_bin=str(not_exec), path=str(tmp_path / "bin"))


def test_unavailable_reason_names_missing_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KIND_EXPERIMENTAL_PROVIDER", raising=False)
    _exe(tmp_path / "bin", "kind")
    _exe(tmp_path / "bin", "kubectl")
    reason = K.unavailable_reason(path=str(tmp_path / "bin"))
    assert reason == "kind backend: the container engine 'docker' is not on PATH (kind runs nodes as containers)"


def test_unavailable_reason_when_the_engine_does_not_answer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KIND_EXPERIMENTAL_PROVIDER", raising=False)
    for name in ("kind", "kubectl", "docker"):
        _exe(tmp_path / "bin", name)
    seen = []

    def runner(argv, **kw):
        seen.append(argv)
        return subprocess.CompletedProcess(argv, 1, "", "Cannot connect to the Docker daemon. Is it running?\n")

    reason = K.unavailable_reason(path=str(tmp_path / "bin"), runner=runner)
    assert seen == [[str(tmp_path / "bin" / "docker"), "info"]]
    assert reason == ("kind backend: 'docker info' failed (is the docker engine running?): Cannot connect to the "
                      "Docker daemon. Is it running?")
    ok = K.unavailable_reason(path=str(tmp_path / "bin"),
                              runner=lambda argv, **kw: subprocess.CompletedProcess(argv, 0, "ok", ""))
    assert ok is None


def test_unavailable_reason_names_missing_kind(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    reason = K.unavailable_reason(path=str(tmp_path / "bin"))
    assert reason is not None and "kind: 'kind' is not on PATH" in reason and "kubectl: 'kubectl'" in reason


def test_failed_command_is_a_cluster_error_with_its_output() -> None:
    def runner(argv, **kw):
        return subprocess.CompletedProcess(argv, 1, "", "ERROR: failed to create cluster: node(s) already exist\n")

    with pytest.raises(ClusterError, match=r"`/opt/kind/kind get clusters` exited 1: ERROR: failed to create"):
        K.Kind(TOOLS, runner).clusters()


def test_open_with_missing_kind_fails_before_anything_runs(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    from mig_conformance.cluster.registry import open_cluster

    with pytest.raises(K.KindUnavailable, match="kind: 'kind' is not on PATH"):
        open_cluster("kind:lab")


def test_the_clusters_files_nodes_reach_the_kind_backend(monkeypatch) -> None:
    """A kind entry's `nodes` are its GPU nodes (its arg is the cluster name), not a session key to drop."""
    from mig_conformance.cluster import kind as kind_mod
    from mig_conformance.cluster.registry import open_cluster
    from mig_conformance.cluster.targets import Target

    seen: dict = {}
    monkeypatch.setattr(kind_mod, "open_kind", lambda name, arg, allow, options: seen.update(options) or "opened")
    target = Target("lab", "kind", "mig-lab", {"backend": "kind", "keep": True, "nodes": "p5.48xlarge*2"})
    assert open_cluster(target) == "opened"
    assert seen == {"keep": True, "nodes": "p5.48xlarge*2"}


# ---- which worker gets which instance type ---------------------------------------------------------------
def _nodes(*names: str, control_plane: str = "lab-control-plane", labels: dict | None = None) -> list[dict]:
    out = [{"metadata": {"name": control_plane, "labels": {K.CONTROL_PLANE_ROLE: ""}}}]
    out += [{"metadata": {"name": n, "labels": dict((labels or {}).get(n, {}))}} for n in names]
    return out


def test_fleet_is_assigned_to_workers_in_name_order() -> None:
    got = K.assign_instance_types(_nodes("lab-worker2", "lab-worker", "lab-worker3"), "p5.48xlarge*2,p4d.24xlarge")
    assert got == {"lab-worker": "p5.48xlarge", "lab-worker2": "p5.48xlarge", "lab-worker3": "p4d.24xlarge"}


def test_instance_types_from_the_kind_config_labels_are_kept() -> None:
    nodes = _nodes("lab-worker", "lab-worker2", labels={"lab-worker2": {L.INSTANCE_TYPE: "p4de.24xlarge"}})
    assert K.assign_instance_types(nodes, None) == {"lab-worker2": "p4de.24xlarge"}


def test_default_is_one_p5_on_the_first_worker() -> None:
    assert K.assign_instance_types(_nodes("lab-worker", "lab-worker2"), None) == {"lab-worker": "p5.48xlarge"}


def test_more_gpu_nodes_than_workers_is_an_error() -> None:
    with pytest.raises(ClusterError, match=r"names 3 GPU nodes but the cluster has 1 worker\(s\) \(lab-worker\)"):
        K.assign_instance_types(_nodes("lab-worker"), "p5.48xlarge*3")


def test_no_workers_is_an_error() -> None:
    with pytest.raises(ClusterError, match="no worker nodes"):
        K.assign_instance_types(_nodes(), "p5.48xlarge")


def test_gpu_lists_are_refused() -> None:
    with pytest.raises(ClusterError, match="only EC2 instance types"):
        K.assign_instance_types(_nodes("lab-worker"), "H100-80GBx8")


# ---- attachment against a real API server --------------------------------------------------------------------
class FakeKind:
    """Stands in for the kind binary: `create` hands out the local control plane's admin kubeconfig."""

    def __init__(self, admin_kubeconfig: Path, existing: tuple[str, ...] = ()) -> None:
        self.admin = admin_kubeconfig
        self.existing = list(existing)
        self.calls: list[list[str]] = []

    def __call__(self, argv, **kw) -> subprocess.CompletedProcess:
        argv = list(argv)
        self.calls.append(argv)
        out = ""
        if argv[1:3] == ["get", "clusters"]:
            out = "".join(f"{n}\n" for n in self.existing)
        elif argv[1:3] == ["create", "cluster"]:
            shutil.copy(self.admin, argv[argv.index("--kubeconfig") + 1])
            self.existing.append(argv[argv.index("--name") + 1])
        elif argv[1:3] == ["get", "kubeconfig"]:
            out = self.admin.read_text()
        elif argv[1:3] == ["delete", "cluster"]:
            self.existing.remove(argv[argv.index("--name") + 1])
        return subprocess.CompletedProcess(argv, 0, out, "")


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """A local control plane whose nodes look like a fresh kind cluster: no GPU labels, no GPU Operator."""
    from mig_conformance.cluster.local import nodes
    from mig_conformance.cluster.local.controlplane import ControlPlane
    from mig_conformance.cluster.sim.fleet import parse_fleet

    control_plane_assets()
    spec = parse_fleet("p5.48xlarge")[0]

    def bootstrap(admin) -> None:
        for i, name in enumerate(("lab-control-plane", "lab-worker", "lab-worker2")):
            body = nodes.node_body(spec, name, f"10.0.0.{10 + i}", gpu_taint=False)
            labels = body["metadata"]["labels"]
            for key in (L.GPU_PRESENT, L.INSTANCE_TYPE, nodes.NODEGROUP):
                labels.pop(key, None)
            if name.endswith("control-plane"):
                labels[K.CONTROL_PLANE_ROLE] = ""
            admin.create(body)

    cp = ControlPlane(tmp_path_factory.mktemp("kindlike"))
    cp.start(bootstrap)
    yield cp
    cp.stop()


@pytest.fixture(scope="module")
def tools(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("bin")
    return {"kind_bin": str(_exe(folder, "kind")), "kubectl_bin": str(_exe(folder, "kubectl"))}


def _wait(fn, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(0.1)


def test_create_attach_reconfigure_and_delete(plane, tools: dict[str, str], tmp_path: Path) -> None:
    fake = FakeKind(plane.admin_kubeconfig)
    config = tmp_path / "kind.yaml"
    cluster = K.KindCluster.open("lab", "lab", config=str(config), nodes="p5.48xlarge", allow_changes=True,
                                 runner=fake, **tools)
    workdir = cluster.workdir
    kubeconfig = str(workdir / "kubeconfig")
    try:
        assert fake.calls[:3] == [
            [tools["kind_bin"], "get", "clusters"],
            [tools["kind_bin"], "create", "cluster", "--name", "lab", "--kubeconfig", kubeconfig, "--config",
             str(config), "--wait", "180s"],
            [tools["kubectl_bin"], "--kubeconfig", kubeconfig, "wait", "--for=condition=Ready", "nodes", "--all",
             "--timeout=180s"]]
        assert oct((workdir / "kubeconfig").stat().st_mode & 0o777) == "0o600"
        # operator objects installed, the first worker labelled, the agents serving it
        assert cluster.get_mig_strategy() == "mixed"
        assert cluster.get_mig_config()[0] == "default-mig-parted-config"
        gpu = cluster.list_gpu_nodes()
        assert [n.name for n in gpu] == ["lab-worker"]
        assert gpu[0].labels[L.INSTANCE_TYPE] == "p5.48xlarge"
        assert "lab-worker2" not in [n.name for n in gpu]
        assert cluster.agents is not None and cluster.agents.proc is not None
        node = _wait(lambda: (n := cluster.get_node("lab-worker")).labels.get(L.MIG_CONFIG_STATE) == "success" and n)
        assert node, "the agents never reported the default config"
        assert node.labels.get(L.GPU_PRODUCT, "").startswith("NVIDIA-H100")
        # a reconfiguration goes through the simulated mig-manager and device plugin
        cluster.set_node_label("lab-worker", L.MIG_CONFIG_STATE, None)
        cluster.set_node_label("lab-worker", L.MIG_CONFIG, "all-1g.10gb")
        done = cluster.wait_for_node("lab-worker", lambda n: n.labels.get(L.MIG_CONFIG_STATE) == "success", 60,
                                     "all-1g.10gb")
        assert done.allocatable.get("nvidia.com/mig-1g.10gb") == 56
        assert cluster.restore()
    finally:
        agents = cluster.agents
        cluster.close()
    assert agents is not None and agents.proc is None
    assert fake.calls[-1] == [tools["kind_bin"], "delete", "cluster", "--name", "lab", "--kubeconfig", kubeconfig]
    assert not workdir.exists()
    calls = len(fake.calls)
    cluster.close()  # idempotent
    assert len(fake.calls) == calls


def test_reuse_an_existing_cluster_and_keep_it(plane, tools: dict[str, str]) -> None:
    fake = FakeKind(plane.admin_kubeconfig, existing=("lab",))
    cluster = K.KindCluster.open("lab", "lab", keep=True, agents=False, runner=fake, **tools)
    try:
        assert [c[1:3] for c in fake.calls] == [["get", "clusters"], ["get", "kubeconfig"], ["--kubeconfig", str(
            cluster.workdir / "kubeconfig")]]
        assert cluster.created is False
        assert K.install_operator(cluster.api_client, "gpu-operator") is False  # already there: left alone
        assert [n.name for n in cluster.list_gpu_nodes()] == ["lab-worker"]
    finally:
        cluster.close()
    assert not any(c[1:3] == ["delete", "cluster"] for c in fake.calls)
    assert fake.existing == ["lab"]


def test_someone_elses_kind_cluster_is_not_set_up_without_permission(plane, tools: dict[str, str]) -> None:
    fake = FakeKind(plane.admin_kubeconfig, existing=("theirs",))
    with plane.admin() as admin:  # a cluster the kit never set up: no lab marker on any node
        for node in admin.list("Node"):
            if K.LAB_LABEL in node["metadata"].get("labels", {}):
                admin.request("PATCH", f"/api/v1/nodes/{node['metadata']['name']}",
                              {"metadata": {"labels": {K.LAB_LABEL: None}}},
                              content_type="application/merge-patch+json")
    with pytest.raises(ClusterError, match=r"exists and was not set up by mig-conformance.*--mig-allow-reconfigure"):
        K.KindCluster.open("theirs", "theirs", agents=False, runner=fake, **tools)
    assert not any(c[1:3] == ["delete", "cluster"] for c in fake.calls), "someone else's cluster must never go"
    cluster = K.KindCluster.open("theirs", "theirs", agents=False, allow_changes=True, keep=True, runner=fake, **tools)
    try:
        assert K.is_lab(cluster.api_client.sanitize_for_serialization(cluster.core.list_node().items))
    finally:
        cluster.close()


def test_attach_only_never_creates(plane, tools: dict[str, str]) -> None:
    fake = FakeKind(plane.admin_kubeconfig)
    with pytest.raises(ClusterError, match=r"kind cluster 'gone' does not exist"):
        K.KindCluster.open("gone", "gone", attach_only=True, runner=fake, **tools)
    assert fake.calls == [[tools["kind_bin"], "get", "clusters"]]


def test_a_failed_attach_deletes_the_cluster_it_created(plane, tools: dict[str, str]) -> None:
    fake = FakeKind(plane.admin_kubeconfig)
    with pytest.raises(ClusterError, match="names 5 GPU nodes but the cluster has 2 worker"):
        K.KindCluster.open("lab2", "lab2", nodes="p5.48xlarge*5", agents=False, runner=fake, **tools)
    assert fake.calls[-1][1:5] == ["delete", "cluster", "--name", "lab2"]
    assert fake.existing == []


# ---- a real kind cluster (users' machines with Docker) -----------------------------------------------------
def test_real_kind_cluster(tmp_path: Path) -> None:
    reason = K.unavailable_reason()
    if reason:
        pytest.skip(reason)
    config = tmp_path / "kind.yaml"
    config.write_text("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n"
                      "- role: worker\n")
    name = f"mig-test-{os.getpid()}"
    cluster = K.KindCluster.open(name, name, config=str(config), allow_changes=True)
    try:
        assert [n.instance_type for n in cluster.list_gpu_nodes()] == ["p5.48xlarge"]
    finally:
        cluster.close()
    assert name not in K.Kind(K.find_tools()).clusters()
