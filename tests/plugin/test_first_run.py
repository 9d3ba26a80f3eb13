"""What a newcomer sees: `--mig-cluster=local` without the control plane's binaries is one usage error naming the
command that builds them."""

from __future__ import annotations

from pathlib import Path

import pytest

from mig_conformance.cluster import assets


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
        "*mig-conformance: cluster local (local): local control plane binaries not found: etcd, kube-apiserver*",
        f"*searched:*{empty}/mig-conformance/k8s/v*/bin; PATH",
        "*build them once (needs Go >= 1.21; about 10-15 minutes on 2 cores) with: *mig-conformance cluster install",
        "*or point MIG_K8S_ASSETS at a folder that holds etcd*"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()
