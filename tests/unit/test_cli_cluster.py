"""`mig-conformance cluster up|status|down`: a detached local cluster round trip, and the usage errors."""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mig_conformance.cli import main
from mig_conformance.cluster import assets as assets_mod
from mig_conformance.cluster.local import processes
from mig_conformance.cluster.local.controlplane import ControlPlane, port_listening
from mig_conformance.cluster.registry import open_cluster
from support.control_plane import control_plane_assets


@pytest.fixture(scope="module")
def assets() -> dict[str, Path]:
    return control_plane_assets()


def test_up_status_down_round_trip(tmp_path: Path, assets: dict[str, Path], capsys) -> None:
    kc = tmp_path / "kc"
    state = tmp_path / "kc.d"
    up = subprocess.run([sys.executable, "-m", "mig_conformance", "cluster", "up", "--backend", "local",
                         "--nodes", "p5.48xlarge", "--gpu-taint", "--kubeconfig", str(kc)],
                        capture_output=True, text=True, timeout=120)
    try:
        assert up.returncode == 0, up.stderr
        assert "local cluster ready in" in up.stdout and f"kubectl --kubeconfig {kc} get nodes" in up.stdout
        assert stat.S_IMODE(kc.stat().st_mode) == 0o600
        plane = ControlPlane.load(state)
        assert {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"} <= set(plane.procs)
        assert all(processes.alive(p) for p in plane.procs.values())  # outlived the `up` process

        nodes = json.loads(subprocess.run([str(assets["kubectl"]), "--kubeconfig", str(kc), "get", "nodes", "-o",
                                           "json"], capture_output=True, text=True, check=True).stdout)["items"]
        assert len(nodes) == 1
        assert nodes[0]["spec"]["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]

        capsys.readouterr()
        assert main(["cluster", "status", "--kubeconfig", str(kc), "--json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert doc["healthy"] and doc["api"] == "ok"
        assert [n["name"] for n in doc["nodes"]] == [nodes[0]["metadata"]["name"]]
        assert {p["name"]: p["health"] for p in doc["processes"]}["kube-apiserver"] == "ok"
        assert main(["cluster", "status", "--kubeconfig", str(kc)]) == 0
        text = capsys.readouterr().out
        assert "healthy" in text and nodes[0]["metadata"]["name"] in text and "NVIDIA ALLOCATABLE" in text

        attached = open_cluster("local", allow_changes=True, kubeconfig=str(kc))  # as the kit's ServiceAccount
        try:
            assert [n.name for n in attached.list_gpu_nodes()] == [nodes[0]["metadata"]["name"]]
            assert attached.describe()["identity"] == "ServiceAccount mig-conformance/mig-conformance"
        finally:
            attached.close()  # does not stop a cluster it did not start
        assert all(processes.alive(p) for p in plane.procs.values())

        assert main(["cluster", "up", "--kubeconfig", str(kc)]) == 2
        assert "already running" in capsys.readouterr().err
    finally:
        down = main(["cluster", "down", "--kubeconfig", str(kc)])
    assert down == 0
    out = capsys.readouterr().out
    assert re.search(r"stopped [56] processes \(etcd \d+, kube-apiserver \d+", out), out
    assert [p.name for p in plane.procs.values() if processes.alive(p)] == []
    assert [port for port in plane.ports.values() if port_listening(port)] == []
    assert not kc.exists() and (state / "logs" / "kube-apiserver.log").exists()
    assert main(["cluster", "status", "--kubeconfig", str(kc)]) == 1
    assert "NOT healthy" in capsys.readouterr().out


def test_up_refuses_a_kubeconfig_it_did_not_write(tmp_path: Path, capsys) -> None:
    kc = tmp_path / "config"
    kc.write_text("apiVersion: v1\nkind: Config\n")
    assert main(["cluster", "up", "--kubeconfig", str(kc)]) == 2
    assert "is not the kubeconfig of a local cluster" in capsys.readouterr().err
    assert kc.read_text() == "apiVersion: v1\nkind: Config\n"


def test_up_never_deletes_a_folder_it_did_not_write(tmp_path: Path, capsys) -> None:
    """`--kubeconfig X` keeps its state in X.d/: an unrelated X.d/ folder is refused, never removed."""
    (tmp_path / "config.d").mkdir()
    (tmp_path / "config.d" / "precious.conf").write_text("keep me")
    assert main(["cluster", "up", "--kubeconfig", str(tmp_path / "config")]) == 2
    assert "config.d exists and is not the state folder of a local cluster" in capsys.readouterr().err
    assert (tmp_path / "config.d" / "precious.conf").read_text() == "keep me"


def test_a_corrupt_state_file_is_an_error_not_a_traceback(tmp_path: Path, capsys) -> None:
    (tmp_path / "kc.d").mkdir()
    (tmp_path / "kc.d" / "controlplane.json").write_text("{not json")
    assert main(["cluster", "up", "--kubeconfig", str(tmp_path / "kc")]) == 2
    assert "controlplane.json cannot be read" in capsys.readouterr().err


def test_up_names_the_missing_binaries_and_the_build_script(tmp_path: Path, monkeypatch, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setattr(assets_mod, "_repo_root", lambda: None)
    monkeypatch.setenv("MIG_K8S_ASSETS", str(empty))
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.chdir(tmp_path)
    assert main(["cluster", "up", "--kubeconfig", str(tmp_path / "kc")]) == 2
    err = capsys.readouterr().err
    assert "etcd" in err and "kube-apiserver" in err and "scripts/build-k8s-binaries" in err
    assert not (tmp_path / "kc.d").exists()


def test_up_rejects_a_bad_node_spec_before_starting_anything(tmp_path: Path, capsys) -> None:
    assert main(["cluster", "up", "--nodes", "p5.48xlarge,bogus", "--kubeconfig", str(tmp_path / "kc")]) == 2
    err = capsys.readouterr().err
    assert "--nodes 'p5.48xlarge,bogus'" in err and "'bogus': not an instance type" in err
    assert not (tmp_path / "kc.d").exists()


def test_down_and_status_without_a_cluster(tmp_path: Path, capsys) -> None:
    for verb in ("down", "status"):
        assert main(["cluster", verb, "--kubeconfig", str(tmp_path / "nothing")]) == 2
        assert "no local cluster" in capsys.readouterr().err
