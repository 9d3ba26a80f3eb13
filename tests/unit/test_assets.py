"""Finding the local control-plane binaries: env precedence, cache folder, PATH, clear errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mig_conformance.cluster import assets
from mig_conformance.cluster.assets import BINARIES, find_assets
from mig_conformance.cluster.base import ClusterError
from mig_conformance.cluster.local.pins import read_pins


@pytest.fixture(autouse=True)
def no_checkout_cache(monkeypatch, tmp_path) -> None:
    """Ignore this checkout's real .cache/k8s/bin and the user's cache folder so that only tmp_path folders are
    searched."""
    monkeypatch.setattr(assets, "_repo_root", lambda: None)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)


def fake_bins(folder: Path, names=BINARIES, executable: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        f = folder / name
        f.write_text("#!/bin/sh\necho fake\n")
        f.chmod(0o755 if executable else 0o644)
    return folder


def test_mig_assets_wins_over_kubebuilder_cache_and_path(tmp_path) -> None:
    mig = fake_bins(tmp_path / "mig")
    kb = fake_bins(tmp_path / "kb")
    fake_bins(tmp_path / "work" / ".cache" / "k8s" / "bin")
    path = fake_bins(tmp_path / "path")
    env = {"MIG_K8S_ASSETS": str(mig), "KUBEBUILDER_ASSETS": str(kb), "PATH": str(path)}
    found = find_assets(env=env, cwd=tmp_path / "work")
    assert set(found) == set(BINARIES)
    assert all(p == mig / name for name, p in found.items())


def test_each_binary_falls_through_the_order_on_its_own(tmp_path) -> None:
    mig = fake_bins(tmp_path / "mig", ["kube-apiserver"])
    kb = fake_bins(tmp_path / "kb", ["kube-apiserver", "etcd", "kubectl"])  # what setup-envtest ships
    cache = fake_bins(tmp_path / "work" / ".cache" / "k8s" / "bin", ["etcd", "kwok", "kube-scheduler"])
    path = fake_bins(tmp_path / "path", BINARIES)
    env = {"MIG_K8S_ASSETS": str(mig), "KUBEBUILDER_ASSETS": str(kb), "PATH": str(path)}
    found = find_assets(env=env, cwd=tmp_path / "work")
    assert found == {
        "kube-apiserver": mig / "kube-apiserver",
        "etcd": kb / "etcd",
        "kubectl": kb / "kubectl",
        "kwok": cache / "kwok",
        "kube-scheduler": cache / "kube-scheduler",
        "kube-controller-manager": path / "kube-controller-manager",
    }


def test_kubebuilder_assets_then_cache_then_path(tmp_path) -> None:
    kb = fake_bins(tmp_path / "kb", ["etcd"])
    cache = fake_bins(tmp_path / "work" / ".cache" / "k8s" / "bin", ["etcd", "kwok"])
    path = fake_bins(tmp_path / "path", ["etcd", "kwok", "kubectl"])
    env = {"KUBEBUILDER_ASSETS": str(kb), "MIG_K8S_ASSETS": "", "PATH": str(path)}
    found = find_assets(["etcd", "kwok", "kubectl"], env=env, cwd=tmp_path / "work")
    assert found == {"etcd": kb / "etcd", "kwok": cache / "kwok", "kubectl": path / "kubectl"}


def test_checkout_cache_is_searched_before_cwd_cache(tmp_path, monkeypatch) -> None:
    repo = tmp_path / "repo"
    repo_cache = fake_bins(repo / ".cache" / "k8s" / "bin", ["kwok"])
    fake_bins(tmp_path / "work" / ".cache" / "k8s" / "bin", ["kwok"])
    monkeypatch.setattr(assets, "_repo_root", lambda: repo)
    assert find_assets(["kwok"], env={"PATH": ""}, cwd=tmp_path / "work") == {"kwok": repo_cache / "kwok"}


def test_the_user_cache_of_cluster_install_comes_after_the_checkout_caches_and_before_path(tmp_path) -> None:
    """`mig-conformance cluster install` builds into $XDG_CACHE_HOME/mig-conformance/k8s/<pinned version>/bin."""
    version = read_pins().kubernetes
    user = fake_bins(tmp_path / "xdg" / "mig-conformance" / "k8s" / version / "bin", ["etcd", "kwok"])
    fake_bins(tmp_path / "xdg" / "mig-conformance" / "k8s" / "v1.0.0" / "bin", ["kubectl"])  # another version's
    cwd_cache = fake_bins(tmp_path / "work" / ".cache" / "k8s" / "bin", ["kwok"])
    path = fake_bins(tmp_path / "path", ["etcd", "kwok", "kubectl"])
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg"), "PATH": str(path)}
    assert find_assets(["etcd", "kwok", "kubectl"], env=env, cwd=tmp_path / "work") == {
        "etcd": user / "etcd", "kwok": cwd_cache / "kwok", "kubectl": path / "kubectl"}
    home = fake_bins(tmp_path / "home" / ".cache" / "mig-conformance" / "k8s" / version / "bin", ["etcd"])
    assert find_assets(["etcd"], env={"HOME": str(tmp_path / "home"), "PATH": ""}, cwd=tmp_path) == {
        "etcd": home / "etcd"}  # no XDG_CACHE_HOME: ~/.cache


def test_missing_binaries_are_named_with_the_install_command(tmp_path) -> None:
    mig = fake_bins(tmp_path / "mig", ["etcd", "kube-apiserver", "kubectl"])
    env = {"MIG_K8S_ASSETS": str(mig), "PATH": str(tmp_path / "empty")}
    with pytest.raises(ClusterError) as e:
        find_assets(env=env, cwd=tmp_path)
    message = str(e.value)
    first_line = message.splitlines()[0]
    for name in ("kube-scheduler", "kube-controller-manager", "kwok"):
        assert name in first_line
    for name in ("etcd", "kube-apiserver", "kubectl"):
        assert name not in first_line
    # what to do comes first: the one command, or the variable
    assert re.search(r"build them once with: (\S*/)?mig-conformance cluster install \(needs Go >= 1.21", first_line)
    assert "point MIG_K8S_ASSETS at a folder of prebuilt ones" in first_line
    assert f"MIG_K8S_ASSETS={mig}" in message and "KUBEBUILDER_ASSETS unset" in message
    assert str(tmp_path / ".cache" / "k8s" / "bin") in message
    assert str(tmp_path / "home" / ".cache" / "mig-conformance" / "k8s" / read_pins().kubernetes / "bin") in message


def test_non_executable_files_are_skipped_and_reported(tmp_path) -> None:
    mig = fake_bins(tmp_path / "mig", ["kwok"], executable=False)
    with pytest.raises(ClusterError, match="kwok") as e:
        find_assets(["kwok"], env={"MIG_K8S_ASSETS": str(mig), "PATH": ""}, cwd=tmp_path)
    assert f"found but not executable: {mig / 'kwok'}" in str(e.value)


def test_a_folder_is_not_a_binary(tmp_path) -> None:
    mig = tmp_path / "mig"
    (mig / "etcd").mkdir(parents=True)
    path = fake_bins(tmp_path / "path", ["etcd"])
    assert find_assets(["etcd"], env={"MIG_K8S_ASSETS": str(mig), "PATH": str(path)}, cwd=tmp_path) == {
        "etcd": path / "etcd"
    }


def test_defaults_read_os_environ(tmp_path, monkeypatch) -> None:
    mig = fake_bins(tmp_path / "mig")
    monkeypatch.setenv("MIG_K8S_ASSETS", str(mig))
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    monkeypatch.chdir(tmp_path)
    assert find_assets()["kube-apiserver"] == mig / "kube-apiserver"
