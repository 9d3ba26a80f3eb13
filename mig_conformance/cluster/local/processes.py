"""Child processes of a local cluster: started in their own process group, logged to a file, recorded in a JSON
file (pid + kernel start time, so a later `cluster down` never signals a recycled pid), stopped TERM then KILL."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_PR_SET_PDEATHSIG = 1


@dataclass
class Managed:
    """One started process."""

    name: str
    pid: int
    start_ticks: int
    log: Path
    argv: list[str]
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "pid": self.pid, "start_ticks": self.start_ticks, "log": str(self.log),
                "argv": self.argv}


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of a pid, None when there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[19])


@functools.cache
def _prctl() -> Callable[..., int] | None:
    """libc's prctl, resolved in the parent: the child must not load libraries between fork and exec."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def _die_with_parent() -> None:  # runs in the child between fork and exec: only a foreign call
    fn = _prctl()
    if fn is not None:
        fn(_PR_SET_PDEATHSIG, signal.SIGKILL)


def spawn(name: str, argv: Sequence[str], log: Path, *, env: Mapping[str, str] | None = None,
          cwd: Path | None = None, tie_to_parent: bool = False) -> Managed:
    """Start argv in a new session (own process group: Ctrl-C in a terminal does not reach it), output to `log`.

    tie_to_parent: the kernel kills the child if the thread that started it dies (Linux), so nothing outlives a
    killed test run; a daemon (`cluster up`) passes False.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"# {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(argv)}\n".encode())
        out.flush()
        preexec = _die_with_parent if tie_to_parent and sys.platform.startswith("linux") and _prctl() else None
        popen = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                 env=dict(env) if env is not None else None, cwd=cwd, start_new_session=True,
                                 preexec_fn=preexec)  # only prctl runs between fork and exec
    st = _stat(popen.pid)
    return Managed(name, popen.pid, st[1] if st else 0, log, list(argv), popen)


def alive(proc: Managed) -> bool:
    """Is this exact process still running (not a zombie, not a recycled pid)?"""
    if proc.popen is not None:
        return proc.popen.poll() is None
    st = _stat(proc.pid)
    return st is not None and st[0] not in ("Z", "X") and st[1] == proc.start_ticks


def exit_code(proc: Managed) -> int | None:
    return proc.popen.poll() if proc.popen is not None else None


def _signal(proc: Managed, sig: int) -> None:
    if not alive(proc):
        return
    try:
        os.killpg(proc.pid, sig)  # its own group (start_new_session): children of the process too, one signal
    except (ProcessLookupError, PermissionError):  # it left its group: signal the process alone
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(proc.pid, sig)


def _wait(procs: list[Managed], deadline: float) -> list[Managed]:
    left = list(procs)
    while left:
        left = [p for p in left if alive(p)]
        if not left or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    return left


def stop(procs: Iterable[Managed], grace: float = 10.0) -> list[str]:
    """SIGTERM every process (group), wait up to `grace` s, SIGKILL the rest; names of those that needed KILL."""
    procs = [p for p in procs if alive(p)]
    for p in procs:
        _signal(p, signal.SIGTERM)
    stubborn = _wait(procs, time.monotonic() + grace)
    for p in stubborn:
        _signal(p, signal.SIGKILL)
    still = _wait(stubborn, time.monotonic() + 5.0)
    for p in procs:
        if p.popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.popen.wait(timeout=0.5)
    if still:
        raise OSError(f"processes survived SIGKILL: {', '.join(f'{p.name} (pid {p.pid})' for p in still)}")
    return [p.name for p in stubborn]


def save(path: Path, procs: Iterable[Managed]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps([p.as_dict() for p in procs], indent=1))
    os.replace(tmp, path)


def load(path: Path) -> list[Managed]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return [Managed(d["name"], int(d["pid"]), int(d["start_ticks"]), Path(d["log"]), list(d["argv"])) for d in data]


_ERROR = re.compile(r'^(Error:|[EF]\d{4} )|"level":"ERROR"|\bfatal\b|panic:', re.IGNORECASE)


def log_tail(path: Path, lines: int = 15) -> str:
    """The last error lines of a log (klog E/F lines, `Error:`, JSON level ERROR), else its last lines."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    errors = [line for line in text if _ERROR.search(line)]
    return "\n".join((errors or text)[-lines:] if not errors else errors[-5:])
