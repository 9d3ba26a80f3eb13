"""What `--mig-cluster` names: a backend spec (`sim:SPEC`, `eks:CLUSTER@REGION`, ...) or a clusters-file entry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputError, Location, Problem
from .fields import MappingReader
from .yamlsource import load_yaml_file

KINDS = ("sim", "local", "kind", "kubeconfig", "eks")

COMMON_KEYS = {"backend": str, "description": str, "node_selector": dict, "config_map": str, "namespace": str}
BACKEND_KEYS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "sim": {"nodes": str, "strategy": str},
    "local": {"nodes": str, "strategy": str},
    "kind": {"name": str, "config": str, "keep": bool, "kind_bin": str, "kubectl_bin": str, "nodes": str,
             "image": str},
    "kubeconfig": {"context": str, "kubeconfig": str},
    "eks": {"cluster": str, "region": str, "profile": str, "role_arn": str, "kubeconfig_context": str},
}
REQUIRED = {"eks": ("cluster", "region"), "kubeconfig": ("context",), "kind": ("name",)}
#: File options; relative ones are taken relative to the clusters file (binaries only when they contain a '/').
PATH_KEYS = ("kubeconfig", "config")
BINARY_KEYS = ("kind_bin", "kubectl_bin")


@dataclass(frozen=True)
class Target:
    """A resolved cluster target."""

    name: str
    kind: str
    arg: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    source: str = "option"

    @property
    def node_selector(self) -> Mapping[str, str]:
        return self.options.get("node_selector") or {}


def parse_spec(value: str) -> Target | None:
    """`sim`, `sim:p5.48xlarge*2`, `local:SPEC`, `kind:NAME`, `kubeconfig:CONTEXT`, `eks:CLUSTER@REGION`."""
    kind, _, arg = value.partition(":")
    if kind not in KINDS:
        return None
    if kind == "eks":
        cluster, at, region = arg.partition("@")
        if not (cluster and at and region):
            raise InputError(f"--mig-cluster '{value}': expected eks:CLUSTER@REGION, e.g. eks:prod-gpu@us-west-2")
        return Target(value, kind, arg, {"cluster": cluster, "region": region})
    if kind == "kubeconfig" and not arg:
        raise InputError(f"--mig-cluster '{value}': expected kubeconfig:CONTEXT")
    options: dict[str, Any] = {}
    if kind in ("sim", "local") and arg:
        options["nodes"] = arg
    if kind == "kind":
        options["name"] = arg or "mig-conformance"
    if kind == "kubeconfig":
        options["context"] = arg
    return Target(value, kind, arg, options)


def load_clusters_file(path: Path) -> dict[str, Target]:
    """Named targets from a clusters file; errors name the file, line and key."""
    doc = load_yaml_file(path)
    if doc.data is None:
        return {}
    if not isinstance(doc.data, dict):
        raise InputError(Problem("a clusters file maps names to cluster settings", Location(str(path), 1)))
    targets = {}
    for name, entry in doc.data.items():
        r = MappingReader(doc, (name,), config=str(name))
        if not isinstance(entry, dict):
            raise r.fail(f"cluster '{name}' must be a mapping with at least 'backend'")
        backend = r.get("backend", str)
        if backend not in KINDS:
            raise r.fail(f"unknown backend '{backend}' (one of: {', '.join(KINDS)})", "backend")
        allowed = {**COMMON_KEYS, **BACKEND_KEYS[backend]}
        r.reject_unknown(set(allowed), f"unknown key '{{k}}' for backend {backend} "
                                       f"(allowed: {', '.join(sorted(allowed))})")
        options = {k: r.get(k, t) for k, t in allowed.items() if k in entry}
        for req in REQUIRED.get(backend, ()):
            if req not in options:
                raise r.fail(f"missing required key '{req}' for backend {backend}", req)
        selector = options.get("node_selector", {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in selector.items()):
            raise r.fail("node_selector must map label names to string values", "node_selector")
        _resolve_paths(options, path.parent)
        arg = options.get("nodes") or options.get("name") or options.get("context") or options.get("cluster", "")
        if backend == "kind":
            arg = options["name"]
        targets[str(name)] = Target(str(name), backend, str(arg), options, source=f"clusters file {path}")
    return targets


def _resolve_paths(options: dict[str, Any], base: Path) -> None:
    """Make relative file options absolute, relative to the clusters file's folder."""
    for key in (*PATH_KEYS, *BINARY_KEYS):
        value = options.get(key)
        if not value or (key in BINARY_KEYS and "/" not in value):
            continue
        p = Path(value).expanduser()
        options[key] = str(p if p.is_absolute() else (base / p).absolute())


def resolve_target(value: str, clusters_file: Path) -> Target:
    """Resolve `--mig-cluster`: backend spec first, then a name from the clusters file."""
    value = value.strip()
    if not value:
        raise InputError("--mig-cluster is empty")
    spec = parse_spec(value)
    if spec is not None:
        return spec
    if not clusters_file.exists():
        raise InputError(f"unknown --mig-cluster '{value}': not a backend ({', '.join(KINDS)}) and the clusters "
                         f"file {clusters_file} does not exist")
    targets = load_clusters_file(clusters_file)
    if value not in targets:
        known = ", ".join(sorted(targets)) or "none"
        raise InputError(f"unknown --mig-cluster '{value}': not a backend ({', '.join(KINDS)}) and not a name in "
                         f"{clusters_file} (names there: {known})")
    return targets[value]
