"""The pinned versions of the local control plane and the Go tools modules its binaries are built from.

They ship inside the package (mig_conformance/cluster/local/tools/), so that an installed wheel can build the
binaries without a checkout: `versions.env` sets the three versions (the only place they are set) and
`kubernetes/`, `etcd/`, `kwok/` each hold a go.mod + go.sum that pin every module the build downloads.
See docs/local-control-plane.md.
"""

from __future__ import annotations

import hashlib
import platform
import re
from dataclasses import dataclass
from pathlib import Path

from mig_conformance.common.errors import MigConformanceError

TOOLS = Path(__file__).resolve().with_name("tools")
VERSIONS_FILE = "versions.env"
TOOL_MODULES = ("kubernetes", "etcd", "kwok")
_VERSION = re.compile(r"^v\d+\.\d+\.\d+$")


class PinsError(MigConformanceError):
    """versions.env or a tools module is missing or malformed."""


@dataclass(frozen=True)
class Pins:
    kubernetes: str
    etcd: str
    kwok: str

    @property
    def staging(self) -> str:
        """The version of Kubernetes' staging modules (k8s.io/api ...) that match: v1.37.2 -> v0.37.2."""
        return "v0." + self.kubernetes.removeprefix("v1.")

    @property
    def minor(self) -> str:
        return self.kubernetes.split(".")[1]

    def describe(self) -> str:
        return f"Kubernetes {self.kubernetes}, etcd {self.etcd}, kwok {self.kwok}"


def in_checkout(tools: Path = TOOLS) -> bool:
    """Is the package a checkout's (editable install) rather than an installed wheel's?"""
    root = tools.parents[3]
    return (root / "setup.py").is_file() and (root / "scripts" / "build-k8s-binaries").is_file()


def read_pins(tools: Path = TOOLS) -> Pins:
    """The versions of tools/versions.env (shell syntax: KEY=value lines, # comments)."""
    path = tools / VERSIONS_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PinsError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise PinsError(f"{path}:{number}: not KEY=value: {line!r}")
        values[key.strip()] = value.strip()
    out = []
    for key in ("KUBERNETES_VERSION", "ETCD_VERSION", "KWOK_VERSION"):
        value = values.get(key, "")
        if not _VERSION.match(value):
            raise PinsError(f"{path}: {key}={value!r} is not vX.Y.Z")
        out.append(value)
    return Pins(*out)


def _requires(gomod: str, module: str, version: str) -> bool:
    """Does a go.mod require `module` at exactly `version` (in a require block or a require line)?"""
    pattern = rf"^\s*(require\s+)?{re.escape(module)}\s+{re.escape(version)}(\s|$)"
    return re.search(pattern, gomod, re.M) is not None


def tools_match(pins: Pins, tools: Path = TOOLS) -> bool:
    """Do the tools modules pin the versions of versions.env (and have their go.sum)?"""
    try:
        k8s = (tools / "kubernetes" / "go.mod").read_text(encoding="utf-8")
        etcd = (tools / "etcd" / "go.mod").read_text(encoding="utf-8")
        kwok = (tools / "kwok" / "go.mod").read_text(encoding="utf-8")
    except OSError:
        return False
    staging = re.search(rf"k8s\.io/api\s+=>\s+k8s\.io/api\s+{re.escape(pins.staging)}(\s|$)", k8s) is not None
    return (_requires(k8s, "k8s.io/kubernetes", pins.kubernetes) and staging
            and _requires(etcd, "go.etcd.io/etcd/server/v3", pins.etcd)
            and _requires(kwok, "sigs.k8s.io/kwok", pins.kwok)
            and all((tools / name / "go.sum").is_file() for name in TOOL_MODULES))


def go_directive(tools: Path = TOOLS) -> str:
    """The highest `go` line of the tools modules: the Go version the build needs (fetched by Go >= 1.21)."""
    found = []
    for name in TOOL_MODULES:
        try:
            text = (tools / name / "go.mod").read_text(encoding="utf-8")
        except OSError:
            continue
        match = re.search(r"^go\s+(\d+(?:\.\d+)*)", text, re.M)
        if match:
            found.append(match.group(1))
    return max(found, key=version_tuple, default="1.21")


def version_tuple(version: str) -> tuple[int, ...]:
    """'1.26.0' -> (1, 26, 0); 'go1.22rc1' -> (1, 22): enough to compare Go versions."""
    return tuple(int(part) for part in re.findall(r"\d+", version.removeprefix("go").split("-")[0])[:3])


def stamp_text(pins: Pins, tools: Path = TOOLS) -> str:
    """What a complete build was made from: platform, versions and the sha256 of every go.mod/go.sum (the format
    scripts/build-k8s-binaries wrote, so that caches it built stay valid)."""
    lines = ["stamp-format=1", f"platform={platform.system()}/{platform.machine()}",
             f"KUBERNETES_VERSION={pins.kubernetes}", f"ETCD_VERSION={pins.etcd}", f"KWOK_VERSION={pins.kwok}"]
    for name in TOOL_MODULES:
        for file in ("go.mod", "go.sum"):
            try:
                digest = hashlib.sha256((tools / name / file).read_bytes()).hexdigest()
            except OSError:
                digest = "missing"
            lines.append(f"{digest}  {name}/{file}")
    return "\n".join(lines) + "\n"
