"""`mig-conformance cluster up|status|down`: a detached local cluster round trip (usage errors:
tests/unit/test_cli_cluster.py)."""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mig_conformance.cli import main
from mig_conformance.cluster.local import processes
from mig_conformance.cluster.local.controlplane import ControlPlane, port_listening
from mig_conformance.cluster.registry import open_cluster
from mig_conformance.cluster.stack_detect import detect_profile
from support.control_plane import control_plane_assets


@pytest.fixture(scope="module")
def assets() -> dict[str, Path]:
    return control_plane_assets()


def test_up_status_down_round_trip(tmp_path: Path, assets: dict[str, Path], capsys) -> None:
    kc = tmp_path / "kc"
    state = tmp_path / "kc.d"
    up = subprocess.run([sys.executable, "-m", "mig_conformance", "cluster", "up", "--backend", "local",
                         "--nodes", "p5.48xlarge", "--gpu-taint", "--kubeconfig", str(kc),
                         "--stack", "gpu-operator=v25.3.4"],
                        capture_output=True, text=True, timeout=120)
    try:
        assert up.returncode == 0, up.stderr
        assert "local cluster ready in" in up.stdout and f"kubectl --kubeconfig {kc} get nodes" in up.stdout
        assert "gpu-operator=v25.3.4,mig-manager=v0.12.3,device-plugin=v0.17.4" in up.stdout
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
            detected = detect_profile(attached)  # what `--mig-cluster` runs against it see (session._detect_stack)
            assert (detected.gpu_operator.value, detected.device_plugin.value) == ("v25.3.4", "v0.17.4")
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
