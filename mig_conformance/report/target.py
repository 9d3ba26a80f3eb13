"""TARGET.yaml: what was validated (instance types, GPU models, versions) and with what (kit, command line)."""

from __future__ import annotations

import platform
from collections.abc import Mapping
from importlib import metadata
from typing import Any

import yaml

from mig_conformance.common.scrub import scrub
from mig_conformance.report.model import RunSummary, canonical

SCHEMA = "mig-conformance/target/v1"
# Canonical component name -> names a backend's describe() may use for it. A leaf counts when its key names
# a version (`driver_version`, `gpuOperatorVersion`, `{mig_manager: {version: X}}`) or is the canonical name
# itself (`driver: "570.86.15"`); matching ignores case, dashes and underscores.
VERSION_KEYS: dict[str, tuple[str, ...]] = {
    "kubernetes": ("kubernetes", "k8s", "server", "kube_apiserver"),
    "platform": ("platform", "eks_platform"),
    "driver": ("driver", "nvidia_driver", "gpu_driver"),
    "cuda": ("cuda", "cuda_driver"),
    "gpu_operator": ("gpu_operator", "operator"),
    "device_plugin": ("device_plugin", "k8s_device_plugin"),
    "mig_manager": ("mig_manager", "k8s_mig_manager"),
    "gpu_feature_discovery": ("gpu_feature_discovery", "gfd"),
    "mig_parted": ("mig_parted",),
    "dra_driver": ("dra_driver", "k8s_dra_driver_gpu"),
}


def _squash(key: str) -> str:
    return "".join(c for c in key.lower() if c.isalnum())


def _leaves(value: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    if isinstance(value, Mapping):
        return [leaf for k in sorted(value, key=str) for leaf in _leaves(value[k], (*path, str(k)))]
    return [(path, value)]


def _component(path: tuple[str, ...]) -> tuple[str, bool]:
    """(squashed component name, whether the key explicitly names a version) of a leaf's path."""
    last = _squash(path[-1])
    if last in ("version", "gitversion") and len(path) > 1:
        return _squash(path[-2]), True
    if last.endswith("version") and last != "version":
        return last.removesuffix("version"), True
    return last, False


def find_versions(describe: Mapping[str, Any]) -> dict[str, str]:
    """Component versions of a describe() dict under canonical names (only those found): its `versions` mapping
    first (what the backend knows for sure; lists are joined), then version-like keys anywhere in it."""
    found: dict[str, str] = {}
    given = describe.get("versions")
    if isinstance(given, Mapping):
        for name, value in given.items():
            if isinstance(value, list):
                value = ", ".join(str(v) for v in value if v not in (None, ""))
            if value not in (None, ""):
                found[str(name)] = str(value)
    leaves = [(p, v) for p, v in _leaves(describe)
              if p and isinstance(v, (str, int, float)) and not isinstance(v, bool) and v != ""]
    for name, aliases in VERSION_KEYS.items():
        if name in found:
            continue
        wanted = {_squash(a) for a in aliases}
        for path, value in leaves:
            component, explicit = _component(path)
            if (explicit and component in wanted) or (not explicit and component == _squash(name)):
                found[name] = str(value)
                break
    return found


def _package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def build_target(summary: RunSummary, describe: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The TARGET.yaml document; `describe` is the backend's Cluster.describe() dict (scrubbed here)."""
    cluster = scrub(canonical(dict(describe or {})))
    instance_types = sorted(set(summary.instance_types) | set(_strings(cluster.get("instance_types"))))
    gpu_models = sorted(set(summary.gpu_models) | set(_strings(cluster.get("gpu_models"))))
    return {
        "schema": SCHEMA,
        "run_id": summary.run_id,
        "date": summary.started,
        "verdict": summary.verdict,
        "instance_types": instance_types,
        "gpu_models": gpu_models,
        "nodes": [{"node": n.node, "instance_type": n.instance_type, "gpu_model": n.gpu_model}
                  for n in sorted(summary.nodes, key=lambda n: n.node)],
        "versions": find_versions(cluster),
        "stack": cluster.get("stack"),  # the stack profile: each version with where it came from (k8s/stack.py)
        "cluster": {"name": summary.cluster, "backend": summary.backend, "facts": cluster},
        "kit": {"name": "mig-conformance", "version": summary.kit_version, "command_line": summary.command_line},
        "python": platform.python_version(),
        "pytest": _package_version("pytest"),
        "os": platform.platform(terse=True),
        "catalog": _catalog(summary),
    }


def _catalog(summary: RunSummary) -> list[dict[str, Any]]:
    """Where each instance type and GPU entry of the run came from (shipped or user file) and how far its rows are
    observed (report/signoff.py `catalog_row`)."""
    return [row for entry in summary.signoff for row in entry.get("catalog", []) if isinstance(row, dict)]


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def target_yaml(doc: Mapping[str, Any]) -> str:
    """YAML text of a TARGET document, keys in document order."""
    header = "# What this run validated and with what; written by mig-conformance.\n"
    return header + yaml.safe_dump(dict(doc), sort_keys=False, allow_unicode=True, default_flow_style=False,
                                   width=120)
