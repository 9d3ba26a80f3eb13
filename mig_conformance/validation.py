"""Semantic validation of a named mig-parted config on a node's GPUs: what would be created, and
what real mig-parted would do where that differs from "valid" (reference §7.2, §8.2, §8.3)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .catalog import GpuModel
from .errors import InputError, Location, Problem
from .mig.device import DeviceID
from .mig.spec import MigConfigEntry, Spec
from .placement import FitResult, fit
from .profiles import ProfileFormatError, parse_profile


@dataclass
class GpuPlan:
    """What the selected config asks of one GPU and what it yields."""

    index: int
    model: str
    device_id: str
    entry: int | None
    mig_enabled: bool | None
    devices: dict[str, int] = field(default_factory=dict)
    fit: FitResult | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "model": self.model, "device_id": self.device_id, "entry": self.entry,
                "mig_enabled": self.mig_enabled, "devices": self.devices,
                "placement": [p.as_dict() for p in self.fit.placement] if self.fit and self.fit.fits else []}


@dataclass
class ValidationReport:
    """Errors make a config invalid; warnings are facts the user should know (e.g. assert behaviour)."""

    file: str
    config: str | None
    node: str
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    gpus: list[GpuPlan] = field(default_factory=list)
    mig_parted: dict[str, str] = field(default_factory=dict)
    apply_fails: bool = False

    @property
    def valid(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {"valid": self.valid, "file": self.file, "config": self.config, "node": self.node,
                "errors": [e.as_dict() for e in self.errors], "warnings": [w.as_dict() for w in self.warnings],
                "gpus": [g.as_dict() for g in self.gpus], "mig_parted": self.mig_parted}


def _loc(spec: Spec, config: str, entry: MigConfigEntry, key: str | None = None,
         profile: str | None = None) -> Location:
    if profile:
        line = entry.device_lines.get(profile, entry.line)
    else:
        line = entry.key_lines.get(key, entry.line) if key else entry.line
    return Location(spec.file, line, config, entry.index, key)


def _known_anywhere(name: str, gpus: list[GpuModel]) -> bool:
    """mig-parted parses profile names against every GPU of the node (global lookup)."""
    try:
        p = parse_profile(name)
    except ProfileFormatError:
        return False
    return any(g.resolve(p) is not None for g in gpus if g.mig_capable)


def _check_entry_on_gpu(report: ValidationReport, spec: Spec, config: str, entry: MigConfigEntry,
                        plan: GpuPlan, gpu: GpuModel, node: list[GpuModel]) -> None:
    i = plan.index
    if not gpu.mig_capable:
        if entry.mig_enabled and entry.devices != "all":
            report.errors.append(Problem(f"{gpu.key} is not MIG capable: mig-parted fails with 'cannot set MIG "
                                         "mode on non MIG-capable GPU'", _loc(spec, config, entry, "mig-enabled"), i))
            report.apply_fails = True
        elif entry.mig_enabled:
            report.warnings.append(Problem(f"{gpu.key} is not MIG capable; mig-parted skips it (devices: all)",
                                           _loc(spec, config, entry, "mig-enabled"), i))
        plan.mig_enabled = False
        return
    if not entry.mig_enabled:
        return
    devices = entry.mig_devices or {}
    if any(v == 0 for v in devices.values()):
        zero = [k for k, v in devices.items() if v == 0]
        report.warnings.append(Problem(
            f"zero count for {', '.join(zero)}: mig-parted's assert never matches such a config, so every "
            "mig-manager run clears and recreates this GPU", _loc(spec, config, entry, "mig-devices", zero[0]), i))
    for name in devices:
        if devices[name] and not _known_anywhere(name, node):
            report.errors.append(Problem(
                f"profile {name} exists on no GPU of this node ({gpu.key} has: "
                f"{', '.join(p.name for p in gpu.gi_profiles)}); real mig-parted apply clears this GPU and still "
                "reports success, and a later assert fails", _loc(spec, config, entry, "mig-devices", name), i))
            plan.fit = FitResult(gpu.key, dict(devices), reason=f"profile {name} unknown")
            return
    result = fit(gpu, devices)
    plan.fit = result
    for note in result.unconfirmed:
        report.warnings.append(Problem(f"unconfirmed catalog data used: {note}",
                                       _loc(spec, config, entry, "mig-devices"), i))
    if not result.fits:
        missing = next((n for n in devices if devices[n] and gpu.resolve(parse_profile(n)) is None), None)
        if missing:
            msg = f'MIG profile "{missing}" not found on this GPU ({gpu.key})'
            report.errors.append(Problem(msg, _loc(spec, config, entry, "mig-devices", missing), i))
            report.apply_fails = True
        else:
            report.apply_fails = True
            report.errors.append(Problem(f"does not fit on {gpu.key}: {result.reason}; mig-parted fails with "
                                         "'all orderings failed' and leaves the GPU empty",
                                         _loc(spec, config, entry, "mig-devices"), i))


def validate_node(spec: Spec, config: str | None, gpus: list[GpuModel], node: str = "",
                  device_ids: list[DeviceID] | None = None) -> ValidationReport:
    """Validate the named config for a node whose GPUs (PCI order) are `gpus`.

    `device_ids` overrides each GPU's PCI ID (default: the model's primary ID), e.g. for PCIe variants.
    """
    report = ValidationReport(spec.file, config, node)
    report.errors.extend(spec.problems)
    try:
        name, entries = spec.select(config)
    except InputError as exc:
        report.errors.extend(exc.problems)
        return report
    report.config = name
    for i, gpu in enumerate(gpus):
        device_id = device_ids[i] if device_ids else DeviceID.from_int(gpu.pci_device_id)
        selected = [e for e in entries if e.selects(i, device_id)]
        entry = selected[-1] if selected else None  # last match wins, as mig-parted applies in file order
        plan = GpuPlan(i, gpu.key, str(device_id), entry.index if entry else None,
                       entry.mig_enabled if entry else None)
        report.gpus.append(plan)
        if entry is None:
            report.warnings.append(Problem(
                f"no entry of config '{name}' selects GPU {i} ({gpu.key}, {device_id}); apply leaves it as it is "
                "and mig-parted's full assert always fails ('not all GPUs match the specified config')",
                Location(spec.file, spec.config_lines.get(name), name), i))
            continue
        if len(selected) > 1:
            report.warnings.append(Problem(
                f"entries {', '.join(str(e.index) for e in selected)} all select GPU {i}; the last one wins",
                _loc(spec, name, entry), i))
        plan.devices = {k: v for k, v in (entry.mig_devices or {}).items() if v}
        _check_entry_on_gpu(report, spec, name, entry, plan, gpu, gpus)
    uncovered = any(g.entry is None for g in report.gpus)
    report.mig_parted = {
        "apply": "failure" if report.apply_fails or spec.problems else "success",
        "assert_after_apply": "success" if report.valid and not uncovered else "failure",
    }
    return report
