"""Files only their owner may read (kubeconfigs, private keys, journals): mode 0600 from the first byte, written
to a temporary name and renamed, so a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import os
from pathlib import Path


def write_private(path: str | os.PathLike[str], data: str | bytes, *, durable: bool = False) -> Path:
    """Write `data` to `path` (0600, atomic replace). `durable` also syncs the file and its folder to disk, so the
    new content survives a crash right after (the journal needs that)."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # also when a stale temporary file had another mode
        os.write(fd, data.encode() if isinstance(data, str) else data)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)
    if durable:
        _fsync_dir(target.parent)
    return target


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open folders; the rename is still atomic there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
