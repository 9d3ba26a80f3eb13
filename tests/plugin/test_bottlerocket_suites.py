"""The shipped suites on a fleet with a Bottlerocket node (`sim`, clusters-file key `bottlerocket_settings`): its
own checks run and pass, the mig-manager suites skip it with the reason, the GPU Operator node beside it is tested
as before."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mig_conformance.plugin.settings import SETTINGS

pytestmark = pytest.mark.slow


def test_suites_on_a_bottlerocket_node(tmp_path: Path) -> None:
    (tmp_path / "user-data.toml").write_text('[settings.kubelet-device-plugins.nvidia]\n'
                                             'device-partitioning-strategy = "mig"\n'
                                             '[settings.kubelet-device-plugins.nvidia.mig.profile]\n'
                                             '"h100.80gb" = "4"\n')
    (tmp_path / "mig-clusters.yaml").write_text('br: {backend: sim, nodes: "p5.48xlarge@bottlerocket,p4d.24xlarge", '
                                                'bottlerocket_settings: user-data.toml}\n')
    settings = {s.env for s in SETTINGS if s.env}
    env = {k: v for k, v in os.environ.items() if k not in settings and not k.startswith("PYTEST_")}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--mig-cluster=br",
                           "--mig-report=out", "-q", "-rs"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    br = [t for t in summary["tests"] if t["node"] == "sim-p5-48xlarge-br-0"]
    mine = {t["nodeid"].split("::")[1].split("[")[0]: t for t in br if "test_bottlerocket.py" in t["nodeid"]}
    assert {k: t["outcome"] for k, t in mine.items()} == {"test_bottlerocket_node_advertises_its_settings": "passed",
                                                          "test_every_bottlerocket_device_takes_a_pod": "passed"}
    assert mine["test_bottlerocket_node_advertises_its_settings"]["measured"]["nvidia.com/gpu"] == 32
    # the read-only diagnoses apply to every node (none of mig-manager's is asked of a Bottlerocket node), and pass
    diagnosed = [t for t in br if "test_diagnose.py" in t["nodeid"]]
    assert diagnosed and all(t["outcome"] == "passed" for t in diagnosed)
    others = [t for t in br if "test_bottlerocket.py" not in t["nodeid"] and t not in diagnosed]
    assert others and all(t["outcome"] == "skipped" for t in others), \
        [(t["nodeid"], t["outcome"]) for t in others if t["outcome"] != "skipped"]
    assert "Bottlerocket node: no mig-manager" in proc.stdout
    p4d = [t for t in summary["tests"] if t["node"] == "sim-p4d-24xlarge-0"]
    assert sum(t["outcome"] == "passed" for t in p4d) >= 10
    assert all(t["outcome"] == "skipped" for t in p4d if "test_bottlerocket.py" in t["nodeid"])
