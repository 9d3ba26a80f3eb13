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


def _run(folder: Path, cluster: str) -> Path:
    folder.mkdir()
    settings = {s.env for s in SETTINGS if s.env}  # the run's own settings only: MIG_K8S_ASSETS must reach it
    env = {k: v for k, v in os.environ.items() if k not in settings and not k.startswith("PYTEST_")}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--mig-cluster={cluster}",
                           "--mig-report=out", "-q"], cwd=folder, env=env, capture_output=True, text=True,
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
