"""Which mig-parted file mig-manager uses on a node: its *effective config* (generated, custom or static).

Keyed by version (`StackProfile`, rules in `k8s/versions.py`):

* GPU Operator >= v26.3.0 (`custom_config_needs_name`): mig-manager gets a custom file (`CONFIG_FILE`) only when
  the ClusterPolicy's `spec.migManager.config.name` is set; an empty name means "generate". Before, an empty name
  meant `default-mig-parted-config`, always passed as `CONFIG_FILE` (NVIDIA/gpu-operator
  `controllers/object_controls.go` @v26.3.0);
* mig-manager >= v0.14.0 (`generates_per_node_config`) without `CONFIG_FILE` generates the config from the node's
  GPUs and stores it in `<node>-mig-config`; when discovery finds no profiles (R535 drivers while MIG is disabled)
  it falls back to the static `default-mig-parted-config` (`DEFAULT_CONFIG_FILE`). Older mig-managers read the static
  map (NVIDIA/mig-parted `cmd/nvidia-mig-manager/main.go` setupMigConfig @bd7160f4;
  docs/reference/mig-parted.md#generated-config).

On real clusters the kit reads what is there instead (`cluster/kube.py`): the named ConfigMap, else the node's
`<node>-mig-config`, else the static map.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mig_conformance.k8s.stack import StackProfile
from mig_conformance.mig import generate as G
from mig_conformance.mig.default_config import CONFIG_MAP, default_config_text
from mig_conformance.mig.spec import Spec, parse_installed_config

GENERATED, CUSTOM, STATIC, FALLBACK = "generated", "custom", "static", "fallback"
#: labels mig-manager puts on `<node>-mig-config` (cmd/nvidia-mig-manager/main.go createNodeConfigMap)
COMPONENT_LABEL, NODE_NAME_LABEL = "app.kubernetes.io/component", "nvidia.com/node-name"
COMPONENT = "nvidia-mig-manager"
STATIC_CONFIG_MAP = CONFIG_MAP  #: the GPU Operator's static default-mig-parted-config


def node_config_map(node: str) -> str:
    """`<node>-mig-config`, where mig-manager >= v0.14.0 stores the config it generated."""
    return f"{node}-mig-config"


def node_config_labels(node: str) -> dict[str, str]:
    return {COMPONENT_LABEL: COMPONENT, NODE_NAME_LABEL: node}


@dataclass(frozen=True)
class EffectiveConfig:
    """The file mig-manager reads on one node: how it came to be, the ConfigMap that holds it, its text, and why."""

    kind: str  # generated | custom | static | fallback
    config_map: str
    text: str
    why: str

    @property
    def spec(self) -> Spec:
        """Parsed once per text: equal nodes share one Spec (the command cache keys on its identity), so a generated
        file is named without its node."""
        where = "ConfigMap <node>-mig-config" if self.kind == GENERATED else f"ConfigMap {self.config_map}"
        return _parse(self.text, where)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "config_map": self.config_map, "why": self.why}

    def line(self) -> str:
        return f"{self.kind} config from ConfigMap {self.config_map} ({self.why})"


@functools.lru_cache(maxsize=256)
def _parse(text: str, where: str) -> Spec:
    return parse_installed_config(text, where)


@functools.lru_cache(maxsize=64)
def config_file_name(stack: StackProfile, policy_name: str | None) -> str | None:
    """The ConfigMap mig-manager is given as CONFIG_FILE, or None when it generates its own config.

    An empty `spec.migManager.config.name` is `default-mig-parted-config` before GPU Operator v26.3.0; a
    mig-manager before v0.14.0 cannot generate and reads the static map."""
    name = policy_name or None
    if name is None and stack.custom_config_needs_name().value is False:
        name = CONFIG_MAP
    if name is None and stack.generates_per_node_config().value is False:
        name = CONFIG_MAP
    return name


def effective_config(node: str, stack: StackProfile, policy_name: str | None,
                     read_config_map: Callable[[str], str | None],
                     discover: Callable[[], G.Configs]) -> EffectiveConfig:
    """What mig-manager on `node` reads. `read_config_map(name)` gives a ConfigMap's config.yaml (None: absent);
    `discover()` the generated configs (raises NoProfilesDiscovered / NoMigCapableDevices)."""
    name = config_file_name(stack, policy_name)
    if name is not None:
        text = read_config_map(name)
        kind = STATIC if name == CONFIG_MAP else CUSTOM
        why = (f"spec.migManager.config.name={policy_name}" if policy_name else
               f"{stack.custom_config_needs_name().why}; {stack.generates_per_node_config().why}")
        return EffectiveConfig(kind, name, default_config_text() if text is None and kind == STATIC else text or "",
                               why)
    try:
        configs = discover()
    except G.NoProfilesDiscovered as exc:
        text = read_config_map(CONFIG_MAP)
        return EffectiveConfig(FALLBACK, CONFIG_MAP, default_config_text() if text is None else text,
                               f"generation failed ({exc}): DEFAULT_CONFIG_FILE")
    return EffectiveConfig(GENERATED, node_config_map(node), _node_file(configs), _generated_why(stack))


@functools.lru_cache(maxsize=64)
def _generated_why(stack: StackProfile) -> str:
    return f"{stack.generates_per_node_config().why}; no spec.migManager.config.name"


def _node_file(configs: G.Configs) -> str:
    """The text, shared by equal nodes (the command cache hands them one Configs object)."""
    key = id(configs)
    hit = _TEXTS.get(key)
    if hit is None or hit[0] is not configs:
        hit = _TEXTS[key] = (configs, G.node_file(configs))
        if len(_TEXTS) > 256:
            _TEXTS.pop(next(iter(_TEXTS)))
    return hit[1]


_TEXTS: dict[int, tuple[G.Configs, str]] = {}


def offline_config(node: str, gpus: list[tuple[Any, str]], stack: StackProfile, driver: str | None = None,
                   legacy_driver: bool = False) -> EffectiveConfig:
    """The effective config of a node known only by its GPUs ((model, PCI ID) in PCI order), on a fresh cluster
    (no custom name, MIG disabled when mig-manager starts): what `expect` and `generate-config` assume.
    `legacy_driver`: an R535-style driver that lists no profiles while MIG is disabled (fallback to the static map);
    a node without MIG-capable GPUs runs no mig-manager, its "config" is the static map."""
    def discover() -> G.Configs:
        configs = G.discover(gpus)  # raises NoMigCapableDevices first, as discovery does
        if legacy_driver:
            raise G.NoProfilesDiscovered(f"driver {driver} lists no MIG profiles while MIG mode is disabled")
        return G.build(configs)

    try:
        return effective_config(node, stack, None, lambda name: None, discover)
    except G.NoMigCapableDevices as exc:
        return EffectiveConfig(STATIC, CONFIG_MAP, default_config_text(), f"{exc}: mig-manager does not run")
