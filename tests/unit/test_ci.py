"""CI runs the local tier: `.ci/run` sets CI=true around the README's two commands, and under CI a missing
control-plane binary is a failure of every test that needs one, never a silent skip."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from mig_conformance.cluster.base import ClusterError
from support import control_plane, difftest

ROOT = Path(__file__).resolve().parents[2]


def test_ci_run_exports_ci_before_setup_and_test() -> None:
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    readme = (ROOT / "README.md").read_text()
    setup_and_run = "scripts/setup && .venv/bin/pytest --mig-cluster=sim --mig-report=mig-report"
    assert setup_and_run in readme and "\nscripts/test\n" in readme  # the README's two commands, verbatim
    assert lines.index("export CI=true") < lines.index(setup_and_run) < lines.index("scripts/test")
    assert not [line for line in lines if "MIG_SKIP_K8S" in line], "CI must build (or reuse) the binaries"
    setup = (ROOT / "scripts" / "setup").read_text()
    assert "scripts/build-k8s-binaries" in setup  # what scripts/setup runs unless MIG_SKIP_K8S=1
    assert "scripts/build-difftest" in setup  # ... and, under CI, the differential harness
    assert not [line for line in lines if "MIG_SKIP_DIFFTEST" in line], "CI must build (or reuse) the harness"


@pytest.mark.slow
@pytest.mark.parametrize(("env", "builds"), [({"CI": "true"}, True), ({"CI": "false"}, False),
                                             ({"MIG_DIFFTEST": "1"}, True),
                                             ({"CI": "true", "MIG_SKIP_DIFFTEST": "1"}, False)])
def test_setup_builds_the_differential_harness_under_ci(tmp_path: Path, env: dict[str, str], builds: bool) -> None:
    """scripts/setup's last steps, with the build scripts replaced by stubs that record that they ran."""
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    setup = (ROOT / "scripts" / "setup").read_text()
    tail = setup[setup.index("if [ \"${MIG_SKIP_K8S"):setup.index("echo \"environment ready")]
    (scripts / "setup").write_text("#!/usr/bin/env bash\nset -euo pipefail\ncd \"$(dirname \"$0\")/..\"\n" + tail)
    for name in ("build-k8s-binaries", "build-difftest"):
        (scripts / name).write_text(f"#!/bin/sh\ntouch {tmp_path}/{name}.ran\n")
    for f in scripts.iterdir():
        f.chmod(0o755)
    clean = {k: v for k, v in os.environ.items() if k not in ("CI", "MIG_DIFFTEST", "MIG_SKIP_DIFFTEST")}
    subprocess.run([str(scripts / "setup")], env={**clean, **env}, check=True)
    assert (tmp_path / "build-difftest.ran").exists() == builds


def _missing(*_: object, **__: object) -> dict[str, Path]:
    raise ClusterError("local control plane binaries not found: etcd")


@pytest.mark.parametrize("ci", ["true", "1", "yes"])
def test_a_missing_binary_fails_under_ci(monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setattr(control_plane, "find_assets", _missing)
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match=r"CI: the local control plane binaries are required: .*etcd"):
        control_plane.control_plane_assets()


@pytest.mark.parametrize("ci", [None, "", "0", "false"])
def test_a_missing_binary_skips_outside_ci(monkeypatch: pytest.MonkeyPatch, ci: str | None) -> None:
    monkeypatch.setattr(control_plane, "find_assets", _missing)
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match=r"scripts/build-k8s-binaries"):
        control_plane.control_plane_assets()


def _not_built(*_: object, **__: object) -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess([], 1, "", "build-difftest: not built (or out of date)")


@pytest.mark.parametrize(("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_a_missing_harness_fails_under_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch, ci: str,
                                                              outcome: type[BaseException]) -> None:
    monkeypatch.setattr(difftest.subprocess, "run", _not_built)
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match=r"not built \(or out of date\)"):
        difftest.harness()
