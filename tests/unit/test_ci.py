"""CI runs the local tier: `.ci/run` sets CI=true around the README's two commands, the second of which
(scripts/test) builds the control-plane binaries, and under CI a missing control-plane binary is a failure of every
test that needs one, never a silent skip. The first command (scripts/setup + the sim suites) builds nothing."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
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
    assert not [line for line in lines if "MIG_SKIP_DIFFTEST" in line], "CI must build (or reuse) the harness"


def _runs(script: str, command: str) -> bool:
    """Does a line of scripts/<script> run `command` (not merely name it in a comment or a message)?"""
    return any(re.match(rf"\s*({re.escape(command)}|.*\|\| *{re.escape(command)}|.*&& *{re.escape(command)})\b", line)
               for line in (ROOT / "scripts" / script).read_text().splitlines())


def test_setup_builds_no_control_plane_and_the_test_command_does() -> None:
    """README's first command reaches the sim verdict without the Go build; README's test command builds."""
    for command in ("scripts/build-k8s-binaries", ".venv/bin/mig-conformance cluster install"):
        assert not _runs("setup", command)
    assert _runs("test", "scripts/build-k8s-binaries")


# ---- scripts/test in a copy of the checkout whose tools are fakes that record their arguments -----------------
def _fake_tree(tmp_path: Path, build_exit: int) -> Path:
    tree = tmp_path / "tree"
    for folder in ("scripts", ".venv/bin", "tests/control_plane", "tests/unit"):
        (tree / folder).mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / "scripts" / "test", tree / "scripts" / "test")
    fakes = {"scripts/typecheck": "exit 0", ".venv/bin/ruff": "exit 0",
             "scripts/build-k8s-binaries": f"echo build >> \"$LOG\"; exit {build_exit}",
             "scripts/install-browser": "exit 0", "scripts/build-difftest": 'echo difftest >> "$LOG"',
             ".venv/bin/python": 'echo "pytest $*" >> "$LOG"'}
    for name, body in fakes.items():
        (tree / name).write_text(f"#!/bin/sh\n{body}\n")
        (tree / name).chmod(0o755)
    return tree


def _run_test_script(tmp_path: Path, *args: str, build_exit: int = 0, **env: str) -> tuple[int, list[str]]:
    tree = _fake_tree(tmp_path, build_exit)
    log = tmp_path / "log"
    log.unlink(missing_ok=True)
    unset = ("CI", "MIG_SKIP_K8S", "MIG_DIFFTEST", "MIG_SKIP_DIFFTEST")
    base = {k: v for k, v in os.environ.items() if k not in unset}
    proc = subprocess.run([str(tree / "scripts" / "test"), *args], cwd=tree, capture_output=True, text=True,
                          env={**base, "LOG": str(log), **env}, timeout=60)
    return proc.returncode, log.read_text().splitlines() if log.exists() else []


@pytest.mark.parametrize(("args", "builds"), [
    ((), True),
    (("-n", "2"), True),
    (("-m", "control_plane"), True),
    (("tests/control_plane/",), True),
    (("tests",), True),
    (("-m", "not slow"), False),
    (("-m", "not slow and not control_plane"), False),
    (("-mnot slow",), False),
    (("tests/unit",), False),
    (("tests/unit", "-k", "tests"), False),
])
def test_scripts_test_builds_the_binaries_only_for_a_selection_with_the_control_plane_tier(
        tmp_path: Path, args: tuple[str, ...], builds: bool) -> None:
    rc, log = _run_test_script(tmp_path, *args)
    assert rc == 0
    assert [x for x in log if x != "difftest"] == (["build"] if builds else []) + \
        [f"pytest -m pytest {' '.join(args)}".rstrip()]
    rc, log = _run_test_script(tmp_path, *args, MIG_SKIP_K8S="1")
    assert rc == 0 and "build" not in log


@pytest.mark.parametrize(("ci", "build_exit", "rc", "tests_run"), [
    ("", 2, 0, True),  # no Go on a developer's machine: the control_plane tests skip
    ("true", 2, 2, False),  # under CI a missing Go fails the run
    ("", 1, 1, False),  # a build that failed fails the run
    ("true", 0, 0, True),
])
def test_scripts_test_without_go_continues_outside_ci_only(tmp_path: Path, ci: str, build_exit: int, rc: int,
                                                          tests_run: bool) -> None:
    got, log = _run_test_script(tmp_path, build_exit=build_exit, CI=ci)
    assert got == rc
    assert log[0] == "build" and (log[-1].startswith("pytest") == tests_run)


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
    with pytest.raises(pytest.skip.Exception, match=r"mig-conformance cluster install"):
        control_plane.control_plane_assets()


@pytest.mark.parametrize(("args", "env", "builds"), [
    ((), {"CI": "true"}, True), ((), {"CI": "false"}, False), ((), {"MIG_DIFFTEST": "1"}, True),
    ((), {"CI": "true", "MIG_SKIP_DIFFTEST": "1"}, False), (("-m", "not slow"), {"CI": "true"}, False),
])
def test_scripts_test_builds_the_differential_harness_under_ci(tmp_path: Path, args: tuple[str, ...],
                                                              env: dict[str, str], builds: bool) -> None:
    """The differential tier's harness (docs/differential.md) is built for a selection that keeps the slow tests,
    under CI (where a missing harness fails its test) or when asked for."""
    rc, log = _run_test_script(tmp_path, *args, **env)
    assert rc == 0 and ("difftest" in log) == builds
