"""Building the local control plane's binaries from the pinned Go modules: `mig-conformance cluster install` (and
`scripts/build-k8s-binaries`, which runs it with the checkout's `.cache/`).

Six steps, one binary each (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd, kwok), each
showing `[k/6]`, the seconds spent and what Go is downloading or compiling. Each binary is built under a temporary
name and renamed when complete, so a killed build resumes where it stopped; binaries already built from the same
pins are kept. A second run finds the stamp and does nothing. Go >= 1.21 is needed: it fetches the toolchain the
modules name (go 1.26) itself. Layout: toolcache.py; versions and modules: pins.py.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TextIO

from mig_conformance.cluster.local.pins import (
    TOOL_MODULES,
    TOOLS,
    Pins,
    go_directive,
    read_pins,
    stamp_text,
    tools_match,
    version_tuple,
)
from mig_conformance.cluster.local.toolcache import CacheLayout
from mig_conformance.common.errors import MigConformanceError

MIN_GO = "1.21"  # the first Go that fetches the toolchain a go.mod names (GOTOOLCHAIN=auto)
ENV_VARS = ("MIG_K8S_ASSETS", "KUBEBUILDER_ASSETS")
KWOK_STAGES = "kwok-stages.yaml"
# kwokctl's default stages (node-fast, node-heartbeat-with-lease, pod-fast), from the kwok module's kustomize/stage
KWOK_STAGE_FILES = ("node/fast/node-initialize.yaml", "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
                    "pod/fast/pod-ready.yaml", "pod/fast/pod-complete.yaml", "pod/fast/pod-delete.yaml")
HEARTBEAT_S = 15.0
FIRST_BUILD = ("the first build takes 6-15 minutes on 2 idle cores (longer under load) and about 6 GB of disk; later "
               "runs do nothing")


class BuildError(MigConformanceError):
    """The build failed (Go's output says why)."""


class GoUnavailable(BuildError):
    """No usable Go on this machine: a missing prerequisite, not a failed build."""


@dataclass(frozen=True)
class Step:
    binary: str
    module: str  # the tools module it is built in
    package: str

    def version_args(self) -> list[str]:
        return ["version", "--client"] if self.binary == "kubectl" else ["--version"]


K8S_CMD = "k8s.io/kubernetes/cmd"
STEPS = (
    Step("kube-apiserver", "kubernetes", f"{K8S_CMD}/kube-apiserver"),
    Step("kube-controller-manager", "kubernetes", f"{K8S_CMD}/kube-controller-manager"),
    Step("kube-scheduler", "kubernetes", f"{K8S_CMD}/kube-scheduler"),
    Step("kubectl", "kubernetes", f"{K8S_CMD}/kubectl"),
    Step("etcd", "etcd", "go.etcd.io/etcd/server/v3"),
    Step("kwok", "kwok", "sigs.k8s.io/kwok/cmd/kwok"),
)
BINARIES = tuple(step.binary for step in STEPS)


@dataclass
class Result:
    """What a run did: `state` is "prebuilt" (an *_ASSETS folder holds all six), "up to date" or "built"."""

    state: str
    bin_dir: Path
    built: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def prebuilt_folder(env: Mapping[str, str]) -> tuple[str, Path] | None:
    """($VAR, folder) of the first of MIG_K8S_ASSETS / KUBEBUILDER_ASSETS that holds all six binaries."""
    for var in ENV_VARS:
        value = env.get(var, "")
        if value and all(_executable(Path(value).expanduser() / b) for b in BINARIES):
            return var, Path(value).expanduser()
    return None


def up_to_date(layout: CacheLayout, stamp: str) -> bool:
    try:
        done = layout.stamp.read_text(encoding="utf-8").strip() == stamp.strip()
    except OSError:
        return False
    return done and all(_executable(layout.bin_dir / b) for b in BINARIES) and (layout.bin_dir / KWOK_STAGES).is_file()


def missing(layout: CacheLayout) -> list[str]:
    return [b for b in BINARIES if not _executable(layout.bin_dir / b)]


def point_link(layout: CacheLayout) -> None:
    """ROOT/k8s/bin -> <KUBERNETES_VERSION>/bin, the stable path to give MIG_K8S_ASSETS."""
    target = f"{layout.kubernetes_version}/bin"
    link = layout.link
    if link.is_symlink() and os.readlink(link) == target:
        return
    if link.is_dir() and not link.is_symlink():
        shutil.rmtree(link)
    tmp = link.with_name(".bin.link")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    os.replace(tmp, link)


# ---- Go ---------------------------------------------------------------------------------------------------------
def find_go(env: Mapping[str, str], need: str, cwd: Path) -> tuple[str, str]:
    """(path, version) of a Go that can build the modules; GoUnavailable says in one line what is needed."""
    name = env.get("GO") or "go"
    what = (f"building the local control plane needs Go >= {MIN_GO} (it fetches the pinned toolchain go{need} "
            "itself)")
    alternative = "or point MIG_K8S_ASSETS at a folder with prebuilt " + ", ".join(BINARIES)
    path = shutil.which(name, path=env.get("PATH", os.defpath))
    if path is None:
        raise GoUnavailable(f"Go not found ('{name}' is not on PATH): {what}; install Go (https://go.dev/dl/) "
                            f"{alternative}")
    local = {**env, "GOTOOLCHAIN": "local"}  # the installed Go's own version, never a fetched one
    try:
        out = subprocess.run([path, "version"], capture_output=True, text=True, errors="replace", env=local,
                             cwd=cwd, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GoUnavailable(f"{path} does not run ({exc}): {what}") from None
    match = re.search(r"\bgo(\d+\.\d+(?:\.\d+)?)", out.stdout)
    if out.returncode != 0 or match is None:
        said = (out.stdout + out.stderr).strip().splitlines()
        raise GoUnavailable(f"{path} version failed ({said[-1] if said else f'exit {out.returncode}'}): {what}")
    version = match.group(1)
    if version_tuple(version) < version_tuple(MIN_GO):
        raise GoUnavailable(f"{path} is Go {version}: {what}; install a newer Go (https://go.dev/dl/) {alternative}")
    if version_tuple(version) < version_tuple(need) and _toolchain(path, env, cwd).startswith("local"):
        raise GoUnavailable(f"{path} is Go {version} and GOTOOLCHAIN=local forbids fetching go{need}, which the "
                            f"pinned modules need: unset GOTOOLCHAIN (or set it to auto) or install Go >= {need}")
    return path, version


def _toolchain(go: str, env: Mapping[str, str], cwd: Path) -> str:
    if env.get("GOTOOLCHAIN"):
        return env["GOTOOLCHAIN"]
    try:
        out = subprocess.run([go, "env", "GOTOOLCHAIN"], capture_output=True, text=True, env={**env}, cwd=cwd,
                             timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip()


def go_environment(env: Mapping[str, str], layout: CacheLayout) -> dict[str, str]:
    """Module and build caches under the cache root, writable (-modcacherw) so that `rm -rf` removes them; static
    binaries (CGO_ENABLED=0) as upstream releases; no go.work of the user's."""
    flags = " ".join(filter(None, [env.get("GOFLAGS", ""), "-modcacherw"]))
    return {**env, "GOMODCACHE": str(layout.gomodcache), "GOCACHE": str(layout.gocache), "GOFLAGS": flags,
            "CGO_ENABLED": "0", "GOWORK": "off"}


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(f"  {line}" for line in text.strip().splitlines()[-lines:])


# ---- progress ---------------------------------------------------------------------------------------------------
class Say:
    """Progress lines on `out` (stdout by default), flushed at once so that CI logs show them as they come."""

    def __init__(self, out: TextIO | None = None, prefix: str = "cluster install") -> None:
        self.out = out if out is not None else sys.stdout
        self.prefix = prefix

    def __call__(self, text: str) -> None:
        self.out.write(f"{self.prefix}: {text}\n")
        self.out.flush()


_PACKAGE = re.compile(r"^[A-Za-z0-9][\w.\-~]*(/[\w.\-~+]+)+$")


class _Watch:
    """Reads a go build's output (`-v`: one line per package compiled, `go: downloading M V` per module fetched):
    the last lines for errors and what it is doing now for the heartbeat."""

    def __init__(self, stream: IO[str]) -> None:
        self.tail: deque[str] = deque(maxlen=40)
        self.activity = "resolving modules"
        self.compiled = 0
        self.downloaded = 0
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream: IO[str]) -> None:
        for raw in stream:
            line = raw.rstrip()
            self.tail.append(line)
            if line.startswith("go: downloading "):
                self.downloaded += 1
                self.activity = "downloading " + line.removeprefix("go: downloading ")
            elif _PACKAGE.match(line):
                self.compiled += 1
                self.activity = "compiling " + line


@dataclass(frozen=True)
class GoRunner:
    """Runs the build's go commands, each with a heartbeat line every `every` seconds: the seconds so far and what go
    is doing (downloading a module, compiling a package). Ctrl-C stops go (its own process group)."""

    go: str
    env: Mapping[str, str]
    say: Say
    every: float = HEARTBEAT_S

    def run(self, args: list[str], cwd: Path, label: str) -> tuple[str, float]:
        """(stdout, seconds) of `go ARGS` in `cwd`; BuildError with the end of go's messages when it fails."""
        t0 = time.monotonic()
        proc = subprocess.Popen([self.go, *args], cwd=cwd, env=dict(self.env), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, errors="replace", start_new_session=True)
        assert proc.stdout is not None and proc.stderr is not None
        watch = _Watch(proc.stderr)  # go build -v and "go: downloading" write to stderr
        stdout: list[str] = []
        reader = threading.Thread(target=lambda: stdout.append(proc.stdout.read() if proc.stdout else ""),
                                  daemon=True)
        reader.start()
        next_beat = t0 + self.every
        try:
            while True:
                try:
                    proc.wait(timeout=min(1.0, self.every))
                    break
                except subprocess.TimeoutExpired:
                    pass
                now = time.monotonic()
                if now >= next_beat:
                    self.say(f"{label}: {now - t0:.0f}s, {watch.activity} ({watch.compiled} packages compiled, "
                             f"{watch.downloaded} modules downloaded)")
                    next_beat = now + self.every
        except BaseException:
            _stop(proc)
            raise
        watch.thread.join(timeout=5)
        reader.join(timeout=5)
        if proc.returncode != 0:
            raise BuildError(f"{label}: go {args[0]} failed with exit {proc.returncode} (in {cwd}):\n"
                             + _tail("\n".join(watch.tail)))
        return "".join(stdout), time.monotonic() - t0


def _stop(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# ---- the build --------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """SIGTERM and SIGHUP stop the build like Ctrl-C: go is stopped, what is built stays (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    old = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def _locked(layout: CacheLayout, say: Say) -> Iterator[None]:
    """One build per cache root at a time (two terminals, two CI steps)."""
    layout.lock.parent.mkdir(parents=True, exist_ok=True)
    with open(layout.lock, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"another build holds {layout.lock}; waiting for it")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _prepare(layout: CacheLayout, stamp: str, force: bool, tools: Path) -> None:
    """Keep binaries built from these very pins (a resumed build), drop anything else; copy the tools modules."""
    for leftover in ("bin.partial", "bin.old"):  # folders of the former shell build
        shutil.rmtree(layout.version_dir / leftover, ignore_errors=True)
    origin = None
    for marker in (layout.building, layout.stamp):
        with contextlib.suppress(OSError):
            origin = origin or marker.read_text(encoding="utf-8")
    if layout.bin_dir.exists() and (force or origin is None or origin.strip() != stamp.strip()):
        shutil.rmtree(layout.bin_dir)
    layout.bin_dir.mkdir(parents=True, exist_ok=True)
    for stray in layout.bin_dir.glob(".*.partial"):
        stray.unlink(missing_ok=True)
    layout.building.write_text(stamp, encoding="utf-8")
    layout.stamp.unlink(missing_ok=True)
    for name in TOOL_MODULES:
        (layout.src / name).mkdir(parents=True, exist_ok=True)
        for file in ("go.mod", "go.sum"):
            shutil.copyfile(tools / name / file, layout.src / name / file)


def _ldflags(step: Step, pins: Pins, runner: GoRunner, layout: CacheLayout, label: str,
             cache: dict[str, str]) -> str:
    """-s -w, and for Kubernetes the version variables that its release builds set (hack/lib/version.sh)."""
    if step.module != "kubernetes":
        return "-s -w"
    if "k8s" not in cache:
        runner.say(f"{label}: resolving the modules of k8s.io/kubernetes {pins.kubernetes} ...")
        text, _ = runner.run(["list", "-m", "-json", "k8s.io/kubernetes"], layout.src / "kubernetes", label)
        info = json.loads(text)
        built = str(info.get("Time") or "1970-01-01T00:00:00Z")
        flags = ["-s", "-w"]
        for pkg in ("k8s.io/client-go/pkg/version", "k8s.io/component-base/version"):
            flags += [f"-X {pkg}.gitVersion={pins.kubernetes}", f"-X {pkg}.gitMajor=1",
                      f"-X {pkg}.gitMinor={pins.minor}", f"-X {pkg}.gitTreeState=archive",
                      f"-X {pkg}.buildDate={built}"]
        cache["k8s"] = " ".join(flags)
    return cache["k8s"]


def _check_etcd(pins: Pins, runner: GoRunner, layout: CacheLayout, label: str) -> None:
    runner.say(f"{label}: resolving the modules of go.etcd.io/etcd/server/v3 {pins.etcd} ...")
    text, _ = runner.run(["list", "-m", "-f", "{{.Version}}", "go.etcd.io/etcd/server/v3"], layout.src / "etcd",
                         label)
    selected = text.strip()
    if selected != pins.etcd:
        raise BuildError(f"the etcd tools module selects go.etcd.io/etcd/server/v3 {selected}, not {pins.etcd}")


def _write_stages(pins: Pins, runner: GoRunner, layout: CacheLayout) -> None:
    """kwok runs nothing without Stage objects: kwokctl's defaults, for running kwok by hand (the kit uses its own,
    cluster/local/kwok_stages.py)."""
    text, _ = runner.run(["list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/kwok"], layout.src / "kwok", KWOK_STAGES)
    source = Path(text.strip())
    parts = [f"# kwok {pins.kwok} default stages (kwokctl's node-fast, node-heartbeat-with-lease, pod-fast),",
             f"# assembled by mig-conformance cluster install from sigs.k8s.io/kwok@{pins.kwok}/kustomize/stage.",
             "# Use: kwok --config=<this file> --node-lease-duration-seconds=40 ..."]
    for name in KWOK_STAGE_FILES:
        try:
            text = (source / "kustomize" / "stage" / name).read_text(encoding="utf-8")
        except OSError as exc:
            raise BuildError(f"kwok {pins.kwok} has no kustomize/stage/{name} ({exc.strerror or exc})") from None
        parts += ["---", text.rstrip("\n")]
    tmp = layout.bin_dir / f".{KWOK_STAGES}.partial"
    tmp.write_text("\n".join(parts) + "\n", encoding="utf-8")
    os.replace(tmp, layout.bin_dir / KWOK_STAGES)


def version_line(binary: Path, args: list[str]) -> str:
    """The first line of a binary's version output; BuildError when it does not run."""
    try:
        out = subprocess.run([str(binary), *args], capture_output=True, text=True, errors="replace", timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BuildError(f"{binary} does not run: {exc}") from None
    text = (out.stdout or out.stderr).strip()
    if out.returncode != 0 or not text:
        raise BuildError(f"{binary} {' '.join(args)} failed with exit {out.returncode}:\n"
                         + _tail(out.stdout + out.stderr))
    return text.splitlines()[0]


def build(root: Path, *, force: bool = False, env: Mapping[str, str] | None = None, out: TextIO | None = None,
          every: float = HEARTBEAT_S, tools: Path = TOOLS, prefix: str = "cluster install",
          regenerate: str = "never") -> Result:
    """Make the six binaries available under `root` (toolcache.CacheLayout); see the module docstring.

    regenerate: "never" (an installed kit: tools modules that do not pin the versions of versions.env are an
    error), "auto" (a checkout: regenerate them then, see regenerate.py) or "always" (regenerate, then build what
    the new stamp lacks)."""
    env = dict(os.environ if env is None else env)
    say = Say(out, prefix)
    t0 = time.monotonic()
    pins = read_pins(tools)
    layout = CacheLayout(root.expanduser().absolute(), pins.kubernetes)
    if not force and regenerate != "always":
        prebuilt = prebuilt_folder(env)
        if prebuilt is not None:
            say(f"{prebuilt[0]}={prebuilt[1]} holds {', '.join(BINARIES)}; building nothing")
            return Result("prebuilt", prebuilt[1])
    if regenerate == "always" or not tools_match(pins, tools):
        if regenerate == "never":
            raise BuildError(f"{tools}: the tools modules do not pin {pins.describe()} of versions.env (a damaged "
                             "install: reinstall mig-conformance)")
        from mig_conformance.cluster.local.regenerate import regenerate_tools

        layout.root.mkdir(parents=True, exist_ok=True)
        go, _ = find_go(env, go_directive(tools), layout.root)
        regenerate_tools(pins, say, go, go_environment(env, layout), layout.version_dir, tools)
        if not tools_match(pins, tools):
            raise BuildError(f"{tools} still does not pin {pins.describe()} after regenerating")
    stamp = stamp_text(pins, tools)
    if not force and up_to_date(layout, stamp):
        point_link(layout)
        say(f"up to date: {layout.bin_dir} holds {', '.join(BINARIES)} ({pins.describe()}); nothing to build "
            f"({time.monotonic() - t0:.2f}s)")
        return Result("up to date", layout.bin_dir, seconds=time.monotonic() - t0)
    layout.root.mkdir(parents=True, exist_ok=True)
    go, go_version = find_go(env, go_directive(tools), layout.root)
    with _interruptible(), _locked(layout, say):
        if not force and up_to_date(layout, stamp):  # another process finished it while this one waited
            point_link(layout)
            say(f"up to date: {layout.bin_dir} (built by the other run)")
            return Result("up to date", layout.bin_dir, seconds=time.monotonic() - t0)
        _prepare(layout, stamp, force, tools)
        runner = GoRunner(go, go_environment(env, layout), say, every)
        todo = missing(layout)
        done = len(BINARIES) - len(todo)
        say(f"building {pins.describe()} with Go {go_version} ({go}) into {layout.bin_dir}"
            + (f"; {done} of {len(BINARIES)} already built, resuming" if done else f"; {FIRST_BUILD}"))
        built: list[str] = []
        ldflags: dict[str, str] = {}
        for number, step in enumerate(STEPS, 1):
            label = f"[{number}/{len(STEPS)}] {step.binary}"
            target = layout.bin_dir / step.binary
            if step.binary not in todo:
                say(f"{label}: already built")
                continue
            if step.module == "etcd":
                _check_etcd(pins, runner, layout, label)
            partial = layout.bin_dir / f".{step.binary}.partial"
            flags = _ldflags(step, pins, runner, layout, label, ldflags)
            say(f"{label}: building {step.package} ...")
            _, seconds = runner.run(["build", "-v", "-trimpath", "-ldflags", flags, "-o", str(partial), step.package],
                                    layout.src / step.module, label)
            version_line(partial, step.version_args())
            os.replace(partial, target)
            built.append(step.binary)
            say(f"{label}: built in {seconds:.0f}s ({target.stat().st_size // 1048576} MiB)")
        _write_stages(pins, runner, layout)
        versions = {b: version_line(layout.bin_dir / b, s.version_args()) for b, s in zip(BINARIES, STEPS, strict=True)}
        layout.stamp.write_text(stamp, encoding="utf-8")
        layout.building.unlink(missing_ok=True)
        point_link(layout)
    seconds = time.monotonic() - t0
    say(f"done in {int(seconds) // 60}m{int(seconds) % 60:02d}s: {layout.bin_dir} ({layout.link} points there)")
    for binary, line in versions.items():
        say(f"  {binary:<24} {line}")
    return Result("built", layout.bin_dir, built, seconds)


def check(root: Path, *, env: Mapping[str, str] | None = None, tools: Path = TOOLS) -> tuple[bool, str]:
    """(available, what was found): an *_ASSETS folder with all six, or an up-to-date cache under `root`."""
    env = dict(os.environ if env is None else env)
    prebuilt = prebuilt_folder(env)
    if prebuilt is not None:
        return True, f"{prebuilt[0]}={prebuilt[1]} holds {', '.join(BINARIES)}"
    pins = read_pins(tools)
    layout = CacheLayout(root.expanduser().absolute(), pins.kubernetes)
    if tools_match(pins, tools) and up_to_date(layout, stamp_text(pins, tools)):
        return True, f"up to date: {layout.bin_dir} ({pins.describe()})"
    lacking = missing(layout)
    state = f"lacks {', '.join(lacking)}" if lacking else "is out of date"
    return False, f"{layout.bin_dir} {state}"
