"""`mig-conformance diagnose`: the suite's findings printed, exit 0 none / 1 findings / 2 usage or unreadable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mig_conformance.cli import main
from mig_conformance.cluster import diagnose_faults as F
from mig_conformance.cluster.sim.backend import SimCluster

FILE = f"""faulty:
  backend: sim
  nodes: "{F.FLEET}"
  diagnose_faults: all
one:
  backend: sim
  nodes: p5.48xlarge
  diagnose_faults: {{sim-p5-48xlarge-0: wedged}}
bad:
  backend: sim
  nodes: p5.48xlarge
  diagnose_faults: {{sim-p5-48xlarge-0: melted}}
"""


@pytest.fixture
def clusters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MIG_CLUSTER", raising=False)
    monkeypatch.delenv("MIG_CLUSTERS_FILE", raising=False)
    (tmp_path / "mig-clusters.yaml").write_text(FILE)
    return tmp_path


def test_a_healthy_cluster_has_no_findings(clusters: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagnose", "--cluster", "sim"]) == 0
    nodes = len(SimCluster("").list_gpu_nodes())  # one node of each MIG-capable type of the catalog
    assert f"no findings on {nodes} GPU node(s)" in capsys.readouterr().out


def test_findings_are_printed_with_evidence_upstream_and_recovery(clusters: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagnose", "--cluster", "one"]) == 1
    out = capsys.readouterr().out
    assert "mig-manager-wedged on sim-p5-48xlarge-0" in out
    assert "paused_labels: ['nvidia.com/gpu.deploy.container-toolkit'" in out
    assert "upstream: https://github.com/NVIDIA/gpu-operator/issues/2833" in out and "recovery: " in out


def test_json_holds_every_finding_of_the_faulty_fleet(clusters: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagnose", "--cluster", "faulty", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["gpu_nodes"] == 13 and len(doc["findings"]) == 13
    assert sorted(f["id"] for f in doc["findings"]) == sorted(fid for fid, _ in F.FAULTS.values())


def test_the_threshold_decides_when_pending_is_wedged(clusters: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagnose", "--cluster", "one", "--pending-threshold", "7200"]) == 0
    assert main(["diagnose", "--cluster", "one", "--pending-threshold", "-1"]) == 2


@pytest.mark.parametrize(("args", "message"), [
    ([], "no cluster given"),
    (["--cluster", "nosuch"], "unknown --mig-cluster 'nosuch'"),
    (["--cluster", "bad"], "unknown fault 'melted'"),
    (["--cluster", "sim", "--context", "prod"], "context"),
])
def test_usage_errors_exit_2_naming_the_problem(clusters: Path, capsys: pytest.CaptureFixture[str],
                                                args: list[str], message: str) -> None:
    assert main(["diagnose", *args]) == 2
    assert message in capsys.readouterr().err


def test_usage_errors_in_json(clusters: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagnose", "--cluster", "nosuch", "--json"]) == 2
    assert "nosuch" in json.loads(capsys.readouterr().out)["error"]
