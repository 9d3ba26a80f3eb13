"""Where the local control plane's binaries are built and cached.

One layout below a cache root, the same for both roots the kit uses:

- an installed kit: `$XDG_CACHE_HOME/mig-conformance` (default `~/.cache/mig-conformance`), by
  `mig-conformance cluster install`;
- a checkout: its `.cache/` folder, by `scripts/build-k8s-binaries` (the same command with `--cache-dir .cache`).

```
ROOT/k8s/<KUBERNETES_VERSION>/bin/    the binaries and kwok-stages.yaml
ROOT/k8s/<KUBERNETES_VERSION>/stamp   what a complete build was made from (pins.stamp_text)
ROOT/k8s/<KUBERNETES_VERSION>/src/    the tools modules, copied out of the package (built there)
ROOT/k8s/bin                          symlink to <KUBERNETES_VERSION>/bin
ROOT/go/mod, ROOT/go/build            GOMODCACHE and GOCACHE (writable: `rm -rf ROOT` works)
```
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

APP = "mig-conformance"


def user_cache_root(env: Mapping[str, str] | None = None) -> Path:
    """$XDG_CACHE_HOME/mig-conformance, or ~/.cache/mig-conformance (a relative XDG_CACHE_HOME is ignored, as the
    XDG base directory specification says)."""
    env = os.environ if env is None else env
    xdg = env.get("XDG_CACHE_HOME", "")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / APP
    home = env.get("HOME") or str(Path.home())
    return Path(home) / ".cache" / APP


@dataclass(frozen=True)
class CacheLayout:
    root: Path
    kubernetes_version: str

    @property
    def version_dir(self) -> Path:
        return self.root / "k8s" / self.kubernetes_version

    @property
    def bin_dir(self) -> Path:
        return self.version_dir / "bin"

    @property
    def stamp(self) -> Path:
        return self.version_dir / "stamp"

    @property
    def building(self) -> Path:
        """The stamp of a build in progress: binaries in bin/ were built from it (a killed build resumes)."""
        return self.version_dir / "building"

    @property
    def src(self) -> Path:
        return self.version_dir / "src"

    @property
    def link(self) -> Path:
        return self.root / "k8s" / "bin"

    @property
    def lock(self) -> Path:
        return self.root / "k8s" / ".lock"

    @property
    def gomodcache(self) -> Path:
        return self.root / "go" / "mod"

    @property
    def gocache(self) -> Path:
        return self.root / "go" / "build"
