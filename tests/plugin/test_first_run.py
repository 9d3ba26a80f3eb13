"""What a newcomer sees: `--mig-cluster=local` without the control plane's binaries is one usage error naming the
command that builds them, and long waits show in pytest's live output what is awaited and for how long, also
without a terminal (CI logs), with and without -v."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mig_conformance.cluster import assets

SLOW_SIM = "slow:\n  backend: sim\n  nodes: p5.48xlarge\n  mig_manager_delay: 65\n"  # simulated seconds


def test_local_without_binaries_is_a_usage_error_naming_the_install_command(
        tester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setattr(assets, "_repo_root", lambda: None)
    for var in ("MIG_K8S_ASSETS", "KUBEBUILDER_ASSETS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(empty))
    monkeypatch.setenv("PATH", str(empty))
    result = tester.runpytest("--mig-cluster=local", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([
        "*mig-conformance: cluster local (local): local control plane binaries not found: etcd, kube-apiserver*; "
        "build them once with: *mig-conformance cluster install (needs Go >= 1.21; 6-15 minutes on 2 idle cores), "
        "or point MIG_K8S_ASSETS at a folder of prebuilt ones",
        f"*searched:*{empty}/mig-conformance/k8s/v*/bin; PATH"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


@pytest.fixture
def no_tty(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """As in CI: the session's status line has no terminal to draw on (stderr is a file)."""
    with open(tmp_path / "stderr", "w") as stderr:
        monkeypatch.setattr(sys, "__stderr__", stderr)
        yield


@pytest.mark.parametrize("verbose", [False, True])
def test_long_waits_print_a_line_every_30s_without_a_terminal(tester: pytest.Pytester, no_tty: None,
                                                              verbose: bool) -> None:
    tester.makefile(".yaml", clusters=SLOW_SIM)
    result = tester.runpytest("-p", "no:cacheprovider", "--mig-cluster=slow", "--mig-clusters-file=clusters.yaml",
                              "-k", "balanced", *(["-v"] if verbose else []))
    assert result.ret == 0, result.stdout.str()[-3000:]
    node = "sim-p5-48xlarge-0"
    waiting = f"node {node} to apply MIG config all-balanced"
    result.stdout.fnmatch_lines([
        f"mig-conformance: waiting for {waiting}: 30s of 900s; node {node} mig.config=all-balanced state=pending",
        f"mig-conformance: waiting for {waiting}: 60s of 900s; node {node} mig.config=all-balanced state=pending",
        f"mig-conformance: waited 65s for {waiting}; last state: node {node} mig.config=all-balanced state=success",
        # the restore at the end waits too
        f"mig-conformance: waiting for mig-manager to re-apply on {node}: 30s of 900s; *state=pending",
    ])
    lines = result.stdout.lines
    ours = [ln for ln in lines if ln.startswith("mig-conformance: wait")]
    assert len(ours) == 6, ours  # 30s, 60s and the end, for the test's wait and for the restore's
    # pytest's own lines stay whole: each line of ours starts a line, and the test's result follows its name
    if verbose:
        assert [ln for ln in lines if re.fullmatch(r"test_strategies\.py::test_all_balanced\[\S+\] PASSED\s+\[100%\]",
                                                   ln)]
    else:
        assert [ln for ln in lines if re.fullmatch(r"test_strategies\.py \.\s+\[100%\]", ln)]
    assert not [ln for ln in lines if "mig-conformance: wait" in ln and not ln.startswith("mig-conformance")]


def test_short_waits_print_nothing(tester: pytest.Pytester, no_tty: None) -> None:
    tester.makefile(".yaml", clusters=SLOW_SIM.replace("65", "25"))
    result = tester.runpytest("-p", "no:cacheprovider", "--mig-cluster=slow", "--mig-clusters-file=clusters.yaml",
                              "-k", "balanced")
    assert result.ret == 0
    assert "mig-conformance: wait" not in result.stdout.str()
