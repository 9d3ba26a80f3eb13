"""The kind backend: exact command lines, missing binaries, fleet assignment to workers. The GPU attachment against
a real API server is in tests/control_plane/test_kind_attach.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mig_conformance.cluster import kind as K
from mig_conformance.cluster.base import ClusterError
from mig_conformance.k8s import labels as L
from support.executables import fake_executable

TOOLS = K.Tools("/opt/kind/kind", "/opt/kube/kubectl")



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
    kind, kubectl = fake_executable(tmp_path / "bin", "kind"), fake_executable(tmp_path / "bin", "kubectl")
    assert K.find_tools(path=str(tmp_path / "bin")) == K.Tools(str(kind), str(kubectl))


def test_tools_from_options_win_over_path(tmp_path: Path) -> None:
    fake_executable(tmp_path / "bin", "kind")
    fake_executable(tmp_path / "bin", "kubectl")
    mine = fake_executable(tmp_path / "mine", "kind-v0.30")
    assert K.find_tools(kind_bin=str(mine), path=str(tmp_path / "bin")).kind == str(mine)


@pytest.mark.parametrize(("present", "missing"), [(("kubectl",), "kind"), (("kind",), "kubectl")])
def test_a_missing_binary_is_named(tmp_path: Path, present: tuple[str, ...], missing: str) -> None:
    for name in present:
        fake_executable(tmp_path / "bin", name)
    with pytest.raises(K.KindUnavailable) as err:
        K.find_tools(path=str(tmp_path / "bin"))
    text = str(err.value)
    assert f"{missing}: '{missing}' is not on PATH" in text
    assert f"{present[0]}:" not in text
    assert "never downloads" in text and "kind_bin/kubectl_bin" in text


def test_a_bad_option_path_is_named(tmp_path: Path) -> None:
    fake_executable(tmp_path / "bin", "kubectl")
    not_exec = tmp_path / "kind"
    not_exec.write_text("")
    with pytest.raises(K.KindUnavailable, match=rf"kind: '{not_exec}' \(the clusters file's kind_bin\) is not an"):
        K.find_tools(kind_bin=str(not_exec), path=str(tmp_path / "bin"))


def test_unavailable_reason_names_missing_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KIND_EXPERIMENTAL_PROVIDER", raising=False)
    fake_executable(tmp_path / "bin", "kind")
    fake_executable(tmp_path / "bin", "kubectl")
    reason = K.unavailable_reason(path=str(tmp_path / "bin"))
    assert reason == "kind backend: the container engine 'docker' is not on PATH (kind runs nodes as containers)"


def test_unavailable_reason_when_the_engine_does_not_answer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KIND_EXPERIMENTAL_PROVIDER", raising=False)
    for name in ("kind", "kubectl", "docker"):
        fake_executable(tmp_path / "bin", name)
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
