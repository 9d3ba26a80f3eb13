"""`pytest --mig-cluster=local:NEW --mig-catalog DIR`: a new instance type from a user catalog on a real control
plane. The agents run in their own process; they get the run's user catalogs and serve the node as sim does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from mig_conformance.plugin.settings import SETTINGS
from support.control_plane import control_plane_assets
from support.user_catalog import NEW_GPU, NEW_TYPE, make_user_catalog


def test_a_user_catalog_type_passes_on_local(tmp_path: Path) -> None:
    control_plane_assets()
    folder = make_user_catalog(tmp_path / "ucat")
    settings = {s.env for s in SETTINGS if s.env}
    env = {k: v for k, v in os.environ.items() if k not in settings and not k.startswith("PYTEST_")}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--mig-cluster=local:{NEW_TYPE}",
                           f"--mig-catalog={folder}", "--mig-report=out", "-q"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["backend"] == "local" and summary["totals"]["passed"] >= 10
    assert {t["gpu_model"] for t in summary["tests"] if t["node"]} == {NEW_GPU}
    assert summary["signoff"][0]["gpu"]["origin"] == "user catalog"
