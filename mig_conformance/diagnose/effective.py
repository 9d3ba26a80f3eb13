"""Which mig-parted config a node's mig-manager uses: the ONE place that decides it (the diagnoses ask here).

Order (mig-parted cmd/nvidia-mig-manager/main.go setupMigConfig, v0.14.0+; gpu-operator
controllers/object_controls.go hasCustomConfig, v26.3.0+; docs/reference and versions.RULES
"mig-manager.generated-config", "gpu-operator.custom-config-name"):
1. a custom ConfigMap named by ClusterPolicy spec.migManager.config.name (CONFIG_FILE);
2. with a mig-manager that generates (v0.14.0+) and no custom name: `<node>-mig-config`, which it writes per node;
3. else, or while that map does not exist (generation failed: R535), the static `default-mig-parted-config`.
Before GPU Operator v26.3.0 an empty name meant the static map, which mig-manager read directly.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from mig_conformance.diagnose.snapshot import Obj, Snapshot
from mig_conformance.k8s.stack import StackProfile
from mig_conformance.mig.spec import Spec, parse_installed_config

STATIC = "default-mig-parted-config"
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
    return f"{node}-mig-config"


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


def effective_config(snapshot: Snapshot, node: str, stack: StackProfile) -> EffectiveConfig:
    """The config `node`'s mig-manager uses, per the order in the module doc."""
    custom = custom_name(snapshot)
    if custom is not None:
        cm = snapshot.config_map(custom)
        why = f"ClusterPolicy spec.migManager.config.name={custom}"
        return _parsed(cm, why) if cm is not None else EffectiveConfig(None, f"{why}, which does not exist", None)
    generates = stack.generates_per_node_config()
    if generates.value is not False and stack.custom_config_needs_name().value is not False:
        cm = snapshot.config_map(generated_name(node))
        if cm is not None:
            return _parsed(cm, f"generated per node ({generates.why})")
    cm = snapshot.config_map(STATIC)
    if cm is None:
        return EffectiveConfig(None, f"no custom name, no {generated_name(node)} and no {STATIC}", None)
    return _parsed(cm, f"the static fallback {STATIC}")
