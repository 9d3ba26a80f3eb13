"""`report diff` of two `sim` runs of one fleet under different drivers: the driver version differs, and every value
that differs is a driver-dependent GFD memory label (the profile memory differs by driver branch:
docs/reference/profiles.md), nothing else."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mig_conformance.cli import main
from mig_conformance.plugin.settings import SETTINGS

pytestmark = pytest.mark.slow


def _run(folder: Path, clusters: Path, name: str) -> Path:
    folder.mkdir()
    settings = {s.env for s in SETTINGS if s.env}
    env = {k: v for k, v in os.environ.items() if k not in settings and not k.startswith("PYTEST_")}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--mig-clusters-file={clusters}",
                           f"--mig-cluster={name}", "--mig-report=out", "-q"], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=300)
    assert (folder / "out" / "summary.json").is_file(), proc.stdout[-3000:] + proc.stderr[-2000:]
    return folder / "out"


def test_two_drivers_differ_exactly_in_driver_dependent_labels(tmp_path: Path, capsys) -> None:
    clusters = tmp_path / "mig-clusters.yaml"
    clusters.write_text('old: {backend: sim, nodes: "p5.48xlarge", driver: "550.54.15"}\n'
                        'new: {backend: sim, nodes: "p5.48xlarge", driver: "580.159.04"}\n')
    old, new = _run(tmp_path / "old", clusters, "old"), _run(tmp_path / "new", clusters, "new")
    code = main(["report", "diff", str(old), str(new), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert doc["versions"] == [{"path": ["driver"], "a": "550.54.15", "b": "580.159.04"}]
    values = [c for n in doc["nodes"] for t in n["tests"] for c in t["values"]]
    assert values, "the drivers' memory labels should differ (3g.40gb: 40320 MiB on 550, 40448 MiB on 580)"
    assert all(str(c["path"][-1]).endswith(".memory") for c in values), values
    assert any(c["a"] == "40320" and c["b"] == "40448" for c in values)
    # the expectations follow the driver (the stack profile): both runs pass, no verdict changes, exit 0
    changed = [t for n in doc["nodes"] for t in n["tests"] if t["verdict_changed"]]
    assert not changed and not doc["run"], (changed, doc["run"])
    assert code == 0
    assert len(doc["nodes"]) == 1 and doc["nodes"][0]["a_node"] == doc["nodes"][0]["b_node"]
