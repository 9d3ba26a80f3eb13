"""The kind backend's GPU attachment (operator objects, node labels, simulated agents) run for real against the local
backend's control plane with kind-like nodes (a fake kind binary hands out its kubeconfig), and a real kind cluster
where Docker and kind are installed. Command lines and missing binaries: tests/unit/test_kind_backend.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mig_conformance.cluster import kind as K
from mig_conformance.cluster.base import ClusterError
from mig_conformance.k8s import labels as L
from support.control_plane import control_plane_assets
from support.executables import fake_executable


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
    return {"kind_bin": str(fake_executable(folder, "kind")), "kubectl_bin": str(fake_executable(folder, "kubectl"))}


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
