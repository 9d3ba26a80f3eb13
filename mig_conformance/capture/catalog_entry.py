"""Build GPU catalog entries (docs/catalog-schema.md) from observed GPU-instance profile rows.

Shared by `capture --nvml` (rows read from NVML) and `capture --nvidia-smi-text` (rows parsed from
`nvidia-smi mig -lgip/-lgipp`). The rules for what is derived are the schema's: compute-instance rows
follow go-nvlib's rule, the key is a suggestion from the NVML name and memory size.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from mig_conformance.gpus.profile_names import ProfileFormatError, parse_profile
from mig_conformance.mig.profile_indices import (
    CI_INDEX_BY_SLICES,
    CI_REV1_INDEX,
    GI_REV2_INDEX,
    gi_index_of,
    listed_by_go_nvlib,
)

# NVML_DEVICE_ARCH_* (nvml.h) -> catalog architecture names.
ARCHITECTURES = {2: "kepler", 3: "maxwell", 4: "pascal", 5: "volta", 6: "turing", 7: "ampere", 8: "ada",
                 9: "hopper", 10: "blackwell"}
_KEY_NOISE = re.compile(r"^(NVIDIA|Tesla|\d+GB|HBM\w*|SXM\d*|PCIE)$", re.IGNORECASE)


@dataclass
class ObservedProfile:
    """One GI profile row as seen by a capture, before it becomes a catalog row."""

    name: str
    id: int
    nvml_index: int | None
    max_instances: int
    slices: int
    sm: int | None
    memory_mib: int | None
    engines: dict[str, int | None]
    p2p: bool | None
    placements: dict[str, Any] | None  # {starts: [...], size: N}
    source: str
    notes: list[str] = field(default_factory=list)  # [DERIVED] remarks appended to the source
    compute_instances: list[dict[str, Any]] | None = None  # observed CI rows; None = derive them
    reason: str | None = None  # set when the row is not confirmed

    @property
    def sort_key(self) -> tuple[int, int, int]:
        """lgip order: compute slices, then memory, then profile ID (fits every captured listing)."""
        return (self.slices, self.memory_mib or 0, self.id)


def gi_index_from_name(name: str, rev2: bool = False) -> int | None:
    """NVML GI index for a profile name (`mig.profile_indices.gi_index_of`) [DERIVED]; None if unknown."""
    try:
        return gi_index_of(parse_profile(name), rev2)
    except ProfileFormatError:
        return None


def derive_compute_instances(gi_name: str, gi_index: int | None, slices: int, sm: int | None,
                             source: str) -> list[dict[str, Any]]:
    """CI rows by the schema rule (go-nvlib: skip C > G and C < G with 2C > G+1), marked unconfirmed."""
    reason = "derived by the catalog-schema CI rule; CI profiles can only be read from an existing GPU instance"
    rows: list[dict[str, Any]] = []

    def row(name: str, index: int, c: int, ci_sm: int | None, default: bool) -> dict[str, Any]:
        return {"name": name, "nvml_index": index, "id": index, "slices": c, "max_instances": slices // c,
                "sm": ci_sm, "default": default, "confirmed": False, "reason": reason, "source": source}

    if gi_index == GI_REV2_INDEX:
        return [row(gi_name, CI_INDEX_BY_SLICES[1], 1, sm, False), row(gi_name, CI_REV1_INDEX, 1, sm, True)]
    for c in sorted(CI_INDEX_BY_SLICES):
        if not listed_by_go_nvlib(c, slices):
            continue
        whole = c == slices
        name = gi_name if whole else f"{c}c.{gi_name}"
        ci_sm = sm if whole or sm is None else sm * c // slices
        rows.append(row(name, CI_INDEX_BY_SLICES[c], c, ci_sm, whole))
    return rows


def suggest_key(nvml_name: str, memory_gb: int | None) -> str:
    """Catalog key suggestion: model words of the NVML name plus the memory size ('H100-80GB')."""
    words = [w for w in re.split(r"[\s_-]+", nvml_name.strip()) if w and not _KEY_NOISE.match(w)]
    words = words or ["GPU"]
    return "-".join([*words, f"{memory_gb}GB"]) if memory_gb else "-".join(words)


def total_memory_gb(memory_total_mib: int | None) -> int | None:
    """go-nvlib's totalGB: device memory rounded up to whole GiB (docs/reference/nvml.md#the-gb-number)."""
    return math.ceil(memory_total_mib / 1024) if memory_total_mib else None


def gi_row(p: ObservedProfile) -> dict[str, Any]:
    """One `gi_profiles` row in schema field order."""
    source = "; ".join([p.source, *p.notes])
    cis = p.compute_instances
    if cis is None:
        cis = derive_compute_instances(p.name, p.nvml_index, p.slices, p.sm, f"{p.source}; derived: schema CI rule")
    return {
        "name": p.name, "id": p.id, "nvml_index": p.nvml_index, "max_instances": p.max_instances,
        "slices": p.slices, "sm": p.sm, "memory_mib": p.memory_mib, "engines": dict(p.engines), "p2p": p.p2p,
        "placements": p.placements, "confirmed": p.reason is None, "reason": p.reason, "source": source,
        "compute_instances": cis,
    }


@dataclass
class DeviceFacts:
    """Whole-GPU facts of a captured model."""

    nvml_name: str | None
    memory_total_mib: int | None
    pci_device_ids: list[str]
    architecture: str
    driver: str | None
    source: str
    sm_count: int | None = None  # whole-GPU SMs when NVML told; else the widest GI profile's SM count


def build_entry(device: DeviceFacts, profiles: list[ObservedProfile], key: str | None = None) -> dict[str, Any]:
    """A catalog entry dict (docs/catalog-schema.md field order) for one GPU model."""
    ordered = sorted(profiles, key=lambda p: p.sort_key)
    widest = max(ordered, key=lambda p: p.slices, default=None)
    gb = total_memory_gb(device.memory_total_mib)
    if gb is None and widest is not None:
        gb = parse_profile(widest.name).gb
    name = device.nvml_name or "GPU"
    slots = [s + p.placements["size"] for p in ordered if p.placements for s in p.placements["starts"]]
    rows = [gi_row(p) for p in ordered]
    return {
        "key": key or suggest_key(name, gb),
        "description": f"{device.nvml_name or 'unnamed GPU'} (captured)",
        "aliases": [],
        "nvml_names": [device.nvml_name] if device.nvml_name else [],
        "gfd_products": [device.nvml_name.replace(" ", "-")] if device.nvml_name else [],
        "ec2_names": [],
        "pci_device_ids": list(device.pci_device_ids),
        "architecture": device.architecture,
        "mig_capable": bool(ordered),
        "memory_total_mib": device.memory_total_mib,
        "sm_count": device.sm_count or (widest.sm if widest else None),
        "memory_slots": max(slots) if slots and all(p.placements for p in ordered) else None,
        "compute_slices": widest.slices if widest else None,
        "driver": device.driver,
        "min_driver": None,
        "confirmed": all(r["confirmed"] for r in rows),
        "source": device.source,
        "gi_profiles": rows,
    }


def add_entry(entries: dict[str, dict[str, Any]], entry: dict[str, Any], gpu: int) -> None:
    """Keep one entry per model; a second, different table under the same key gets a '-gpu<N>' key."""
    key = entry["key"]
    if key in entries and entries[key] != entry:
        key = entry["key"] = f"{key}-gpu{gpu}"
    entries.setdefault(key, entry)
