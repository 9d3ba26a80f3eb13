"""Semantic validation of a named mig-parted config on a node's GPUs: what would be created, located problems,
and what nvidia-mig-parted's apply and assert do with it (docs/reference/mig-parted.md).

The `mig_parted` fields are not predicted: the config is applied with the kit's mig-parted simulator to a
simulated node of these GPUs, fresh (MIG disabled, no MIG devices), then asserted. The located errors and
warnings explain every failure of either command (tests/test_validate_vs_simulator.py checks that they do).
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from mig_conformance.common.errors import InputError, Location, Problem
from mig_conformance.common.identity import ByIdentity
from mig_conformance.gpus.catalog import CiProfile, GiProfile, GpuModel, GpuVariant
from mig_conformance.gpus.device_ids import DeviceID
from mig_conformance.gpus.profile_names import ProfileFormatError, parse_profile
from mig_conformance.mig.placement import FitResult, fit
from mig_conformance.mig.spec import MigConfigEntry, Spec
from mig_conformance.simulators import nvml as nv
from mig_conformance.simulators.mig_parted import MigParted, MigPartedResult

FRESH_NODE = "every GPU MIG-disabled, without MIG devices"


@dataclass
class GpuPlan:
    """What the selected config asks of one GPU, what the kit's placement yields, and what the simulated
    mig-parted apply left on it (`after_apply`)."""

    index: int
    model: str
    device_id: str
    entry: int | None
    mig_enabled: bool | None
    devices: dict[str, int] = field(default_factory=dict)
    fit: FitResult | None = None
    after_apply: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "model": self.model, "device_id": self.device_id, "entry": self.entry,
                "mig_enabled": self.mig_enabled, "devices": self.devices,
                "placement": [p.as_dict() for p in self.fit.placement] if self.fit and self.fit.fits else [],
                "after_apply": self.after_apply}


@dataclass
class ValidationReport:
    """Errors make a config invalid; warnings are facts the user should know (e.g. assert behaviour).

    `input_error` marks a report whose input could not be used at all (the text is not YAML, or the named
    config cannot be selected): the CLI exits 2 for those, 1 for other invalid configs.
    """

    file: str
    config: str | None
    node: str
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    gpus: list[GpuPlan] = field(default_factory=list)
    mig_parted: dict[str, Any] = field(default_factory=dict)
    input_error: bool = False

    @property
    def valid(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {"valid": self.valid, "file": self.file, "config": self.config, "node": self.node,
                "errors": [e.as_dict() for e in self.errors], "warnings": [w.as_dict() for w in self.warnings],
                "gpus": [g.as_dict() for g in self.gpus], "mig_parted": self.mig_parted}


# --- the simulated node -------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _board_with_pci_id(model: ByIdentity, device: int) -> GpuVariant:
    """The board of `model` that reports PCI ID `device`: the catalog's variant, else (an ID the catalog does not
    know, given by the caller) the primary board with that ID, unconfirmed. One object per (model, ID)."""
    gpu: GpuModel = model.obj  # type: ignore[assignment]
    known = next((v for v in gpu.variants if v.pci_device_id_int == device), None)
    if known is not None:
        return known
    return replace(gpu.primary_variant, key=f"{gpu.key}@0x{device:08X}", pci_device_id=f"0x{device:08X}",
                   primary=False, confirmed=False, reason="a PCI device ID the catalog does not list for this GPU")


def simulated_node(gpus: list[GpuModel], name: str = "", device_ids: list[DeviceID] | None = None
                   ) -> nv.NvmlSimulator:
    """A fresh simulated node of `gpus` (PCI order), with `device_ids` as their PCI IDs where given."""
    boards: list[GpuModel | GpuVariant] = list(gpus)
    for i, did in enumerate(device_ids or ()):
        packed = did.device << 16 | did.vendor
        if packed != gpus[i].pci_device_id:
            boards[i] = _board_with_pci_id(ByIdentity(gpus[i]), packed)
    node = nv.NvmlSimulator(boards, name or "validate")
    for i, did in enumerate(device_ids or ()):
        if did.subsystem_device is not None and did.subsystem_vendor is not None:
            node.gpus[i].subsystem_id = did.subsystem_device << 16 | did.subsystem_vendor
    return node


def node_device_ids(node: nv.NvmlSimulator) -> list[DeviceID]:
    """The IDs mig-parted matches device filters against (device, vendor, subsystem), in PCI order."""
    return [DeviceID(g.variant.pci_device_id_int >> 16, g.variant.pci_device_id_int & 0xFFFF, g.subsystem_id >> 16,
                     g.subsystem_id & 0xFFFF) for g in sorted(node.gpus, key=lambda g: g.bus_id)]


def _after_apply(node: nv.NvmlSimulator, i: int) -> dict[str, Any]:
    gpu = node.gpus[i]
    if not gpu.model.mig_capable:
        return {"mig_enabled": None, "devices": {}}
    names = Counter(ci for gi in node.mig_layout(i) for ci in gi["compute_instances"])
    return {"mig_enabled": gpu.mig_current == nv.NVML_DEVICE_MIG_ENABLE, "devices": dict(sorted(names.items()))}


def _summary(result: MigPartedResult) -> dict[str, Any]:
    return {"exit_code": result.exit_code, "message": result.error or (result.stdout[-1] if result.stdout else None),
            "reason": result.detail}


def run_mig_parted(spec: Spec, config: str | None, node: nv.NvmlSimulator) -> dict[str, Any]:
    """`nvidia-mig-parted apply` then `assert` of the config on `node`, as the report's `mig_parted` fields."""
    parted = MigParted(node, gpu_outcomes=False)
    parted.debug_log = False  # the report keeps results and the assert's reason, not the debug log
    applied = parted.apply(spec, config)
    asserted = parted.assert_config(spec, config)
    return {"node": FRESH_NODE, "apply": "success" if applied.ok else "failure",
            "assert_after_apply": "success" if asserted.ok else "failure",
            "apply_result": _summary(applied), "assert_result": _summary(asserted)}


# --- located checks -----------------------------------------------------------------------------------------


def _loc(spec: Spec, config: str, entry: MigConfigEntry, key: str | None = None,
         profile: str | None = None) -> Location:
    if profile:
        line = entry.device_lines.get(profile, entry.line)
    else:
        line = entry.key_lines.get(key, entry.line) if key else entry.line
    return Location(spec.file, line, config, entry.index, key)


@functools.lru_cache(maxsize=8192)
def _resolve(model: ByIdentity, name: str) -> tuple[GiProfile, CiProfile] | None:
    """GpuModel.resolve of a config key, memoized (a pure function of the model and the name); None if unknown
    or not a profile name."""
    try:
        return model.obj.resolve(parse_profile(name))  # type: ignore[attr-defined]
    except ProfileFormatError:
        return None


def _known_anywhere(name: str, gpus: list[GpuModel]) -> bool:
    """mig-parted parses profile names against every GPU of the node (global lookup)."""
    return any(_resolve(ByIdentity(g), name) is not None for g in {id(g): g for g in gpus}.values() if g.mig_capable)


class _Checker:
    """The located errors and warnings of one config on one node."""

    def __init__(self, report: ValidationReport, spec: Spec, config: str, node: list[GpuModel]) -> None:
        self.report, self.spec, self.config, self.node = report, spec, config, node

    def error(self, message: str, location: Location, gpu: int) -> None:
        self.report.errors.append(Problem(message, location, gpu))

    def warn(self, message: str, location: Location, gpu: int) -> None:
        problem = Problem(message, location, gpu)
        if problem not in self.report.warnings:
            self.report.warnings.append(problem)

    def gpu(self, plan: GpuPlan, gpu: GpuModel, selected: list[MigConfigEntry]) -> None:
        last = selected[-1]
        if len(selected) > 1:
            self.warn(f"entries {', '.join(str(e.index) for e in selected)} all select GPU {plan.index}; the last "
                      "one wins", _loc(self.spec, self.config, last), plan.index)
        if gpu.mig_capable:
            self.mode_conflict(plan.index, selected)
        for entry in selected:
            self.entry(plan, gpu, entry, entry is last)

    def mode_conflict(self, i: int, selected: list[MigConfigEntry]) -> None:
        """ApplyMigMode leaves the last entry's mode; ApplyMigConfig then meets every entry of the other mode."""
        last = selected[-1]
        other = next((e for e in selected if e.mig_enabled != last.mig_enabled), None)
        if other is None:
            return
        upstream = ("unable to apply MIG config with MIG mode disabled" if other.mig_enabled else
                    "MIG mode is currently enabled, but the configuration specifies it should be disabled")
        self.error(f"entries {other.index} and {last.index} both select GPU {i} with different 'mig-enabled': "
                   f"mig-parted sets the mode of entry {last.index}, then its apply fails on entry {other.index} "
                   f"with '{upstream}'", _loc(self.spec, self.config, other, "mig-enabled"), i)

    def entry(self, plan: GpuPlan, gpu: GpuModel, entry: MigConfigEntry, last: bool) -> None:
        i, spec, config = plan.index, self.spec, self.config
        if not gpu.mig_capable:
            if entry.mig_enabled and entry.devices != "all":
                self.error(f"{gpu.key} is not MIG capable: mig-parted fails with 'cannot set MIG mode on non "
                           "MIG-capable GPU'", _loc(spec, config, entry, "mig-enabled"), i)
            elif entry.mig_enabled:
                self.warn(f"{gpu.key} is not MIG capable: mig-parted's apply skips it (devices: all), but its "
                          "assert fails ('unable to assert MIG mode enabled on non MIG-capable GPU')",
                          _loc(spec, config, entry, "mig-enabled"), i)
            if last:
                plan.mig_enabled = False
            return
        if not entry.mig_enabled:
            return
        devices = entry.mig_devices or {}
        unknown = [n for n in devices if not _known_anywhere(n, self.node)]
        if unknown:  # types.MigConfig.Flatten fails, whatever the counts
            what = f"profile {unknown[0]} exists" if len(unknown) == 1 else f"profiles {', '.join(unknown)} exist"
            self.error(f"{what} on no GPU of this node ({gpu.key} has: "
                       f"{', '.join(p.name for p in gpu.gi_profiles)}); real mig-parted apply clears this GPU and "
                       "still reports success, and a later assert fails",
                       _loc(spec, config, entry, "mig-devices", unknown[0]), i)
            if last:
                plan.fit = FitResult(gpu.key, dict(devices), reason=f"profile {unknown[0]} unknown")
            return
        self.assert_names(i, gpu, entry, devices)
        result = fit(gpu, devices)
        if last:
            plan.fit = result
        for note in result.unconfirmed:
            self.warn(f"unconfirmed catalog data used: {note}", _loc(spec, config, entry, "mig-devices"), i)
        if result.fits:
            return
        missing = next((n for n in devices if devices[n] and _resolve(ByIdentity(gpu), n) is None), None)
        if missing:
            self.error(f'MIG profile "{missing}" not found on this GPU ({gpu.key})',
                       _loc(spec, config, entry, "mig-devices", missing), i)
        else:
            self.error(f"does not fit on {gpu.key}: {result.reason}; mig-parted fails with 'all orderings failed' "
                       "and leaves the GPU empty", _loc(spec, config, entry, "mig-devices"), i)

    def assert_names(self, i: int, gpu: GpuModel, entry: MigConfigEntry, devices: dict[str, int]) -> None:
        """mig-parted's assert compares its read-back names with the config's keys literally (MigConfig.Equals)."""
        spec, config = self.spec, self.config
        zero = [k for k, v in devices.items() if v == 0]
        if zero:
            self.warn(f"zero count for {', '.join(zero)}: mig-parted's assert never matches such a config, so every "
                      "mig-manager run clears and recreates this GPU", _loc(spec, config, entry, "mig-devices",
                                                                           zero[0]), i)
        for key, count in devices.items():
            resolved = _resolve(ByIdentity(gpu), key) if count else None
            if resolved is not None and resolved[1].name != key:
                self.warn(f"'{key}' is created as {resolved[1].name}, the name mig-parted reads back; its assert "
                          f"compares names literally and always fails: write '{resolved[1].name}'",
                          _loc(spec, config, entry, "mig-devices", key), i)


def validate_node(spec: Spec, config: str | None, gpus: list[GpuModel], node: str = "",
                  device_ids: list[DeviceID] | None = None) -> ValidationReport:
    """Validate the named config for a node whose GPUs (PCI order) are `gpus`.

    `device_ids` overrides each GPU's PCI ID (default: the model's primary ID), e.g. for PCIe variants.
    """
    report = ValidationReport(spec.file, config, node)
    report.errors.extend(spec.problems)
    report.warnings.extend(spec.warnings)
    sim = simulated_node(gpus, node, device_ids)
    if spec.problems:
        report.input_error = spec.syntax_error
        report.mig_parted = run_mig_parted(spec, config, sim)
        return report
    try:
        name, entries = spec.select(config)
    except InputError as exc:
        report.errors.extend(exc.problems)
        report.input_error = bool(spec.configs)  # a usage error; a file without configs is just invalid
        report.mig_parted = run_mig_parted(spec, config, sim)
        return report
    report.config = name
    checker = _Checker(report, spec, name, gpus)
    for i, (gpu, device_id) in enumerate(zip(gpus, node_device_ids(sim), strict=True)):
        shown = device_ids[i] if device_ids and device_ids[i].subsystem_device is not None else device_id.primary
        selected = [e for e in entries if e.selects(i, device_id)]
        entry = selected[-1] if selected else None  # last match wins, as mig-parted applies in file order
        plan = GpuPlan(i, gpu.key, str(shown), entry.index if entry else None, entry.mig_enabled if entry else None)
        report.gpus.append(plan)
        if entry is None:
            report.warnings.append(Problem(
                f"no entry of config '{name}' selects GPU {i} ({gpu.key}, {device_id.primary}); apply leaves it as "
                "it is and mig-parted's full assert always fails ('not all GPUs match the specified config')",
                Location(spec.file, spec.config_lines.get(name), name), i))
            continue
        plan.devices = {k: v for k, v in (entry.mig_devices or {}).items() if v}
        checker.gpu(plan, gpu, selected)
    reps = _one_per_board(entries, sim)
    if reps is not None:
        firsts = sorted(set(reps))
        small = simulated_node([gpus[i] for i in firsts], node,
                               [device_ids[i] for i in firsts] if device_ids else None)
        result = run_mig_parted(spec, name, small)
        if result["apply"] == "success":  # a failed apply stops at one GPU: the others' states depend on its index
            report.mig_parted = result
            for plan in report.gpus:
                plan.after_apply = _after_apply(small, firsts.index(reps[plan.index]))
            return report
    report.mig_parted = run_mig_parted(spec, name, sim)
    for plan in report.gpus:
        plan.after_apply = _after_apply(sim, plan.index)
    return report


def _one_per_board(entries: Sequence[MigConfigEntry], node: nv.NvmlSimulator) -> list[int] | None:
    """For each GPU, the first GPU of the same board (model, PCI and subsystem ID), when every entry of the config
    selects with `devices: all`: then equal boards are selected by the same entries and mig-parted does the same on each
    (its walk is per GPU and its messages name no GPU), so one of each is simulated when the apply succeeds.
    None when an entry lists device indices (then the index decides)."""
    if any(e.devices != "all" for e in entries):
        return None
    first: dict[tuple[str, str, int], int] = {}
    return [first.setdefault((g.model.key, g.variant.pci_device_id, g.subsystem_id), i)
            for i, g in enumerate(node.gpus)]
