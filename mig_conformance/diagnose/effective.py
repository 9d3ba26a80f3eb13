"""Which mig-parted config a node's mig-manager uses, read from a snapshot of the cluster's objects.

The decision is k8s/mig_config.py's `config_file_name` (the one place that knows the versions' rules: mig-parted
cmd/nvidia-mig-manager/main.go setupMigConfig, v0.14.0+; gpu-operator controllers/object_controls.go
hasCustomConfig, v26.3.0+; versions.RULES "mig-manager.generated-config", "gpu-operator.custom-config-name"):
1. the ConfigMap mig-manager is given as CONFIG_FILE (a custom spec.migManager.config.name, or the static map on
   operators before v26.3.0 / mig-managers before v0.14.0);
2. otherwise `<node>-mig-config`, which it writes per node;
3. while that map does not exist (generation failed: R535), the static `default-mig-parted-config`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from mig_conformance.diagnose.snapshot import Obj, Snapshot
from mig_conformance.k8s import mig_config as MC
from mig_conformance.k8s.stack import StackProfile
from mig_conformance.mig.spec import Spec, parse_installed_config

STATIC = MC.STATIC_CONFIG_MAP
CONFIG_KEY = "config.yaml"


@dataclass(frozen=True)
class EffectiveConfig:
    """The ConfigMap a node's mig-manager reads (None when none exists), how it was chosen, and its parsed file."""

    config_map: str | None
    why: str
    spec: Spec | None

    @property
    def names(self) -> list[str]:
        return sorted(self.spec.configs) if self.spec is not None else []


def generated_name(node: str) -> str:
    return MC.node_config_map(node)


def custom_name(snapshot: Snapshot) -> str | None:
    policy = snapshot.cluster_policy or {}
    config = ((policy.get("spec") or {}).get("migManager") or {}).get("config") or {}
    name = config.get("name")
    return str(name) if name else None


@functools.lru_cache(maxsize=64)
def _parse(name: str, text: str) -> Spec:
    """One parse per ConfigMap text (every node of a fleet reads the same static map)."""
    return parse_installed_config(text, f"ConfigMap {name}")


def _parsed(cm: Obj, why: str) -> EffectiveConfig:
    name = str(cm["metadata"]["name"])
    text = (cm.get("data") or {}).get(CONFIG_KEY)
    if not isinstance(text, str):
        return EffectiveConfig(name, f"{why}; it has no key {CONFIG_KEY}", None)
    return EffectiveConfig(name, why, _parse(name, text))


def choose_config_map(policy: str | None, node: str, stack: StackProfile,
                      find: Callable[[str], Obj | None]) -> tuple[str, Obj | None, str]:
    """(ConfigMap name, the object or None when it does not exist, why) for `node`, per the order in the module doc:
    `policy` is spec.migManager.config.name, `find(name)` looks a ConfigMap up. Fault injection uses it too."""
    given = MC.config_file_name(stack, policy)
    if given is not None:
        why = f"ClusterPolicy spec.migManager.config.name={policy}" if policy else \
            f"the static {given} ({stack.custom_config_needs_name().why})"
        return given, find(given), why
    cm = find(generated_name(node))
    if cm is not None:
        return generated_name(node), cm, f"generated per node ({stack.generates_per_node_config().why})"
    return STATIC, find(STATIC), f"the static fallback {STATIC} (no {generated_name(node)})"


def effective_config(snapshot: Snapshot, node: str, stack: StackProfile) -> EffectiveConfig:
    """The config `node`'s mig-manager uses, per the order in the module doc."""
    name, cm, why = choose_config_map(custom_name(snapshot), node, stack, snapshot.config_map)
    return _parsed(cm, why) if cm is not None else EffectiveConfig(None, f"{why}: {name} does not exist", None)
