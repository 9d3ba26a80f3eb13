"""Where the binaries of a local Kubernetes control plane are.

The local backend runs etcd, kube-apiserver, kube-scheduler, kube-controller-manager and kwok as
processes (kubectl is for users and tests). `mig-conformance cluster install` builds them into the user's cache
folder, `scripts/build-k8s-binaries` into a checkout's `.cache/k8s/bin`; prebuilt ones can be used instead
(docs/local-control-plane.md).

Each binary is looked up on its own, first hit wins:

1. the folder `$MIG_K8S_ASSETS`
2. the folder `$KUBEBUILDER_ASSETS` (controller-runtime envtest's variable)
3. `.cache/k8s/bin` of this repository checkout, then of the current directory
4. `$XDG_CACHE_HOME/mig-conformance/k8s/<pinned Kubernetes version>/bin` (`cluster install`; default
   `~/.cache/...`)
5. `PATH`
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from mig_conformance.cluster.base import ClusterError
from mig_conformance.cluster.local.pins import PinsError, read_pins
from mig_conformance.cluster.local.toolcache import CacheLayout, user_cache_root

BINARIES: tuple[str, ...] = (
    "etcd",
    "kube-apiserver",
    "kube-scheduler",
    "kube-controller-manager",
    "kwok",
    "kubectl",
)
ENV_VARS: tuple[str, ...] = ("MIG_K8S_ASSETS", "KUBEBUILDER_ASSETS")
BUILD_SCRIPT = "scripts/build-k8s-binaries"
CACHE_BIN = Path(".cache", "k8s", "bin")


def _repo_root() -> Path | None:
    """The checkout this module runs from (editable install), or None for an installed wheel."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / BUILD_SCRIPT).is_file() else None


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def search_folders(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> list[tuple[str, Path]]:
    """(where it came from, folder) in search order, without PATH; unset variables are left out."""
    env = os.environ if env is None else env
    folders: list[tuple[str, Path]] = []
    for var in ENV_VARS:
        value = env.get(var, "")
        if value:
            folders.append((var, Path(value).expanduser()))
    roots = [r for r in (_repo_root(), Path.cwd() if cwd is None else cwd) if r is not None]
    seen: set[Path] = set()
    for root in roots:
        folder = (root / CACHE_BIN).absolute()
        if folder not in seen:
            seen.add(folder)
            folders.append(("cache", folder))
    installed = installed_bin(env)
    if installed is not None and installed not in seen:
        folders.append(("cache", installed))
    return folders


def installed_bin(env: Mapping[str, str] | None = None) -> Path | None:
    """Where `mig-conformance cluster install` puts the binaries of the pinned version (None: unreadable pins)."""
    try:
        version = read_pins().kubernetes
    except PinsError:
        return None
    return CacheLayout(user_cache_root(env), version).bin_dir


def find_assets(
    names: Iterable[str] = BINARIES,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> dict[str, Path]:
    """Absolute paths of the control-plane binaries `names` (default: all six).

    `env` defaults to os.environ (its PATH is searched last) and `cwd` to the current directory.
    Raises ClusterError naming every binary that was not found, where it looked, and how to build.
    """
    env = os.environ if env is None else env
    folders = search_folders(env, cwd)
    found: dict[str, Path] = {}
    missing: list[str] = []
    not_executable: list[Path] = []
    for name in names:
        for _, folder in folders:
            candidate = folder / name
            if _executable(candidate):
                found[name] = candidate.absolute()
                break
            if candidate.is_file():
                not_executable.append(candidate)
        else:
            on_path = shutil.which(name, path=env.get("PATH", ""))
            if on_path:
                found[name] = Path(on_path).absolute()
            else:
                missing.append(name)
    if missing:
        raise ClusterError(_missing_message(missing, folders, env, not_executable))
    return found


def _missing_message(
    missing: list[str], folders: list[tuple[str, Path]], env: Mapping[str, str], not_executable: list[Path]
) -> str:
    searched = [f"{var}={env[var]}" if env.get(var) else f"{var} unset" for var in ENV_VARS]
    searched += [str(folder) for origin, folder in folders if origin == "cache"]
    searched.append("PATH")
    lines = [  # what to do on the first line; where the kit looked below it
        f"local control plane binaries not found: {', '.join(missing)}; build them once with: {install_command()} "
        "(needs Go >= 1.21; 6-15 minutes on 2 idle cores), or point MIG_K8S_ASSETS at a folder of prebuilt ones",
        f"  searched: {'; '.join(searched)}",
    ]
    if not_executable:
        lines.append(f"  found but not executable: {', '.join(map(str, not_executable))}")
    return "\n".join(lines)


def install_command() -> str:
    """How to run `mig-conformance cluster install` from here: by name when this interpreter's script is what
    PATH finds, else by its path (a venv that is not activated)."""
    script = Path(sys.executable).parent / "mig-conformance"
    on_path = shutil.which("mig-conformance")
    if script.is_file() and (on_path is None or Path(on_path).resolve() != script.resolve()):
        return f"{script} cluster install"
    return "mig-conformance cluster install"
