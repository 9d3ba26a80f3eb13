"""Semantic validation of a named mig-parted config on a node's GPUs: what would be created, located problems,
and what nvidia-mig-parted's apply and assert do with it (docs/reference/mig-parted.md).

The `mig_parted` fields are not predicted: the config is applied with the kit's mig-parted simulator to a
simulated node of these GPUs, fresh (MIG disabled, no MIG devices), then asserted. The located errors and
warnings explain every failure of either command (tests/unit/test_validate_vs_simulator.py checks that they do).
"""

from __future__ import annotations

from collections.abc import Sequence

from mig_conformance.common.errors import InputError, Location, Problem
from mig_conformance.gpus.catalog import GpuModel
from mig_conformance.gpus.device_ids import DeviceID
from mig_conformance.mig.spec import MigConfigEntry, Spec
from mig_conformance.simulators import nvml as nv
from mig_conformance.validation.checks import Checker
from mig_conformance.validation.report import GpuPlan, ValidationReport
from mig_conformance.validation.simulated import after_apply, node_device_ids, run_mig_parted, simulated_node


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
    checker = Checker(report, spec, name, gpus)
    report.warnings.extend(unused_entries(spec, name, entries, node_device_ids(sim)))
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
                plan.after_apply = after_apply(small, firsts.index(reps[plan.index]))
            return report
    report.mig_parted = run_mig_parted(spec, name, sim)
    for plan in report.gpus:
        plan.after_apply = after_apply(sim, plan.index)
    return report


def unused_entries(spec: Spec, name: str, entries: Sequence[MigConfigEntry],
                   device_ids: Sequence[DeviceID]) -> list[Problem]:
    """A warning for each entry that selects no GPU of the node (mig-parted silently skips it): `devices` beyond the
    node's GPUs, or `devices` and `device-filter` that select nothing together. An entry whose device-filter names
    another board is not warned about when another entry's filter matches this node (that is how one config serves
    several GPU models, as the GPU Operator's configs do) nor when no entry selects a GPU here (a config for other
    GPUs: each GPU's own warning says so)."""
    by_model = any(e.device_filter and any(e.matches_device_filter(d) for d in device_ids) for e in entries)
    used = any(e.selects(i, d) for e in entries for i, d in enumerate(device_ids))
    out: list[Problem] = []
    for e in entries:
        if any(e.selects(i, d) for i, d in enumerate(device_ids)):
            continue
        filtered = [i for i, d in enumerate(device_ids) if e.matches_device_filter(d)]
        listed = None if isinstance(e.devices, str) else list(e.devices)
        if not filtered:
            if by_model or not used:
                continue
            ids = ", ".join(sorted({str(d.primary) for d in device_ids}))
            why = f"its device-filter {list(e.device_filter)} matches none of this node's GPUs ({ids})"
            key = "device-filter"
        elif listed is not None and all(not 0 <= i < len(device_ids) for i in listed):
            why, key = f"its devices {listed} are not GPU indices of this node (GPUs 0-{len(device_ids) - 1})", \
                "devices"
        else:
            why, key = (f"its devices {listed} are none of the GPUs its device-filter selects "
                        f"({', '.join(map(str, filtered))})"), "devices"
        line = e.key_lines.get(key) or e.line
        out.append(Problem(f"entry {e.index} of config '{name}' selects no GPU of this node: {why}; mig-parted "
                           "skips it", Location(spec.file, line, name, e.index, key)))
    return out


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
