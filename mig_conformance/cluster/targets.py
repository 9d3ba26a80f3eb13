"""What `--mig-cluster` names: a backend spec (`sim:SPEC`, `eks:CLUSTER@REGION`, ...) or a clusters-file entry.

This module is the one schema of targets: the forms of a spec string and, per backend, the keys a clusters-file
entry may set (each is an option that backend's opener accepts; `namespace` is the GPU Operator's namespace;
`stack` the GPU stack's versions, `COMPONENT=VERSION,...` or a mapping, which the session resolves).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mig_conformance.common.errors import InputError, Location, Problem
from mig_conformance.common.fields import MappingReader
from mig_conformance.common.yaml_source import YamlDocument, load_yaml_file
from mig_conformance.k8s.stack import parse_choices

FORMS = {"sim": "sim[:SPEC]", "local": "local[:SPEC]", "kind": "kind[:NAME]", "kubeconfig": "kubeconfig:CONTEXT",
         "eks": "eks:CLUSTER@REGION"}
KINDS = tuple(FORMS)
_EKS_NAME = re.compile(r"^[0-9A-Za-z][A-Za-z0-9\-_]*$")  # EKS CreateCluster name pattern
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_KIND_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")

NUMBER = (int, float)
COMMON_KEYS: dict[str, type | tuple[type, ...]] = {"backend": str, "description": str, "node_selector": dict,
                                                  "stack": (str, dict)}
_SIMULATED: dict[str, type | tuple[type, ...]] = {"nodes": str, "strategy": str, "mig_manager_delay": NUMBER,
                                                  "with_reboot": bool, "gpu_reset_works": bool, "gpu_taint": bool,
                                                  "default_config": str, "gpu_allocation": str, "dynamic_mig": bool}
_KUBE: dict[str, type | tuple[type, ...]] = {"config_map": str, "namespace": str, "pod_image": str}
#: Per backend: the keys a clusters-file entry may set, with their types.
BACKEND_KEYS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "sim": {**_SIMULATED, "config_map": str, "driver": str, "device_plugin_version": str,
            "bottlerocket_settings": str, "diagnose_faults": (dict, str)},
    "local": {**_SIMULATED, "agents": bool, "timeout": NUMBER, "kubeconfig": str, "bottlerocket_settings": str,
              "diagnose_faults": (dict, str)},
    "kind": {"name": str, "config": str, "keep": bool, "kind_bin": str, "kubectl_bin": str, "nodes": str,
             "image": str, "agents": bool, **_KUBE},
    "kubeconfig": {"context": str, "kubeconfig": str, **_KUBE},
    "eks": {"cluster": str, "region": str, "profile": str, "role_arn": str, "kubeconfig_context": str,
            "kubeconfig": str, **_KUBE},
}
#: Per backend: keyword options the kit itself passes to the backend's opener besides the clusters-file keys.
KIT_OPTIONS: dict[str, frozenset[str]] = {
    "sim": frozenset({"name", "journal", "config_text", "fleet_progress", "stack"}),
    "local": frozenset({"name", "journal", "config_text", "state_dir", "stack"}),
    "kind": frozenset({"journal", "operator_namespace", "attach_only"}),
    "kubeconfig": frozenset({"journal", "operator_namespace"}),
    "eks": frozenset({"journal", "operator_namespace", "run_id"}),
}
#: Clusters-file keys the session uses (not handed to the backend as they are): the GPU Operator's `namespace`
#: reaches kube backends as `operator_namespace`.
SESSION_KEYS = frozenset({"backend", "description", "node_selector", "namespace", "stack"})
#: The clusters-file key that is the target's argument (the `SPEC` of `sim:SPEC`), not an opener option.
ARG_KEYS = {"sim": "nodes", "local": "nodes"}
REQUIRED = {"eks": ("cluster", "region"), "kubeconfig": ("context",), "kind": ("name",)}
#: File options; relative ones are taken relative to the clusters file (binaries only when they contain a '/').
PATH_KEYS = ("kubeconfig", "config", "bottlerocket_settings")
BINARY_KEYS = ("kind_bin", "kubectl_bin")


def backend_options(kind: str) -> frozenset[str]:
    """Every keyword option the `kind` backend's opener accepts."""
    return frozenset(BACKEND_KEYS[kind]) - SESSION_KEYS - {ARG_KEYS.get(kind)} | KIT_OPTIONS[kind]


def check_backend_options(kind: str, options: Collection[str]) -> None:
    """A backend's opener: ClusterError naming the options it does not know, and those it does."""
    allowed = backend_options(kind)
    unknown = sorted(set(options) - allowed)
    if unknown:
        from mig_conformance.cluster.base import ClusterError

        raise ClusterError(f"{kind} backend: unknown option(s) {', '.join(unknown)} "
                           f"(allowed: {', '.join(sorted(allowed))})")


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


def forms() -> str:
    return ", ".join(FORMS.values())


def eks_problem(cluster: str, region: str) -> str | None:
    """What is wrong with an EKS cluster name and region, or None."""
    if not _EKS_NAME.match(cluster) or len(cluster) > 100:
        return (f"'{cluster}' is not a valid EKS cluster name (letters, digits, '-' and '_', starting with a letter "
                "or digit, at most 100)")
    if not _REGION.match(region):
        return f"'{region}' is not an AWS region like us-west-2"
    return None


def kind_name_problem(name: str) -> str | None:
    if not _KIND_NAME.match(name):
        return f"kind cluster name '{name}' must be lower-case letters, digits, '-' and '.'"
    return None


def parse_spec(value: str) -> Target | None:
    """`sim`, `sim:p5.48xlarge*2`, `local:SPEC`, `kind:NAME`, `kubeconfig:CONTEXT`, `eks:CLUSTER@REGION`; None for
    what is no backend spec (a clusters-file name); InputError says what is malformed and shows the forms."""
    text = value.strip()
    if not text:
        raise InputError(f"empty cluster target; expected one of: {forms()}")
    kind, colon, arg = text.partition(":")
    if kind not in KINDS:
        return None
    arg = arg.strip()
    if colon and not arg:
        raise InputError(f"cluster target '{text}': nothing after ':'; expected {FORMS[kind]}")
    if kind == "eks":
        cluster, at, region = arg.partition("@")
        if not (cluster and at and region):
            raise InputError(f"cluster target '{text}': expected eks:CLUSTER@REGION, e.g. eks:prod-gpu@us-west-2")
        problem = eks_problem(cluster, region)
        if problem:
            raise InputError(f"cluster target '{text}': {problem}")
        return Target(text, kind, arg, {"cluster": cluster, "region": region})
    if kind == "kubeconfig" and not arg:
        raise InputError(f"cluster target '{text}': expected kubeconfig:CONTEXT, e.g. kubeconfig:my-context")
    if kind == "kind" and arg and (problem := kind_name_problem(arg)):
        raise InputError(f"cluster target '{text}': {problem}")
    value = text
    options: dict[str, Any] = {}
    if kind in ("sim", "local") and arg:
        options["nodes"] = arg
    if kind == "kind":
        options["name"] = arg or "mig-conformance"
    if kind == "kubeconfig":
        options["context"] = arg
    return Target(value, kind, arg, options)


def reserved_name_problem(doc: YamlDocument) -> Problem | None:
    """The first clusters-file entry named like a built-in target (`sim`, `local`, `kind`, `kubeconfig`, `eks`, or
    `sim:...`): `--mig-cluster` takes such a name as the built-in backend, so the entry could never be selected."""
    for name in doc.data if isinstance(doc.data, dict) else ():
        kind = str(name).strip().partition(":")[0]
        if kind in KINDS:
            return Problem(f"'{name}' is a reserved name: --mig-cluster={str(name).strip()} always means the built-in "
                           f"backend ({FORMS[kind]}), so this entry could never be selected; rename it (e.g. "
                           f"'my-{kind}')", Location(doc.file, doc.key_line(name), str(name), subject="cluster"))
    return None


def load_clusters_file(path: Path) -> dict[str, Target]:
    """Named targets from a clusters file; errors name the file, line and key."""
    doc = load_yaml_file(path)
    if doc.data is None:
        return {}
    if not isinstance(doc.data, dict):
        raise InputError(Problem("a clusters file maps names to cluster settings", Location(str(path), 1)))
    if (reserved := reserved_name_problem(doc)) is not None:
        raise InputError(reserved)
    targets = {}
    for name, entry in doc.data.items():
        r = MappingReader(doc, (name,), config=str(name), subject="cluster")
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
        if "stack" in options:  # COMPONENT=VERSION,... or a mapping (k8s/stack.py); the session resolves it
            try:
                parse_choices(options["stack"], "stack")
            except InputError as exc:
                raise r.fail(str(exc), "stack") from None
        selector = options.get("node_selector", {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in selector.items()):
            raise r.fail("node_selector must map label names to string values", "node_selector")
        if backend == "eks" and (problem := eks_problem(options["cluster"], options["region"])):
            raise r.fail(problem, "region" if "region" in problem else "cluster")
        if backend == "kind" and (problem := kind_name_problem(options["name"])):
            raise r.fail(problem, "name")
        _resolve_paths(options, path.parent)
        arg = options.get("nodes") or options.get("name") or options.get("context") or options.get("cluster", "")
        if backend == "kind":
            arg = options["name"]
        targets[str(name)] = Target(str(name), backend, str(arg), options, source=f"clusters file {path}")
    return targets


def _refuse_shadowing_entries(clusters_file: Path) -> None:
    """A built-in target was named: an entry of the clusters file named like one would be silently passed over, so it
    is refused here too. The file is not otherwise used by this run: anything else wrong with it is left to the runs
    that select one of its names."""
    if not clusters_file.is_file():
        return
    try:
        doc = load_yaml_file(clusters_file)
    except InputError:
        return
    if (reserved := reserved_name_problem(doc)) is not None:
        raise InputError(reserved)


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
    try:
        spec = parse_spec(value)
    except InputError:  # `eks` alone is malformed; an entry named so is the better explanation
        _refuse_shadowing_entries(clusters_file)
        raise
    if spec is not None:
        _refuse_shadowing_entries(clusters_file)
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
