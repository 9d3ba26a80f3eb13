"""`pytest --mig-cluster=local:SPEC` runs the shipped suites unchanged against a real control plane (etcd,
kube-apiserver, kube-scheduler, kube-controller-manager, kwok, simulated GPU Operator agents) and they pass with the
same outcomes and measured values as on `sim`; the run leaves no process behind. Skipped when the binaries are
missing, a failure under CI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from mig_conformance.plugin.settings import SETTINGS
from support.control_plane import control_plane_assets
from support.kit_runs import processes_mentioning

SPEC = "p5.48xlarge,p4d.24xlarge"


def _run(folder: Path, cluster: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    folder.mkdir()
    settings = {s.env for s in SETTINGS if s.env}  # the run's own settings only: MIG_K8S_ASSETS must reach it
    env = {k: v for k, v in os.environ.items() if k not in settings and not k.startswith("PYTEST_")}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--mig-cluster={cluster}",
                           "--mig-report=out", "-q"], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=600)
    summary_file = folder / "out" / "summary.json"
    assert summary_file.is_file(), f"no bundle written:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc, json.loads(summary_file.read_text())


def _by_test(summary: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """nodeid -> (outcome, measured), node names replaced by their instance type (one node per type here)."""
    names = {t["node"]: t["instance_type"] for t in summary["tests"] if t["node"]}
    out = {}
    for test in summary["tests"]:
        key, text = test["nodeid"], json.dumps(test["measured"], sort_keys=True)
        for node, kind in names.items():
            key, text = key.replace(node, kind), text.replace(node, kind)
        out[key] = (test["outcome"], text)
    return out


def test_the_shipped_suites_pass_on_local_exactly_as_on_sim(tmp_path: Path) -> None:
    control_plane_assets()
    local, local_summary = _run(tmp_path / "local", f"local:{SPEC}")
    assert local.returncode == 0, local.stdout[-4000:] + local.stderr[-2000:]
    assert "mode: local (kit-owned cluster: reconfiguration allowed)" in local.stdout
    assert "leak check: nothing of this run is left" in local.stdout
    assert local_summary["verdict"] == "Passed" and local_summary["backend"] == "local"
    nodes = {t["node"] for t in local_summary["tests"] if t["node"]}
    assert len(nodes) == 2 and all(re.match(r"^ip-10-0-\d+-\d+\.us-west-2\.compute\.internal$", n) for n in nodes)

    sim, sim_summary = _run(tmp_path / "sim", f"sim:{SPEC}")
    assert sim.returncode == 0, sim.stdout[-4000:]
    assert _by_test(local_summary) == _by_test(sim_summary)
    assert local_summary["totals"] == sim_summary["totals"] and local_summary["totals"]["passed"] >= 20

    out = tmp_path / "local" / "out"
    logs = list(out.glob("local-cluster-*/logs/*.log"))
    assert {p.stem for p in logs} >= {"etcd", "kube-apiserver", "kube-scheduler", "kube-controller-manager", "kwok",
                                      "agents"}
    assert processes_mentioning(str(tmp_path / "local")) == []  # the local cluster's state lives under out/
    after = json.loads((out / "evidence" / "nodes_after.json").read_text())
    before = json.loads((out / "evidence" / "nodes_before.json").read_text())
    assert [n["labels"] for n in after] == [n["labels"] for n in before], "labels were not restored"
