"""Fake executables for tests of backends that call command-line tools (kind, kubectl)."""

from __future__ import annotations

import stat
from pathlib import Path


def fake_executable(folder: Path, name: str, script: str = "#!/bin/sh\nexit 0\n") -> Path:
    """An executable file `name` in `folder` running `script` (by default: does nothing, exits 0)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path
