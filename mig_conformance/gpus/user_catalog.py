"""User catalog folders: GPU entries (`gpus/*.yaml`, as `capture` writes them) and new instance types
(`instance-types.yaml`) that add to or override the shipped catalog.

`use_user_catalogs(dirs)` loads the whole catalog and instance-type table with those folders into new objects first;
only when everything loaded are the folders put in effect (`catalog.set_user_catalog_dirs`), so an error never
leaves a half-loaded catalog. The loaders cache per folder list, so switching back and forth costs nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from mig_conformance.common.errors import InputError
from mig_conformance.gpus.catalog import (
    Catalog,
    load_catalog,
    set_user_catalog_dirs,
    user_catalog_dirs,
    user_gpu_dir,
)
from mig_conformance.gpus.instance_types import InstanceType, load_instance_types, user_instance_types_file

#: how a folder list is written in the MIG_CATALOG environment variable and the `mig_catalog` ini key
SEPARATORS = (",", "\n")


def check_folder(folder: str | Path, origin: str = "--catalog") -> str:
    """The absolute path of a user catalog folder; InputError when it is not one."""
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise InputError(f"{origin}: {folder}: no such folder (a user catalog is a folder with gpus/*.yaml and/or "
                         "instance-types.yaml)")
    gpus = Path(user_gpu_dir(str(path)))
    if gpus.exists() and not gpus.is_dir():
        raise InputError(f"{origin}: {gpus} is a file; a user catalog keeps its GPU entries in a gpus/ folder")
    if not (gpus.is_dir() or user_instance_types_file(str(path)).is_file()):
        raise InputError(f"{origin}: {folder} is not a user catalog: it has neither gpus/*.yaml nor "
                         "instance-types.yaml (docs/catalog.md#user-catalogs)")
    return str(path.resolve())


def load_user_catalogs(folders: Iterable[str | Path], origin: str = "--catalog") -> tuple[Catalog,
                                                                                             dict[str, InstanceType]]:
    """Everything the folders make, loaded into new objects (nothing is put in effect): errors name file, line and
    key."""
    dirs = tuple(dict.fromkeys(check_folder(f, origin) for f in folders))
    return load_catalog(user_dirs=dirs), load_instance_types(user_dirs=dirs)


def activate(folders: Iterable[str | Path], origin: str = "--catalog") -> tuple[str, ...]:
    """Put these user catalog folders in effect once they all load; returns the folders in effect before."""
    dirs = tuple(dict.fromkeys(check_folder(f, origin) for f in folders))
    load_catalog(user_dirs=dirs)
    load_instance_types(user_dirs=dirs)
    return set_user_catalog_dirs(dirs)


@contextlib.contextmanager
def use_user_catalogs(folders: Iterable[str | Path], origin: str = "--catalog") -> Iterator[tuple[str, ...]]:
    """The user catalog folders in effect for the `with` body (nothing changes when they fail to load)."""
    previous = activate(folders, origin)
    try:
        yield user_catalog_dirs()
    finally:
        set_user_catalog_dirs(previous)


def split_folders(raw: str) -> list[str]:
    """Folders from an env value or ini lines: comma- or newline-separated, blanks dropped."""
    text = raw
    for sep in SEPARATORS[1:]:
        text = text.replace(sep, SEPARATORS[0])
    return [p.strip() for p in text.split(SEPARATORS[0]) if p.strip()]
