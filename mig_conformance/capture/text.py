"""Catalog entries from saved `nvidia-smi mig -lgip` / `-lgipp` (and `nvidia-smi -L`) text.

What the text does not carry is derived and marked [DERIVED] in each row's source: the NVML index
(from the profile name, go-nvlib mapping) and memory in MiB (lgip prints GiB with two decimals).
Cells printed as `?` (the kit's simulator marks unknown values so) become null with `confirmed: false`.
Text that is not a complete table (cut off, rows without their second line) is refused with InputError.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mig_conformance.capture.catalog_entry import (
    DeviceFacts,
    ObservedProfile,
    add_entry,
    build_entry,
    gi_index_from_name,
)
from mig_conformance.capture.smi_text import (
    LgippRow,
    LgipRow,
    lgip_problems,
    lgipp_problems,
    parse_lgip,
    parse_lgipp,
    parse_list,
)
from mig_conformance.common.errors import InputError
from mig_conformance.gpus.profile_names import lgip_gib, parse_profile

MIB_GRANULE = 64  # every MIG memory size seen in MiB is a multiple of 64 MiB (docs/reference/nvml.md#memory-sizes)


def mib_from_gib(value: str) -> tuple[int, str]:
    """MiB for an lgip GiB value: the multiple of 64 MiB printing as `value` [DERIVED], with a note."""
    approx = float(value) * 1024
    lo, hi = int(approx - 16) // MIB_GRANULE, int(approx + 16) // MIB_GRANULE + 1
    hits = [m * MIB_GRANULE for m in range(lo, hi + 1) if lgip_gib(m * MIB_GRANULE) == value]
    if len(hits) == 1:
        return hits[0], f"[DERIVED] memory_mib from lgip GiB {value} (the multiple of 64 MiB printing as {value})"
    return round(approx), f"[DERIVED] memory_mib ~ lgip GiB {value} x 1024 (no unique multiple of 64 MiB)"


def _rev2_names(rows: list[LgipRow]) -> set[str]:
    """1g profiles without attributes beyond the smallest one are 1_SLICE_REV2 (double memory)."""
    plain = []
    for r in rows:
        try:
            p = parse_profile(r.name)
        except ValueError:
            continue
        if p.g == 1 and not p.attributes and r.memory_known:
            plain.append(r)
    if len(plain) < 2:
        return set()
    smallest = min(float(r.memory_value) for r in plain)
    return {r.name for r in plain if float(r.memory_value) > smallest}


def _text_profile(row: LgipRow, placements: LgippRow | None, rev2: bool, source: str) -> ObservedProfile:
    notes = ["[DERIVED] nvml_index from the profile name (go-nvlib mapping, docs/reference/nvml.md#profile-names)"]
    memory: int | None = None  # stays None for a '?' cell
    if row.memory_known and row.memory_unit.lower() == "mib":
        memory = int(float(row.memory_value))
    elif row.memory_known:
        memory, note = mib_from_gib(row.memory_value)
        notes.append(note)
    index = gi_index_from_name(row.name, rev2)
    reasons = []
    values = {"memory": row.memory if row.memory_known else None, "p2p": row.p2p, "sm": row.sm, "dec": row.dec,
              "enc": row.enc, "ce": row.ce, "jpeg": row.jpeg, "ofa": row.ofa}
    unknown = [k for k, v in values.items() if v is None and k != "p2p"]
    if unknown:
        reasons.append(f"printed as unknown ('?') in the input: {', '.join(unknown)}")
    if not placements:
        reasons.append("placements unknown: no nvidia-smi mig -lgipp output for this profile")
    if index is None:
        reasons.append(f"NVML index unknown for profile name {row.name}")
    reason = "; ".join(reasons) or None
    return ObservedProfile(
        name=row.name, id=row.id, nvml_index=index, max_instances=row.total, slices=parse_profile(row.name).g,
        sm=row.sm, memory_mib=memory,
        engines={"ce": row.ce, "dec": row.dec, "enc": row.enc, "jpeg": row.jpeg, "ofa": row.ofa}, p2p=row.p2p,
        placements={"starts": list(placements.starts), "size": placements.size} if placements else None,
        source=source, notes=notes, reason=reason)


def _placement_for(rows: list[LgippRow], gpu: int, profile_id: int) -> LgippRow | None:
    exact = [r for r in rows if r.gpu == gpu and r.id == profile_id]
    same_id = [r for r in rows if r.id == profile_id]
    return exact[0] if exact else (same_id[0] if len({r.gpu for r in same_id}) == 1 else None)


def parse_nvidia_smi_text(lgip_text: str, lgipp_text: str | None = None, *, list_text: str | None = None,
                          name: str | None = None, memory_total_mib: int | None = None, driver: str | None = None,
                          pci_device_ids: Iterable[str] = (), architecture: str = "",
                          source: str = "nvidia-smi mig -lgip/-lgipp text") -> dict[str, dict[str, Any]]:
    """Catalog entries from `nvidia-smi mig -lgip` (+ `-lgipp`, + `-L` for names) text, one per GPU model."""
    problems = lgip_problems(lgip_text) + (lgipp_problems(lgipp_text) if lgipp_text else [])
    if problems:
        raise InputError(f"the nvidia-smi text is not complete: {'; '.join(problems)}")
    rows = parse_lgip(lgip_text)
    placements = parse_lgipp(lgipp_text) if lgipp_text else []
    names = {g.index: g.name for g in parse_list(list_text)} if list_text else {}
    entries: dict[str, dict[str, Any]] = {}
    for gpu in sorted({r.gpu for r in rows}):
        mine = [r for r in rows if r.gpu == gpu]
        rev2 = _rev2_names(mine)
        profiles = [_text_profile(r, _placement_for(placements, gpu, r.id), r.name in rev2, source) for r in mine]
        gpu_name = names.get(gpu, name)
        facts = DeviceFacts(nvml_name=gpu_name, memory_total_mib=memory_total_mib,
                            pci_device_ids=list(pci_device_ids), architecture=architecture, driver=driver,
                            source=f"{source}; sm_count [DERIVED] = SM count of the widest GI profile")
        add_entry(entries, build_entry(facts, profiles), gpu)
    return entries
