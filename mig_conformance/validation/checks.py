"""The located errors and warnings of one config on one node: what mig-parted will do with each entry and GPU, each
explained with file, line, config, entry and key. Pure: catalog, placement and the config core, no simulator."""

from __future__ import annotations

import functools

from mig_conformance.common.errors import Location, Problem
from mig_conformance.common.identity import ByIdentity
from mig_conformance.gpus.catalog import CiProfile, GiProfile, GpuModel
from mig_conformance.gpus.profile_names import ProfileFormatError, parse_profile
from mig_conformance.mig.placement import FitResult, fit
from mig_conformance.mig.spec import MigConfigEntry, Spec
from mig_conformance.validation.report import GpuPlan, ValidationReport


def _loc(spec: Spec, config: str, entry: MigConfigEntry, key: str | None = None,
         profile: str | None = None) -> Location:
    if profile:
        line = entry.device_lines.get(profile, entry.line)
    else:
        line = entry.key_lines.get(key, entry.line) if key else entry.line
    return Location(spec.file, line, config, entry.index, key)


@functools.lru_cache(maxsize=8192)
def _resolve(model: ByIdentity[GpuModel], name: str) -> tuple[GiProfile, CiProfile] | None:
    """GpuModel.resolve of a config key, memoized (a pure function of the model and the name); None if unknown
    or not a profile name."""
    try:
        return model.obj.resolve(parse_profile(name))
    except ProfileFormatError:
        return None


def _known_anywhere(name: str, gpus: list[GpuModel]) -> bool:
    """mig-parted parses profile names against every GPU of the node (global lookup)."""
    return any(_resolve(ByIdentity(g), name) is not None for g in {id(g): g for g in gpus}.values() if g.mig_capable)


class Checker:
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
