"""Private files: 0600 from the first byte (also over a stale temporary file), replaced atomically."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from mig_conformance.common.private_files import write_private


def test_mode_0600_and_atomic_replace(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    stale = tmp_path / ".kubeconfig.tmp"
    stale.write_text("left by a killed run")
    stale.chmod(0o644)
    os.umask(0o022)
    write_private(path, "one")
    assert path.read_text() == "one" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not stale.exists()
    write_private(path, b"two", durable=True)
    assert path.read_bytes() == b"two" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kubeconfig"]
