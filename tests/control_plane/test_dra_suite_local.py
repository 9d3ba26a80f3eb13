"""`pytest --mig-cluster=local:p5.48xlarge --mig-gpu-allocation=dra` passes the shipped suites (the dra suite with
the real kube-scheduler allocating claims) with the same outcomes and measured values as `sim` with the same
option."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from mig_conformance.plugin.settings import SETTINGS
from support.control_plane import control_plane_assets


def _run(folder: Path, cluster: str, clusters_file: str | None = None
         ) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    folder.mkdir()
    if clusters_file:
        (folder / "mig-clusters.yaml").write_text(clusters_file)
    settings = {s.env for s in SETTINGS if s.env}
    env = {k: v for k, v in os.environ.items() if k not in settings and not k.startswith("PYTEST_")}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--mig-cluster={cluster}",
                           "--mig-gpu-allocation=dra", "--mig-timeout=60", "--mig-report=out", "-q"], cwd=folder,
                          env=env, capture_output=True, text=True, timeout=600)
    summary = folder / "out" / "summary.json"
    assert summary.is_file(), f"no bundle written:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc, json.loads(summary.read_text())


def _by_test(summary: dict[str, Any]) -> dict[str, tuple[str, str]]:
    names = {t["node"]: t["instance_type"] for t in summary["tests"] if t["node"]}
    out = {}
    for test in summary["tests"]:
        key, text = test["nodeid"], json.dumps(test["measured"], sort_keys=True)
        for node, kind in names.items():
            key, text = key.replace(node, kind), text.replace(node, kind)
        out[key] = (test["outcome"], text)
    return out


def test_dra_suite_passes_on_local_as_on_sim(tmp_path: Path) -> None:
    control_plane_assets()
    local, local_summary = _run(tmp_path / "local", "local:p5.48xlarge")
    assert local.returncode == 0, local.stdout[-4000:] + local.stderr[-2000:]
    sim, sim_summary = _run(tmp_path / "sim", "sim:p5.48xlarge")
    assert sim.returncode == 0, sim.stdout[-4000:]
    local_tests, sim_tests = _by_test(local_summary), _by_test(sim_summary)
    dra = {k for k in local_tests if k.startswith("test_dra.py::")}
    assert {k for k, (outcome, _) in local_tests.items() if k in dra and outcome == "passed"} >= {
        k for k in dra if "dynamic" not in k}, local_tests
    assert local_tests == sim_tests


def test_dynamic_mig_on_local_as_on_sim(tmp_path: Path) -> None:
    """Dynamic MIG: the real scheduler allocates 1g.10gb partitions until every memory slice is taken (7 per H100),
    never two overlapping ones, and sim says the same."""
    control_plane_assets()
    entry = "dyn:\n  backend: {}\n  nodes: p5.48xlarge\n  gpu_allocation: dra\n  dynamic_mig: true\n"
    local, local_summary = _run(tmp_path / "local", "dyn", entry.format("local"))
    assert local.returncode == 0, local.stdout[-4000:] + local.stderr[-2000:]
    sim, sim_summary = _run(tmp_path / "sim", "dyn", entry.format("sim"))
    assert sim.returncode == 0, sim.stdout[-4000:]
    local_tests, sim_tests = _by_test(local_summary), _by_test(sim_summary)
    dynamic = next(v for k, v in local_tests.items() if "dynamic_mig_never" in k)
    assert dynamic == ("passed", '{"allocated": 56}')
    assert local_tests == sim_tests
