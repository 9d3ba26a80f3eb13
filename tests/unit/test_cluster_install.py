"""`mig-conformance cluster install` (cluster/local/build.py): the six binaries built step by step from the tools
modules shipped in the package into the user's cache folder, resumable, idempotent, with one clear line when Go is
missing or too old. A fake `go` (tests/support/fake_go.py) records what the build asks of Go; the real build is
CI's (`.ci/run` runs it through scripts/build-k8s-binaries) and `test_the_real_go_build`'s."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from mig_conformance.cli import main
from mig_conformance.cluster import assets
from mig_conformance.cluster.local import build, pins
from mig_conformance.cluster.local.build import BINARIES, STEPS
from mig_conformance.cluster.local.pins import TOOLS, read_pins, stamp_text
from mig_conformance.cluster.local.regenerate import staging_replaces, tools_gomod
from support.fake_go import builds, calls, fake_go, kwok_module

ROOT = Path(__file__).resolve().parents[2]
VERSION = read_pins().kubernetes


@dataclass
class Env:
    log: Path
    cache: Path  # $XDG_CACHE_HOME/mig-conformance
    path: str

    @property
    def bin(self) -> Path:
        return self.cache / "k8s" / VERSION / "bin"


@pytest.fixture
def go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    """A fake go first on PATH, an empty user cache folder, none of the caller's asset or Go variables."""
    fake_go(tmp_path / "gobin")
    path = os.pathsep.join([str(tmp_path / "gobin"), "/usr/bin", "/bin"])
    monkeypatch.setenv("PATH", path)
    monkeypatch.setenv("FAKE_GO_LOG", str(tmp_path / "go.log"))
    monkeypatch.setenv("FAKE_KWOK_DIR", str(kwok_module(tmp_path / "kwok-module")))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    for var in ("MIG_K8S_ASSETS", "KUBEBUILDER_ASSETS", "GOTOOLCHAIN", "GOFLAGS", "GO", "FAKE_GO_FAIL",
                "FAKE_GO_SLEEP", "FAKE_GO_VERSION", "FAKE_GO_TOOLCHAIN"):
        monkeypatch.delenv(var, raising=False)
    return Env(tmp_path / "go.log", tmp_path / "xdg" / "mig-conformance", path)


def _install(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(["cluster", "install", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_install_builds_the_six_binaries_step_by_step_into_the_user_cache(
        go: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    rc, out, err = _install(capsys)
    assert rc == 0, err
    for number, step in enumerate(STEPS, 1):
        assert f"[{number}/6] {step.binary}: building {step.package} ..." in out
        assert re.search(rf"\[{number}/6\] {step.binary}: built in \d+s", out)
    assert builds(go.log) == [s.package for s in STEPS]
    src = go.cache / "k8s" / VERSION / "src"
    for call in calls(go.log):
        args = call["args"]
        assert isinstance(args, list) and isinstance(call["env"], dict)
        if args[0] != "build":
            continue
        step = next(s for s in STEPS if s.package == args[-1])
        assert call["cwd"] == str(src / step.module)  # a copy of the shipped tools module, never the package
        assert args[args.index("-o") + 1] == str(go.bin / f".{step.binary}.partial")  # renamed when complete
        assert call["env"]["GOMODCACHE"] == str(go.cache / "go" / "mod")
        assert call["env"]["GOCACHE"] == str(go.cache / "go" / "build")
        assert "-modcacherw" in call["env"]["GOFLAGS"] and call["env"]["CGO_ENABLED"] == "0"
        ldflags = args[args.index("-ldflags") + 1]
        if step.module == "kubernetes":
            assert f"-X k8s.io/component-base/version.gitVersion={VERSION}" in ldflags
            assert "buildDate=2026-05-14T10:00:00Z" in ldflags
        else:
            assert ldflags == "-s -w"
    for module in pins.TOOL_MODULES:
        assert (src / module / "go.sum").read_bytes() == (TOOLS / module / "go.sum").read_bytes()
    assert sorted(p.name for p in go.bin.iterdir()) == sorted([*BINARIES, build.KWOK_STAGES])
    assert (go.bin / build.KWOK_STAGES).read_text().count("kind: Stage") == len(build.KWOK_STAGE_FILES)
    assert (go.cache / "k8s" / VERSION / "stamp").read_text() == stamp_text(read_pins())
    assert (go.cache / "k8s" / "bin").resolve() == go.bin.resolve()
    # the kit finds them there (no checkout cache, nothing on PATH)
    monkeypatch.setattr(assets, "_repo_root", lambda: None)
    found = assets.find_assets(env={"XDG_CACHE_HOME": str(go.cache.parent), "PATH": ""}, cwd=go.cache)
    assert found == {b: go.bin / b for b in assets.BINARIES}


def test_a_second_run_finds_everything_there_and_runs_no_go(go: Env, capsys: pytest.CaptureFixture[str]) -> None:
    assert _install(capsys)[0] == 0
    go.log.unlink()
    rc, out, _ = _install(capsys)
    assert rc == 0
    assert "up to date:" in out and "nothing to build" in out
    assert calls(go.log) == []  # not even `go version`
    assert _install(capsys, "--check")[0] == 0


def test_a_failed_build_keeps_what_is_built_and_resumes_there(
        go: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_GO_FAIL", "go.etcd.io/etcd/server/v3")
    rc, _, err = _install(capsys)
    assert rc == 1
    assert "[5/6] etcd: go build failed with exit 1" in err and "compile error: undefined: fake" in err
    assert "run the command again to continue" in err
    assert sorted(p.name for p in go.bin.iterdir()) == sorted(BINARIES[:4])  # no partial file left either
    assert not (go.cache / "k8s" / VERSION / "stamp").exists()
    assert _install(capsys, "--check")[0] == 1
    monkeypatch.delenv("FAKE_GO_FAIL")
    go.log.unlink()
    rc, out, _ = _install(capsys)
    assert rc == 0
    assert "4 of 6 already built, resuming" in out and "[1/6] kube-apiserver: already built" in out
    assert builds(go.log) == ["go.etcd.io/etcd/server/v3", "sigs.k8s.io/kwok/cmd/kwok"]


def test_binaries_of_other_pins_are_not_kept(go: Env, capsys: pytest.CaptureFixture[str]) -> None:
    """A cache built from other go.mod/go.sum files (a kit upgrade) is rebuilt whole, never mixed."""
    assert _install(capsys)[0] == 0
    stamp = go.cache / "k8s" / VERSION / "stamp"
    stamp.write_text(stamp.read_text().replace("kwok/go.sum", "kwok/go.sum.old"))
    go.log.unlink()
    assert _install(capsys)[0] == 0
    assert builds(go.log) == [s.package for s in STEPS]


def test_without_go_one_line_says_what_is_needed(go: Env, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", os.pathsep.join(["/usr/bin", "/bin"]))
    rc, out, err = _install(capsys)
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert "Go not found" in err and "needs Go >= 1.21" in err and "fetches the pinned toolchain go1.26" in err
    assert "MIG_K8S_ASSETS" in err
    assert not go.bin.exists()


@pytest.mark.parametrize("version", ["go1.20.14", "go1.4"])
def test_go_older_than_1_21_is_refused_in_one_line(go: Env, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    monkeypatch.setenv("FAKE_GO_VERSION", version)
    rc, _, err = _install(capsys)
    assert rc == 2
    assert len(err.strip().splitlines()) == 1, err
    assert f"is Go {version.removeprefix('go')}: building the local control plane needs Go >= 1.21" in err
    assert builds(go.log) == []


@pytest.mark.parametrize("where", ["env", "go env"])
def test_gotoolchain_local_with_a_go_older_than_the_modules_is_refused(
        go: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    monkeypatch.setenv("FAKE_GO_VERSION", "go1.22.5")
    monkeypatch.setenv("GOTOOLCHAIN" if where == "env" else "FAKE_GO_TOOLCHAIN", "local")
    rc, _, err = _install(capsys)
    assert rc == 2
    assert "is Go 1.22.5 and GOTOOLCHAIN=local forbids fetching go1.26" in err
    assert builds(go.log) == []


def test_go_1_21_or_newer_fetches_the_toolchain_itself(go: Env, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_GO_VERSION", "go1.22.5")  # GOTOOLCHAIN=auto (the default): go fetches go1.26
    assert _install(capsys)[0] == 0
    assert len(builds(go.log)) == 6


def test_check_and_prebuilt_assets(go: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                   tmp_path: Path) -> None:
    rc, out, _ = _install(capsys, "--check")
    assert rc == 1
    assert f"{go.bin} lacks kube-apiserver" in out and "build them with: mig-conformance cluster install" in out
    prebuilt = tmp_path / "prebuilt"
    prebuilt.mkdir()
    for name in BINARIES:
        (prebuilt / name).write_text("#!/bin/sh\n")
        (prebuilt / name).chmod(0o755)
    monkeypatch.setenv("MIG_K8S_ASSETS", str(prebuilt))
    rc, out, _ = _install(capsys)
    assert rc == 0 and f"MIG_K8S_ASSETS={prebuilt} holds" in out and "building nothing" in out
    assert calls(go.log) == []


def test_a_long_step_shows_a_heartbeat_with_the_step_time_and_what_go_does(
        go: Env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import io

    monkeypatch.setenv("FAKE_GO_SLEEP", "k8s.io/kubernetes/cmd/kube-apiserver=0.5")
    monkeypatch.setenv("FAKE_GO_FAIL", "k8s.io/kubernetes/cmd/kube-controller-manager")  # stop after step 1
    out = io.StringIO()
    with pytest.raises(build.BuildError, match=r"\[2/6\] kube-controller-manager: go build failed"):
        build.build(tmp_path / "cache", out=out, every=0.15)
    beats = re.findall(r"\[1/6\] kube-apiserver: (\d+)s, (compiling|downloading) (\S+) \((\d+) packages compiled, "
                       r"(\d+) modules downloaded\)", out.getvalue())
    assert beats, out.getvalue()
    assert ("compiling", "k8s.io/kubernetes/cmd/kube-apiserver/internal/slow") in [(b[1], b[2]) for b in beats]


@pytest.mark.slow  # a subprocess killed mid-build
def test_sigterm_stops_go_and_the_next_run_continues(go: Env, tmp_path: Path) -> None:
    env = {**os.environ, "FAKE_GO_SLEEP": "sigs.k8s.io/kwok/cmd/kwok=60"}
    proc = subprocess.Popen([sys.executable, "-m", "mig_conformance", "cluster", "install"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while "sigs.k8s.io/kwok/cmd/kwok" not in builds(go.log):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    time.sleep(0.5)  # the fake go is sleeping inside its build
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted; the binaries built so far are kept" in err
    go_pid = int(str(calls(go.log)[-1]["pid"]))
    with pytest.raises(ProcessLookupError):
        os.kill(go_pid, 0)  # go was stopped with it, not left compiling
    assert sorted(p.name for p in go.bin.iterdir() if not p.name.startswith(".")) == sorted(BINARIES[:5])
    go.log.unlink()
    rerun = subprocess.run([sys.executable, "-m", "mig_conformance", "cluster", "install"], capture_output=True,
                           text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert builds(go.log) == ["sigs.k8s.io/kwok/cmd/kwok"]


def test_regenerate_is_refused_outside_a_checkout(go: Env, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pins, "in_checkout", lambda tools=TOOLS: False)
    rc, _, err = _install(capsys, "--regenerate")
    assert rc == 2 and "only in a checkout" in err
    assert calls(go.log) == []


def test_the_build_script_is_the_same_command_with_the_checkout_cache(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MIG_K8S_ASSETS", "KUBEBUILDER_ASSETS")}
    proc = subprocess.run([str(ROOT / "scripts" / "build-k8s-binaries"), "--check"], capture_output=True, text=True,
                          env={**env, "XDG_CACHE_HOME": str(tmp_path)}, timeout=60)
    assert proc.returncode in (0, 1), proc.stderr
    assert f"{ROOT}/.cache/k8s/{VERSION}/bin" in proc.stdout
    help_ = subprocess.run([str(ROOT / "scripts" / "build-k8s-binaries"), "--help"], capture_output=True, text=True,
                           timeout=60)
    assert help_.returncode == 0 and "--regenerate" in help_.stdout and "--cache-dir" in help_.stdout


# ---- the tools modules ------------------------------------------------------------------------------------------
UPSTREAM = """module k8s.io/kubernetes

go 1.26.0

godebug default=go1.26

require (
\tk8s.io/api v0.0.0
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go // comment
\tgithub.com/x/y v1.0.0 => github.com/x/y v1.0.1
)
replace k8s.io/kubectl => ./staging/src/k8s.io/kubectl
"""


def test_the_kubernetes_tools_module_pins_the_staging_modules_to_the_release() -> None:
    replaces = staging_replaces(UPSTREAM, "v0.37.2")
    assert replaces == ["k8s.io/api => k8s.io/api v0.37.2", "k8s.io/client-go => k8s.io/client-go v0.37.2",
                        "github.com/x/y v1.0.0 => github.com/x/y v1.0.1", "k8s.io/kubectl => k8s.io/kubectl v0.37.2"]
    gomod = tools_gomod("kubernetes", UPSTREAM, "k8s.io/kubernetes v1.37.2", ["k8s.io/kubernetes/cmd/kubectl"],
                        replaces)
    assert "module mig-conformance/k8s-tools/kubernetes\n\ngo 1.26.0\ngodebug default=go1.26\n" in gomod
    assert "require k8s.io/kubernetes v1.37.2\n\ntool (\n\tk8s.io/kubernetes/cmd/kubectl\n)\n" in gomod
    assert "replace (\n\tk8s.io/api => k8s.io/api v0.37.2\n" in gomod


def test_a_local_replace_outside_staging_is_refused() -> None:
    with pytest.raises(build.BuildError, match="local path"):
        staging_replaces("replace k8s.io/x => ../x\n", "v0.37.2")


def test_the_shipped_tools_modules_pin_versions_env() -> None:
    """What an installed wheel builds from: versions.env and the go.mod files agree (else `cluster install` fails)."""
    current = read_pins()
    assert pins.tools_match(current)
    assert pins.go_directive() == "1.26.0"
    assert not pins.tools_match(pins.Pins(current.kubernetes, "v3.6.0", current.kwok))


def test_a_damaged_versions_file_is_named(tmp_path: Path) -> None:
    shutil.copytree(TOOLS, tmp_path / "tools")
    (tmp_path / "tools" / "versions.env").write_text("KUBERNETES_VERSION=1.37\n")
    with pytest.raises(pins.PinsError, match=r"versions.env: KUBERNETES_VERSION='1.37' is not vX.Y.Z"):
        read_pins(tmp_path / "tools")


# ---- the real Go ------------------------------------------------------------------------------------------------
def test_the_real_go_here_is_usable_or_refused_in_one_line(tmp_path: Path) -> None:
    """With the machine's own go (skipped where there is none)."""
    if shutil.which("go") is None:
        pytest.skip("no go on PATH")
    try:
        path, version = build.find_go(dict(os.environ), pins.go_directive(), tmp_path)
    except build.GoUnavailable as exc:
        assert "\n" not in str(exc) and "Go >=" in str(exc)
        return
    assert Path(path).is_file() and pins.version_tuple(version) >= (1, 21)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("MIG_TEST_REAL_GO_BUILD") != "1",
                    reason="the real build takes 6-30 minutes and ~6 GB: MIG_TEST_REAL_GO_BUILD=1 runs it (CI builds "
                           "the same way through scripts/build-k8s-binaries)")
def test_the_real_go_build(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MIG_K8S_ASSETS", "KUBEBUILDER_ASSETS")}
    proc = subprocess.run([sys.executable, "-m", "mig_conformance", "cluster", "install", "--cache-dir",
                           str(tmp_path)], capture_output=True, text=True, env=env, timeout=3600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    bin_dir = tmp_path / "k8s" / VERSION / "bin"
    assert build.version_line(bin_dir / "kube-apiserver", ["--version"]) == f"Kubernetes {VERSION}"
