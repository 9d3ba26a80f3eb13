"""CI runs the local tier: `.ci/run` sets CI=true around the README's two commands, and under CI a missing
control-plane binary is a failure of every test that needs one, never a silent skip."""

from __future__ import annotations

from pathlib import Path

import pytest

from mig_conformance.cluster.base import ClusterError
from support import control_plane

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
