"""The differential harness (scripts/build-difftest) as the tests use it: where it is, whether it is current, and
one run over many cases. As with the control plane (support/control_plane.py): a missing or stale harness skips
the test naming what to run, except under CI, where it fails."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from support.control_plane import in_ci

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "scripts" / "build-difftest"
PINS = ROOT / "scripts" / "difftest" / "go.mod"
BINARY = ROOT / ".cache" / "difftest" / "bin" / "mig-conformance-difftest"
MODULE = "github.com/NVIDIA/k8s-device-plugin"


def pinned_version() -> str:
    """The k8s-device-plugin version the harness is built from (scripts/difftest/go.mod)."""
    m = re.search(rf"^require {re.escape(MODULE)} (v\S+)", PINS.read_text(), re.M)
    if not m:
        raise ValueError(f"{PINS} pins no {MODULE} version")
    return m[1]


def _unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"CI: the differential harness is required: {reason}", pytrace=False)
    pytest.skip(f"differential harness not built ({reason}): run scripts/build-difftest")


def harness() -> Path:
    """The built harness; skips (fails under CI) when it is missing or older than its pins and sources."""
    try:
        check = subprocess.run([str(BUILD), "--check"], capture_output=True, text=True, timeout=60, check=False)
    except OSError as exc:
        _unavailable(f"cannot run {BUILD.name}: {exc}")
    if check.returncode != 0:
        _unavailable((check.stderr or check.stdout).strip() or f"{BUILD.name} --check exited {check.returncode}")
    if not BINARY.exists():
        _unavailable(f"{BINARY} is missing")
    return BINARY


def run_harness(binary: Path, cases: Iterable[Mapping[str, Any]], timeout: float = 600) -> tuple[dict[str, Any], str]:
    """Run every case in one process: ({case id: result}, the harness's stderr)."""
    doc = json.dumps({"cases": list(cases)})
    proc = subprocess.run([str(binary)], input=doc, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"the harness failed (exit {proc.returncode}): {proc.stderr.strip()}")
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return {r["id"]: r for r in results}, proc.stderr
