"""Bottlerocket's own MIG: two API settings, applied at boot by its nvidia-migmanager, advertised by its device plugin
with the single strategy only (no GPU Operator, no mig-manager, no nvidia.com/mig.config label).

Why a module of its own: the same node hardware gives different resources than under the GPU Operator, and the
settings have traps that fail silently (a misspelt value becomes the whole-GPU profile). Facts and their sources:
docs/reference/bottlerocket.md; the per-model tables: fixtures/bottlerocket-mig.yaml.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from mig_conformance.common.errors import InputError, Location, Problem
from mig_conformance.common.fields import MappingReader
from mig_conformance.common.yaml_source import decode_text, load_yaml_file, read_bytes
from mig_conformance.gpus.catalog import GpuModel
from mig_conformance.k8s import device_plugin
from mig_conformance.k8s.labels import INSTANCE_TYPE
from mig_conformance.k8s.projection import project_node
from mig_conformance.mig.spec import Spec, parse_spec_text

STRATEGY = "single"  # bottlerocket-os/bottlerocket#4483 (docs/reference/bottlerocket.md#the-settings)
PREFIX = "settings.kubelet-device-plugins.nvidia"
PARTITIONING = f"{PREFIX}.device-partitioning-strategy"
SHARING = f"{PREFIX}.device-sharing-strategy"
PROFILE = f"{PREFIX}.mig.profile"
ENABLED = f"{PREFIX}.enabled"
#: EC2 user data is at most 16 KB; a settings file larger than this is not user data.
MAX_BYTES = 256 * 1024
PROFILE_NAME = re.compile(r"^[0-9]g\.\d+gb$")  # the settings page's pattern for a profile value
SINGLE_ONLY = ("Bottlerocket's device plugin offers MIG devices only as nvidia.com/gpu (single strategy); the mixed "
               "strategy is not available (bottlerocket-os/bottlerocket#4483; use AL2023 with the GPU Operator for "
               "mixed, docs/reference/bottlerocket.md#the-settings)")
AT_BOOT = ("Bottlerocket applies MIG at boot: a changed setting takes effect only after the node reboots "
           "(docs/reference/bottlerocket.md#the-settings)")
NO_MIG_MANAGER = ("Bottlerocket node: no mig-manager and no nvidia.com/mig.config label; its MIG layout comes from "
                  "settings.kubelet-device-plugins.nvidia applied at boot (change the settings and reboot), so the "
                  "mig-manager checks do not apply (suites/test_bottlerocket.py checks what it advertises)")
NO_GFD = ("Bottlerocket ships no GPU Feature Discovery: the node gets no nvidia.com/* labels unless you deploy GFD "
          "(docs/reference/bottlerocket.md#sources)")
MPS = ("device-sharing-strategy \"mps\" with device-partitioning-strategy \"mig\": MPS and MIG are mutually "
       "exclusive, the device plugin does not start and the node advertises no GPUs "
       "(docs/reference/bottlerocket.md#the-settings)")


# ---- the tables ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelTable:
    """One settings key: the boards (PCI device IDs, upper 16 bits) that read it and what each count creates."""

    key: str
    gpu: str | None
    pci_ids: tuple[int, ...]
    counts: Mapping[str, str]
    source: str


@dataclass(frozen=True)
class OtherBoard:
    """A board outside the catalog that reads another GPU's key, with the profiles it really has."""

    name: str
    pci_id: int
    profiles: tuple[str, ...]
    source: str


@dataclass(frozen=True)
class Tables:
    models: Mapping[str, ModelTable]
    other_boards: tuple[OtherBoard, ...]
    default_value: str
    source: str

    def for_pci(self, pci_id: int) -> ModelTable | None:
        return next((m for m in self.models.values() if pci_id in m.pci_ids), None)


def tables_file() -> Path:
    return Path(str(resources.files("mig_conformance.fixtures").joinpath("bottlerocket-mig.yaml")))


@functools.cache
def load_tables() -> Tables:
    doc = load_yaml_file(tables_file())
    root = MappingReader(doc, (), subject="model")
    models: dict[str, ModelTable] = {}
    for key in root.get("models", dict):
        r = root.child("models").child(key)
        counts = {str(k): str(v) for k, v in r.get("counts", dict).items()}
        models[str(key)] = ModelTable(str(key), r.get("gpu", str, None),
                                      tuple(int(str(p), 16) for p in r.get("pci_device_ids", list)), counts,
                                      r.get("source", str))
    others = tuple(OtherBoard(str(o["name"]), int(str(o["pci_device_id"]), 16), tuple(str(p) for p in o["profiles"]),
                              str(o["source"])) for o in root.get("other_boards", list))
    return Tables(models, others, root.get("default_value", str), root.get("source", str))


# ---- the settings --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    """The relevant keys of Bottlerocket user data (TOML), each with the line it was written on."""

    file: str
    partitioning: str | None = None
    sharing: str | None = None
    profiles: Mapping[str, str] = field(default_factory=dict)
    enabled: bool | None = None
    replicas: int | None = None
    rename_by_default: bool | None = None
    lines: Mapping[str, int] = field(default_factory=dict)

    @property
    def mig(self) -> bool:
        return self.partitioning == "mig"

    def where(self, key: str) -> Location:
        return Location(self.file, self.lines.get(key), key=key)


_TOML_LINE = re.compile(r"\(at line (\d+), column \d+\)")


def _line_of(text: str, token: str) -> int | None:
    """The first line that assigns `token` (a bare key or a quoted one), for error messages; tomllib keeps none."""
    pattern = re.compile(rf"(^|[.\s\"'{{,]){re.escape(token)}[\"']?\s*=")
    return next((i for i, line in enumerate(text.splitlines(), 1) if pattern.search(line)), None)


def _table(data: Mapping[str, Any], path: str, file: str, text: str) -> Mapping[str, Any]:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return {}
        node = node[part]
    if not isinstance(node, Mapping):
        raise InputError(Problem("must be a table", Location(file, _line_of(text, path.split(".")[-1]), key=path)))
    return node


def _string(table: Mapping[str, Any], name: str, full: str, file: str, text: str) -> str | None:
    value = table.get(name)
    if value is None or isinstance(value, str):
        return value
    raise InputError(Problem(f"must be a string, e.g. \"{value}\", got {type(value).__name__} {value!r} "
                             "(Bottlerocket's API refuses other types)",
                             Location(file, _line_of(text, name), key=full)))


def parse_settings(text: str, file: str = "<string>") -> Settings:
    """Read Bottlerocket user data; only `settings.kubelet-device-plugins.nvidia` is looked at. InputError (file,
    line, key) for TOML syntax and for values of the wrong type."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = _TOML_LINE.search(str(exc))
        raise InputError(Problem(f"not valid TOML: {_TOML_LINE.sub('', str(exc)).strip()}",
                                 Location(file, int(m[1]) if m else None))) from None
    nvidia = _table(data, PREFIX, file, text)
    lines: dict[str, int] = {}
    partitioning = _string(nvidia, "device-partitioning-strategy", PARTITIONING, file, text)
    sharing = _string(nvidia, "device-sharing-strategy", SHARING, file, text)
    mig = nvidia.get("mig", {})
    raw_profiles = mig.get("profile", {}) if isinstance(mig, Mapping) else {}
    if not isinstance(raw_profiles, Mapping):
        raise InputError(Problem("must be a table of \"<model>.<memory>gb\" = \"<value>\"",
                                 Location(file, _line_of(text, "profile"), key=PROFILE)))
    profiles: dict[str, str] = {}
    for key, value in raw_profiles.items():
        full = f'{PROFILE}."{key}"'
        if not isinstance(value, str):
            raise InputError(Problem(f"must be a string such as \"4\" or \"1g.10gb\", got {type(value).__name__} "
                                     f"{value!r} (Bottlerocket's API refuses other types)",
                                     Location(file, _line_of(text, key), key=full)))
        profiles[str(key)] = value
        if (line := _line_of(text, key)) is not None:
            lines[full] = line
    for name, full in (("device-partitioning-strategy", PARTITIONING), ("device-sharing-strategy", SHARING),
                       ("enabled", ENABLED)):
        if name in nvidia and (line := _line_of(text, name)) is not None:
            lines[full] = line
    enabled = nvidia.get("enabled")
    slicing = nvidia.get("time-slicing", {})
    slicing = slicing if isinstance(slicing, Mapping) else {}
    replicas = slicing.get("replicas")
    rename = slicing.get("rename-by-default")
    return Settings(file, partitioning, sharing, profiles, enabled if isinstance(enabled, bool) else None,
                    replicas if isinstance(replicas, int) and not isinstance(replicas, bool) else None,
                    rename if isinstance(rename, bool) else None, lines)


#: status.nodeInfo.osImage of the kit's simulated Bottlerocket nodes (1.34.0: the first release with MIG)
SIMULATED_OS_IMAGE = "Bottlerocket OS 1.34.0 (aws-k8s-nvidia, simulated)"
#: the local backend's simulated Bottlerocket nodes carry their user data here for the agents (a real node keeps it
#: on the host, out of the API's sight)
SETTINGS_ANNOTATION = "mig-conformance.io/bottlerocket-settings"

#: what a Bottlerocket node does without user data for it: MIG on, every GPU its largest profile
DEFAULT_SETTINGS = Settings("<default: device-partitioning-strategy = \"mig\">", partitioning="mig")


def load_settings(path: str | Path) -> Settings:
    """Read a user-data file (bounded: `MAX_BYTES`; '-' is standard input)."""
    return load_settings_text(path)[1]


def load_settings_text(path: str | Path) -> tuple[str, Settings]:
    """The user-data file's text (to hand on, e.g. to the local agents) and its settings."""
    name = "<stdin>" if str(path) == "-" else str(path)
    text = decode_text(read_bytes(path, MAX_BYTES), name)
    return text, parse_settings(text, name)


# ---- what the migmanager does with them ------------------------------------------------------------------------
@dataclass(frozen=True)
class Board:
    """A GPU as the migmanager sees it: its PCI device ID (upper 16 bits) and the profiles it really has."""

    name: str
    pci_id: int
    mig_capable: bool
    profiles: Mapping[str, int]  # profile name -> max instances (catalog), or -1 where only the name is known

    @classmethod
    def of(cls, gpu: GpuModel, pci_device_id: int | None = None) -> Board:
        full = pci_device_id if pci_device_id is not None else gpu.pci_device_id
        return cls(gpu.key, full >> 16 if full > 0xFFFF else full, gpu.mig_capable,
                   {p.name: p.max_instances for p in gpu.gi_profiles})

    @classmethod
    def other(cls, board: OtherBoard) -> Board:
        return cls(board.name, board.pci_id, True, dict.fromkeys(board.profiles, -1))


@dataclass(frozen=True)
class Finding:
    """A trap in the settings: `error` (the node will not do what was asked) or `warning` (it will, silently
    differently from what the value suggests)."""

    level: str
    message: str
    location: Location = field(default_factory=Location)

    def __str__(self) -> str:
        where = self.location.describe()
        return f"{self.level}: {where}: {self.message}" if where else f"{self.level}: {self.message}"

    def as_dict(self) -> dict[str, object]:
        return {"level": self.level, "message": self.message, "file": self.location.file,
                "line": self.location.line, "key": self.location.key}


@dataclass(frozen=True)
class Plan:
    """What the migmanager creates on every GPU of the node (all GPUs of one instance are one model)."""

    mig: bool
    key: str | None
    value: str | None
    profile: str | None  # None: MIG disabled, or no MIG device can be created
    count: int
    findings: tuple[Finding, ...]
    plugin_starts: bool = True

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.level == "error")


def _count_value(value: str, table: ModelTable) -> str | None:
    return value if value in table.counts else None


def plan(settings: Settings, board: Board, gpus: int = 1, tables: Tables | None = None) -> Plan:
    """The profile and count the migmanager creates per GPU on `gpus` boards like `board`, and the traps."""
    t = tables or load_tables()
    found: list[Finding] = []
    plugin_starts = settings.enabled is not False
    if settings.partitioning not in (None, "none", "mig"):
        found.append(Finding("error", f"'{settings.partitioning}' is not a partitioning strategy: Bottlerocket "
                                      "accepts \"none\" or \"mig\"", settings.where(PARTITIONING)))
    for key in settings.profiles:
        if key not in t.models:
            found.append(Finding("warning", f"no GPU reads the key \"{key}\" (known: "
                                            f"{', '.join(sorted(t.models))}); it has no effect",
                                 settings.where(f'{PROFILE}."{key}"')))
    if not settings.mig:
        if settings.profiles:
            found.append(Finding("warning", "mig.profile is set but device-partitioning-strategy is not \"mig\": "
                                            "MIG stays off and the node advertises whole GPUs",
                                 settings.where(PARTITIONING)))
        return Plan(False, None, None, None, 0, tuple(found), plugin_starts)
    if settings.sharing == "mps":
        found.append(Finding("error", MPS, settings.where(SHARING)))
        plugin_starts = False
    if not board.mig_capable:
        found.append(Finding("warning", f"{board.name} has no MIG: the migmanager leaves it alone and the node "
                                        "advertises whole GPUs"))
        return Plan(False, None, None, None, 0, tuple(found), plugin_starts)
    table = t.for_pci(board.pci_id)
    if table is None:
        found.append(Finding("error", f"Bottlerocket's migmanager has no table for {board.name} (PCI device ID "
                                      f"0x{board.pci_id:04X}): the kit cannot predict its MIG devices"))
        return Plan(True, None, None, None, 0, tuple(found), plugin_starts)
    full_key = f'{PROFILE}."{table.key}"'
    value = settings.profiles.get(table.key)
    default_profile = table.counts[t.default_value]
    if value is None:
        value = t.default_value
        if settings.profiles:
            found.append(Finding("warning", f"no value for \"{table.key}\": every {board.name} gets its largest "
                                            f"profile, one {default_profile} device per GPU ({gpus} nvidia.com/gpu)",
                                 settings.where(PROFILE)))
    if _count_value(value, table) is not None:
        profile, count = table.counts[value], int(value)
    elif PROFILE_NAME.match(value):
        profile, count = value, board.profiles.get(value, 0)
    else:
        counts = ", ".join(sorted(table.counts, key=int))
        found.append(Finding("warning", f"\"{value}\" is neither a partition count for \"{table.key}\" ({counts}) "
                                        f"nor a profile name: Bottlerocket silently uses \"{t.default_value}\", one "
                                        f"{default_profile} device per GPU ({gpus} nvidia.com/gpu on this node)",
                             settings.where(full_key)))
        profile, count = default_profile, 1
    if profile not in board.profiles:
        mapped = f" (Bottlerocket reads \"{table.key}\" for PCI device ID 0x{board.pci_id:04X})" \
            if table.gpu != board.name else ""
        found.append(Finding("error", f"{profile} does not exist on {board.name}{mapped}: nvidia-smi mig -cgi fails "
                                      f"at boot and the GPU has no MIG devices (it has "
                                      f"{', '.join(p for p in board.profiles if '+' not in p and '-' not in p)})",
                             settings.where(full_key) if full_key in settings.lines else Location()))
        return Plan(True, table.key, value, None, 0, tuple(found), plugin_starts)
    if count < 0:  # only the names are known
        count = 1
    return Plan(True, table.key, value, profile, count, tuple(found), plugin_starts)


# ---- the node --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BottlerocketNode:
    """What a Bottlerocket node with these settings advertises after its (next) boot."""

    node: str
    instance_type: str | None
    plan: Plan
    gpus: tuple[dict[str, Any], ...]
    allocatable: dict[str, int]
    labels: dict[str, str]
    plugin_error: str | None
    notes: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        p = self.plan
        return {"node": self.node, "instance_type": self.instance_type, "os": "bottlerocket", "strategy": STRATEGY,
                "mig": p.mig, "key": p.key, "value": p.value, "profile": p.profile, "per_gpu": p.count,
                "allocatable": dict(self.allocatable), "labels": dict(self.labels),
                "plugin_error": self.plugin_error, "findings": [f.as_dict() for f in p.findings],
                "notes": list(self.notes), "gpus": list(self.gpus)}


CONFIG_NAME = "bottlerocket"


def spec_of(p: Plan) -> Spec:
    """The plan as a one-config mig-parted spec (`CONFIG_NAME`), so both models of a node can apply it."""
    devices = f"{{\"{p.profile}\": {p.count}}}" if p.profile else "{}"
    enabled = "true" if p.mig else "false"
    return parse_spec_text(f"version: v1\nmig-configs:\n  {CONFIG_NAME}:\n    - devices: all\n"
                           f"      mig-enabled: {enabled}\n      mig-devices: {devices}\n", "<bottlerocket settings>")


def project(settings: Settings, gpus: Sequence[GpuModel], node: str = "", instance_type: str | None = None,
            pci_device_ids: Sequence[int] | None = None, device_plugin_version: str = device_plugin.DEFAULT_VERSION,
            driver: str | None = None) -> BottlerocketNode:
    """Project a Bottlerocket node: the migmanager's plan on its GPUs, then the device plugin (single strategy)."""
    if not gpus:
        raise InputError("a node without GPUs")
    board = Board.of(gpus[0], pci_device_ids[0] if pci_device_ids else None)
    p = plan(settings, board, len(gpus))
    projected = project_node(gpus, STRATEGY, spec_of(p), CONFIG_NAME, node=node, instance_type=instance_type,
                             driver=driver, device_plugin_version=device_plugin_version)
    allocatable, error, notes = advertised(settings, p, projected.allocatable, projected.plugin_error)
    labels = {INSTANCE_TYPE: instance_type} if instance_type else {}
    gpu_rows = tuple({"index": i, "model": g.model.key, "mig_enabled": g.mig_enabled, "devices": dict(g.counts)}
                     for i, g in enumerate(projected.gpus))
    return BottlerocketNode(node, instance_type, p, gpu_rows, allocatable, labels, error, (AT_BOOT, NO_GFD, *notes))


def advertised(settings: Settings, p: Plan, resources: Mapping[str, int],
               error: str | None) -> tuple[dict[str, int], str | None, tuple[str, ...]]:
    """What Bottlerocket's device plugin registers, given what NVIDIA's plugin (single strategy) would: nothing when
    it does not start (MPS with MIG, or disabled), shared replicas under time-slicing."""
    if not p.plugin_starts:
        why = MPS if settings.sharing == "mps" else f"the device plugin is disabled ({ENABLED} = false)"
        return {}, why, ()
    out = dict(resources)
    notes: tuple[str, ...] = ()
    if settings.sharing == "time-slicing" and error is None:
        replicas = settings.replicas if settings.replicas is not None else 2
        devices = out.pop("nvidia.com/gpu", 0)
        name = "nvidia.com/gpu" if settings.rename_by_default is False else "nvidia.com/gpu.shared"
        out = {**out, "nvidia.com/gpu": 0, name: devices * replicas}
        notes = (f"time-slicing: {replicas} replicas of each device as {name} (settings page; "
                 "docs/reference/bottlerocket.md#the-settings)",)
    return dict(sorted(out.items())), error, notes


def refuse_strategy(strategy: str | None) -> None:
    """Bottlerocket has one strategy; asking for another is a usage error with the reason."""
    if strategy not in (None, STRATEGY):
        raise InputError(f"--strategy {strategy}: {SINGLE_ONLY}")


def is_bottlerocket(os_image: str | None) -> bool:
    """A node whose `status.nodeInfo.osImage` names Bottlerocket ("Bottlerocket OS 1.34.0 (aws-k8s-1.33-nvidia)")."""
    return bool(os_image) and "bottlerocket" in str(os_image).lower()
