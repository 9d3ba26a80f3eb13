"""`report diff` of a `sim` bundle and a `local` bundle of the same fleet shows no differences: what legitimately
differs between backends (node names, run ids, timings, backend facts) is normalised (report/diff.py NORMALISED),
and everything compared — verdicts, expected and measured values, layouts, stack versions — is equal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mig_conformance.cli import main
from mig_conformance.plugin.settings import SETTINGS
from support.control_plane import control_plane_assets

pytestmark = [pytest.mark.control_plane, pytest.mark.slow]
SPEC = "p5.48xlarge*2,p4d.24xlarge"


def _run(folder: Path, cluster: str, *extra: str) -> Path:
    folder.mkdir()
    settings = {s.env for s in SETTINGS if s.env}  # the run's own settings only: MIG_K8S_ASSETS must reach it
    env = {k: v for k, v in os.environ.items() if k not in settings and not k.startswith("PYTEST_")}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--mig-cluster={cluster}",
                           "--mig-report=out", "-q", *extra], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return folder / "out"


def test_sim_and_local_bundles_of_one_fleet_do_not_differ(tmp_path: Path, capsys) -> None:
    control_plane_assets()
    local = _run(tmp_path / "local", f"local:{SPEC}")
    sim = _run(tmp_path / "sim", f"sim:{SPEC}")
    code = main(["report", "diff", str(sim), str(local), "--json", "--html", str(tmp_path / "diff.html")])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["differences"] == 0 and not doc["verdicts_differ"], json.dumps(doc, indent=1)[:4000]
    assert (doc["a"]["backend"], doc["b"]["backend"]) == ("sim", "local")
    assert doc["a"]["run_id"] != doc["b"]["run_id"]
    # the comparison was not empty: three nodes paired, every test compared and equal
    summary = json.loads((sim / "summary.json").read_text())
    assert len(summary["nodes"]) == 3 and summary["totals"]["passed"] >= 20
    assert doc["a"]["versions"]["driver"] == doc["b"]["versions"]["driver"] == "580.159.04"
    assert "no node or test differs" in (tmp_path / "diff.html").read_text().lower()


def test_bottlerocket_nodes_on_sim_and_local_do_not_differ(tmp_path: Path, capsys) -> None:
    """The `@bottlerocket` flavour is the same node on both backends: booted from the same settings, its own checks
    pass with the same values, the mig-manager suites skip it; the GPU Operator node beside it is tested as ever."""
    control_plane_assets()
    (tmp_path / "user-data.toml").write_text('[settings.kubelet-device-plugins.nvidia]\n'
                                             'device-partitioning-strategy = "mig"\n'
                                             '[settings.kubelet-device-plugins.nvidia.mig.profile]\n'
                                             '"h100.80gb" = "4"\n')
    fleet = '"p5.48xlarge@bottlerocket,p4d.24xlarge", bottlerocket_settings: user-data.toml}'
    (tmp_path / "mig-clusters.yaml").write_text(f"s: {{backend: sim, nodes: {fleet}\n"
                                                f"l: {{backend: local, nodes: {fleet}\n")
    clusters = f"--mig-clusters-file={tmp_path / 'mig-clusters.yaml'}"
    local = _run(tmp_path / "local", "l", clusters)
    sim = _run(tmp_path / "sim", "s", clusters)
    code = main(["report", "diff", str(sim), str(local), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["differences"] == 0, json.dumps(doc, indent=1)[:4000]
    summary = json.loads((local / "summary.json").read_text())
    mine = [t for t in summary["tests"] if "test_bottlerocket_node_advertises_its_settings" in t["nodeid"]
            and t["instance_type"] == "p5.48xlarge"]
    assert [(t["outcome"], t["measured"]["nvidia.com/gpu"]) for t in mine] == [("passed", 32)]
    skipped = [t for t in summary["tests"] if t["node"] == mine[0]["node"] and t["outcome"] == "skipped"]
    assert len(skipped) >= 10
