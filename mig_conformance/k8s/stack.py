"""The stack profile: the versions that decide what a GPU node does, each with where it came from.

On `sim` and `local` (and for `expect`) the versions are chosen: `--mig-stack`, its ini key and env variable, the
clusters file's `stack:` key, else the newest GA releases (`default()`); components the choice leaves open follow
the chosen GPU Operator release (`versions.OPERATOR_RELEASES`). On real clusters they are detected (see
`cluster/stack_detect.py`) and a choice overrides what was detected. `gpu_allocation` (device plugin, DRA driver or
Bottlerocket's own MIG manager) is detected only. The predicates (`generates_per_node_config`, ...) say what the
stack does, keyed by version, with the rule's source (`versions.RULES`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from mig_conformance.common.errors import InputError
from mig_conformance.k8s import versions as V

DEVICE_PLUGIN, DRA, BOTTLEROCKET = "device-plugin", "dra", "bottlerocket"
GPU_ALLOCATIONS = (DEVICE_PLUGIN, DRA, BOTTLEROCKET)
DEFAULT_DRIVER = V.CATALOG_DRIVER
DEFAULT_SOURCES = {
    "kubernetes": f"default: the Kubernetes release the local backend builds ({V.LOCAL_KUBERNETES})",
    "gpu_operator": f"default: the newest GA release ({V.NEWEST_OPERATOR})",
    "driver": f"default: {DEFAULT_DRIVER}, the driver of the catalog's captures and of the EKS accelerated AMIs' "
              "580 branch (docs/versions.md#the-default-driver)",
}


@dataclass(frozen=True)
class Sourced:
    """One version and where it came from: `default`, `option --mig-stack`, `clusters file F`, `detected from ...`,
    or `gpu-operator vX ships it (...)`."""

    value: str | None
    source: str

    def __str__(self) -> str:
        return f"{self.value or 'unknown'} ({self.source})"

    def as_dict(self) -> dict[str, str | None]:
        return {"value": self.value, "source": self.source}


@dataclass(frozen=True)
class Fact:
    """A yes/no answer about the stack with why (the version and the rule's source); None = unknown."""

    value: bool | None
    why: str

    def __bool__(self) -> bool:
        return bool(self.value)


@dataclass(frozen=True)
class StackProfile:
    """Kubernetes, GPU Operator, mig-manager, device plugin (= GFD) and driver versions, and how GPUs are allocated."""

    kubernetes: Sourced
    gpu_operator: Sourced
    mig_manager: Sourced
    device_plugin: Sourced
    driver: Sourced
    gpu_allocation: Sourced = Sourced(DEVICE_PLUGIN, "simulated")
    notes: tuple[str, ...] = field(default=())

    # ---- the versions the kit models with ---------------------------------------------------------------
    @property
    def device_plugin_model(self) -> str:
        """The device-plugin release whose behaviour the kit predicts: the profile's, else (unknown, or newer than
        any the kit models: see `notes`) the newest modelled."""
        version = self.device_plugin.value
        if version is None or V.device_plugin_modelled(version) is not None:
            return DEFAULT.device_plugin.value or V.DEVICE_PLUGIN_MODELLED[1]
        return version

    @property
    def driver_version(self) -> str | None:
        return self.driver.value

    def component(self, name: str) -> Sourced:
        value: Sourced = getattr(self, name)
        return value

    # ---- what the stack does (for the mig-manager and custom-config work of issue 11) -----------------------
    def _fact(self, component: str, rule_id: str, yes: str, no: str) -> Fact:
        rule = V.rule(rule_id)
        version = self.component(component).value
        if version is None:
            return Fact(None, f"{V.SPELLINGS[component]} version unknown ({self.component(component).source}); "
                              f"{yes} from {rule.since} ({rule.source})")
        applies = rule.applies(version)
        return Fact(applies, f"{V.SPELLINGS[component]} {version} {'>=' if applies else '<'} {rule.since}: "
                             f"{yes if applies else no} ({rule.source})")

    def generates_per_node_config(self) -> Fact:
        """mig-manager generates `<node>-mig-config` from the hardware when no custom file is set (v0.14.0+)."""
        return self._fact("mig_manager", "mig-manager.generated-config", "mig-manager generates <node>-mig-config",
                          "mig-manager reads the static ConfigMap")

    def custom_config_needs_name(self) -> Fact:
        """A custom mig-parted file reaches mig-manager only through spec.migManager.config.name (GPU Operator
        v26.3.0+); before, an empty name meant default-mig-parted-config."""
        return self._fact("gpu_operator", "gpu-operator.custom-config-name",
                          "a custom file needs spec.migManager.config.name",
                          "an empty spec.migManager.config.name means default-mig-parted-config")

    def bounces_gpu_clients(self) -> Fact:
        """mig-manager also bounces pods selected by `nvidia.com/gpu.deploy.client` (v0.15.0+)."""
        return self._fact("mig_manager", "mig-manager.deploy-client",
                          "mig-manager bounces nvidia.com/gpu.deploy.client pods",
                          "mig-manager pauses the operator's GPU clients only")

    # ---- rendering ------------------------------------------------------------------------------------------
    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: self.component(name).as_dict() for name in (*V.COMPONENTS, "gpu_allocation")}
        out["modelled"] = {"device_plugin": self.device_plugin_model, "driver": self.driver.value}
        out["facts"] = {name: {"value": f.value, "why": f.why} for name, f in (
            ("generates_per_node_config", self.generates_per_node_config()),
            ("custom_config_needs_name", self.custom_config_needs_name()),
            ("bounces_gpu_clients", self.bounces_gpu_clients()))}
        out["notes"] = list(self.notes)
        return out

    def versions(self) -> dict[str, str]:
        """Known versions under report.target's canonical names (TARGET.yaml `versions`)."""
        names = {"gpu_operator": "gpu_operator", "mig_manager": "mig_manager", "device_plugin": "device_plugin",
                 "driver": "driver", "kubernetes": "kubernetes"}
        out = {names[c]: v for c in V.COMPONENTS if (v := self.component(c).value)}
        if self.device_plugin.value:
            out["gpu_feature_discovery"] = self.device_plugin.value
        return out

    def line(self) -> str:
        """One line for the report header and the terminal summary."""
        parts = [f"{V.SPELLINGS[c]} {self.component(c)}" for c in V.COMPONENTS]
        parts.append(f"gpu-allocation {self.gpu_allocation}")
        return ", ".join(parts)


# ---- choosing -------------------------------------------------------------------------------------------------
def _key(raw: str) -> str | None:
    wanted = raw.strip().lower().replace("_", "-")
    return next((c for c, spelled in V.SPELLINGS.items() if spelled == wanted), None)


def parse_choices(raw: str | Mapping[str, Any] | None, origin: str) -> dict[str, str]:
    """`gpu-operator=v26.3.1,driver=550.54.15` (or a mapping of the same) -> {component: canonical version}.
    InputError names `origin` and what is wrong; `gpu-allocation` is refused (it is detected, never chosen)."""
    if raw is None:
        return {}
    if isinstance(raw, Mapping):
        items = [(str(k), v) for k, v in raw.items()]
    else:
        items = []
        for part in filter(None, (p.strip() for p in str(raw).split(","))):
            key, eq, value = part.partition("=")
            if not eq:
                raise InputError(f"{origin}: '{part}' is not COMPONENT=VERSION (e.g. gpu-operator=v26.3.1; "
                                 f"components: {', '.join(V.SPELLINGS.values())})")
            items.append((key, value))
    out: dict[str, str] = {}
    for key, value in items:
        component = _key(key)
        if component is None:
            extra = " (it is detected on real clusters, never chosen)" if key.strip() in ("gpu-allocation",
                                                                                          "gpu_allocation") else ""
            raise InputError(f"{origin}: unknown stack component '{key}'{extra}; components: "
                             f"{', '.join(V.SPELLINGS.values())}")
        if value is None or not str(value).strip():
            raise InputError(f"{origin}: {V.SPELLINGS[component]} has no version")
        try:
            out[component] = V.canonical(component, str(value))
        except ValueError as exc:
            raise InputError(f"{origin}: {exc}") from None
    return out


def resolve(layers: Sequence[tuple[Mapping[str, str], str]] = (), detected: Mapping[str, Sourced] | None = None,
            gpu_allocation: Sourced | None = None, *, simulated: bool = True) -> StackProfile:
    """The profile from choices (`layers`: ({component: version}, source), highest precedence first), what was
    detected on a real cluster (`simulated=False`), the chosen or detected GPU Operator's release, and defaults.

    InputError: a chosen GPU Operator the kit does not know whose mig-manager or device plugin is not chosen too, or
    a chosen device plugin outside the releases the kit models. Detected versions never fail: what cannot be modelled
    becomes a note."""
    picked: dict[str, Sourced] = {}
    for choices, source in layers:
        for component, version in choices.items():
            picked.setdefault(component, Sourced(version, source))
    notes: list[str] = []
    for component, found in (detected or {}).items():
        if component in picked:
            if found.value and found.value != picked[component].value:
                notes.append(f"{V.SPELLINGS[component]}: {picked[component].value} ({picked[component].source}) "
                             f"overrides {found}")
            continue
        picked[component] = found
    operator = picked.get("gpu_operator") or Sourced(V.NEWEST_OPERATOR if simulated else None,
                                                     DEFAULT_SOURCES["gpu_operator"] if simulated else
                                                     "not detected: no ClusterPolicy or operator Deployment found")
    release = V.OPERATOR_RELEASES.get(operator.value or "")
    for component in ("mig_manager", "device_plugin"):
        if component in picked and picked[component].value:
            continue
        if release is not None:
            picked[component] = Sourced(getattr(release, component),
                                        f"gpu-operator {release.version} ships it ({release.source})")
        elif simulated:
            raise InputError(f"{operator.source}: gpu-operator {operator.value} is not a release the kit knows "
                             f"(known: {', '.join(V.OPERATOR_RELEASES)}); choose {V.SPELLINGS[component]}= too")
        else:
            picked.setdefault(component, Sourced(None, f"not detected; gpu-operator {operator.value or 'unknown'}"))
    picked["gpu_operator"] = operator
    if "driver" not in picked:
        picked["driver"] = Sourced(DEFAULT_DRIVER, DEFAULT_SOURCES["driver"]) if simulated else \
            Sourced(None, "not detected: no node carries nvidia.com/cuda.driver-version.full")
    if "kubernetes" not in picked:
        picked["kubernetes"] = Sourced(V.LOCAL_KUBERNETES, DEFAULT_SOURCES["kubernetes"]) if simulated else \
            Sourced(None, "not detected")
    plugin = picked["device_plugin"]
    if plugin.value is not None and (problem := V.device_plugin_modelled(plugin.value)) is not None:
        if simulated:
            raise InputError(f"{plugin.source}: {problem}")
        notes.append(f"{problem}: the kit predicts with {V.DEVICE_PLUGIN_MODELLED[1]}'s rules")
    elif plugin.value is None:
        notes.append(f"device plugin version unknown ({plugin.source}): the kit predicts with "
                     f"{V.DEVICE_PLUGIN_MODELLED[1]}'s rules")
    allocation = gpu_allocation or Sourced(DEVICE_PLUGIN, "simulated" if simulated else "default")
    return StackProfile(picked["kubernetes"], picked["gpu_operator"], picked["mig_manager"], picked["device_plugin"],
                        picked["driver"], allocation, tuple(notes))


DEFAULT = StackProfile(
    Sourced(V.LOCAL_KUBERNETES, DEFAULT_SOURCES["kubernetes"]),
    Sourced(V.NEWEST_OPERATOR, DEFAULT_SOURCES["gpu_operator"]),
    Sourced(V.OPERATOR_RELEASES[V.NEWEST_OPERATOR].mig_manager,
            f"gpu-operator {V.NEWEST_OPERATOR} ships it ({V.OPERATOR_RELEASES[V.NEWEST_OPERATOR].source})"),
    Sourced(V.OPERATOR_RELEASES[V.NEWEST_OPERATOR].device_plugin,
            f"gpu-operator {V.NEWEST_OPERATOR} ships it ({V.OPERATOR_RELEASES[V.NEWEST_OPERATOR].source})"),
    Sourced(DEFAULT_DRIVER, DEFAULT_SOURCES["driver"]),
)


def default() -> StackProfile:
    """The newest GA releases (docs/versions.md)."""
    return DEFAULT


def with_allocation(profile: StackProfile, allocation: Sourced) -> StackProfile:
    return replace(profile, gpu_allocation=allocation)


def overlay(profile: StackProfile, choices: Mapping[str, str | None], source: str) -> StackProfile:
    """`profile` with the components `choices` names (None values skipped) set to `source`'s versions: a backend's
    own options (`driver:`, `device_plugin_version:`) over the session's profile. Components a release decides
    (mig-manager, device plugin) are not re-derived: name them too when changing gpu-operator."""
    picked: dict[str, Any] = {c: Sourced(v, source) for c, v in choices.items() if v is not None}
    return replace(profile, **picked) if picked else profile


def as_argument(profile: StackProfile) -> str:
    """`kubernetes=v1.37.2,gpu-operator=...` of every known version: how the local backend hands its profile to the
    agents' process (`from_argument` reads it back)."""
    return ",".join(f"{V.SPELLINGS[c]}={v}" for c in V.COMPONENTS if (v := profile.component(c).value))


def from_argument(text: str | None, source: str) -> StackProfile:
    """The profile `as_argument` wrote (every component sourced to `source`); the default for None or empty."""
    if not text:
        return DEFAULT
    return resolve([(parse_choices(text, source), source)])
