"""Capture GPU catalog entries from a live NVML (read-only) or from saved `nvidia-smi mig` text.

`capture_nvml` only calls NVML `...Get...` functions: it never changes MIG mode, creates or destroys
instances, or resets a GPU. Both captures (`parse_nvidia_smi_text` lives in capture_text.py) return
`{key: entry}`, one entry per GPU model, in the docs/catalog-schema.md format.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import yaml

from mig_conformance.capture.catalog_entry import (
    ARCHITECTURES,
    DeviceFacts,
    ObservedProfile,
    add_entry,
    build_entry,
)
from mig_conformance.capture.nvml_queries import (
    GiProfileInfo,
    Nvml,
    call_or_none,
    ci_possible_placements,
    ci_profiles,
    device_handles,
    gi_profiles,
    gpu_instances,
    possible_placements,
    text,
    unconfirmed_note,
    unknown_fields,
)
from mig_conformance.capture.text import mib_from_gib, parse_nvidia_smi_text
from mig_conformance.common.errors import InputError
from mig_conformance.gpus.profile_names import memory_gb
from mig_conformance.mig.profile_indices import GI_BY_INDEX


def _placements(found: list[tuple[int, int]]) -> dict[str, Any] | None:
    if not found:
        return None
    sizes = {size for _, size in found}
    return {"starts": sorted(start for start, _ in found), "size": max(sizes)}


def _ci_placements(nvml: Nvml, gi: Any, profile_id: int, slices: int, instances: int,
                   source: str) -> dict[str, Any] | None:
    """A CI row's `placements` when NVML lists them and they differ from the schema formula, else None."""
    found = ci_possible_placements(nvml, gi, profile_id)
    if not found or found == [(i * slices, slices) for i in range(instances)] or len({z for _, z in found}) > 1:
        return None
    return {"starts": [s for s, _ in found], "size": found[0][1], "confirmed": True, "reason": None,
            "source": f"{source}; nvmlGpuInstanceGetComputeInstancePossiblePlacements"}


def _observed_cis(nvml: Nvml, gi: Any, gi_slices: int, source: str) -> list[dict[str, Any]] | None:
    """CI rows read from an existing GI; the default is the whole-GI CI with the highest index [DERIVED]."""
    found = ci_profiles(nvml, gi)
    if not found:
        return None
    whole = [c for c in found if c.slices == gi_slices]
    default_index = max(c.index for c in whole) if whole else None
    rows = []
    for c in found:
        row: dict[str, Any]  # values of several types; "placements" joins them below
        row = {"name": c.name, "nvml_index": c.index, "id": c.id, "slices": c.slices, "max_instances": c.instances,
               "sm": None if "sm" in c.unknown else c.sm, "default": c.index == default_index,
               "confirmed": c.unconfirmed is None, "reason": c.unconfirmed,
               "source": f"{source}; read from an existing GPU instance (default CI [DERIVED])"}
        placements = _ci_placements(nvml, gi, c.id, c.slices, c.instances, source)
        if placements:
            row["placements"] = placements
        rows.append(row)
    return rows


def _value(info: GiProfileInfo, key: str) -> Any:
    """A GI profile value, None when NVML (the kit's simulator) says it is a placeholder."""
    return None if key in info.unknown else getattr(info, key)


def _suffix(gi_index: int) -> str:
    """The attribute suffix of devices of this GI index ('' for an index nvml.h does not define)."""
    known = GI_BY_INDEX.get(gi_index)
    return known.suffix if known else ""


def _device_profiles(nvml: Nvml, handle: Any, total_mib: int, source: str) -> list[ObservedProfile]:
    profiles = []
    for info in gi_profiles(nvml, handle):
        notes = []
        name = info.name
        if name is None:  # v1 struct: no name field
            name = f"{info.slices}g.{memory_gb(info.memory_mib, total_mib)}gb{_suffix(info.index)}"
            notes.append("[DERIVED] name from slices, memory and NVML index (docs/reference/nvml.md#profile-names)")
        existing = call_or_none(nvml, gpu_instances, nvml, handle, info.id) or []
        cis = _observed_cis(nvml, existing[0], info.slices, source) if existing else None
        reason = None
        if info.unconfirmed:
            unknown = f" (unknown: {', '.join(info.unknown)})" if info.unknown else ""
            reason = f"the NVML simulator marks this row unconfirmed{unknown}: {info.unconfirmed}"
        profiles.append(ObservedProfile(
            name=name, id=info.id, nvml_index=info.index, max_instances=info.instances, slices=info.slices,
            sm=_value(info, "sm"), memory_mib=_value(info, "memory_mib"),
            engines={k: _value(info, k) for k in ("ce", "dec", "enc", "jpeg", "ofa")},
            p2p=_value(info, "p2p"), placements=_placements(possible_placements(nvml, handle, info.id)),
            source=source, notes=notes, compute_instances=cis, reason=reason))
    return profiles


def _check_profiles_visible(nvml: Nvml, handle: Any, index: int, name: str) -> None:
    """InputError for a MIG-capable GPU whose driver lists no profiles because MIG mode is disabled (R535)."""
    mode = call_or_none(nvml, nvml.nvmlDeviceGetMigMode, handle)
    if mode is not None and int(mode[0]) == 0:
        raise InputError(f"GPU {index} ({name}) is MIG capable but NVML lists no MIG profiles while MIG mode is "
                         f"disabled (driver {text(nvml.nvmlSystemGetDriverVersion())}; R535 drivers cannot, "
                         f"docs/reference/nvml.md): enable MIG mode (nvidia-smi -i {index} -mig 1) and capture again")


# FP32 cores per SM by CUDA compute capability (CUDA C++ Programming Guide, arithmetic throughput table).
_CORES_PER_SM: dict[tuple[int, ...], int] = {(7, 0): 64, (7, 5): 64, (8, 0): 64, (8, 6): 128, (8, 7): 128,
                                             (8, 9): 128, (9, 0): 128, (10, 0): 128, (12, 0): 128}


def _sm_count(nvml: Nvml, handle: Any) -> tuple[int | None, str]:
    """Whole-GPU SM count and how it was found: device attributes, else cores / cores-per-SM [DERIVED]."""
    attributes = getattr(nvml, "nvmlDeviceGetAttributes", None)
    attrs = call_or_none(nvml, attributes, handle) if attributes else None
    if attrs is not None and bool(getattr(attrs, "multiprocessorCount", 0)):
        return int(attrs.multiprocessorCount), "sm_count = nvmlDeviceGetAttributes multiprocessorCount"
    cores_fn = getattr(nvml, "nvmlDeviceGetNumGpuCores", None)
    cc_fn = getattr(nvml, "nvmlDeviceGetCudaComputeCapability", None)
    cores = call_or_none(nvml, cores_fn, handle) if cores_fn else None
    cc = call_or_none(nvml, cc_fn, handle) if cc_fn else None
    per_sm = _CORES_PER_SM.get(tuple(int(x) for x in cc)) if cc else None
    if cores and per_sm and cc and int(cores) % per_sm == 0:
        return int(cores) // per_sm, (f"sm_count [DERIVED] = nvmlDeviceGetNumGpuCores {cores} / {per_sm} FP32 cores "
                                      f"per SM (compute capability {cc[0]}.{cc[1]})")
    return None, "sm_count [DERIVED] = SM count of the widest GI profile (the whole GPU may have more)"


def _architecture(nvml: Nvml, handle: Any) -> str:
    fn = getattr(nvml, "nvmlDeviceGetArchitecture", None)
    arch = call_or_none(nvml, fn, handle) if fn is not None else None
    return ARCHITECTURES.get(int(arch), "") if isinstance(arch, int) else ""


def capture_nvml(nvml: Nvml, *, host: str | None = None, when: datetime | None = None) -> dict[str, dict[str, Any]]:
    """One catalog entry per GPU model seen by an initialised NVML (`nvml` = pynvml or the simulator)."""
    driver = text(nvml.nvmlSystemGetDriverVersion())
    stamp = (when or datetime.now(UTC)).strftime("%Y-%m-%d")
    source = f"capture --nvml on {host or socket.gethostname()} driver {driver} {stamp}"
    entries: dict[str, dict[str, Any]] = {}
    for index, handle in enumerate(device_handles(nvml)):
        name = text(nvml.nvmlDeviceGetName(handle))
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        total_mib = int(memory.total) // 2**20
        pci = int(nvml.nvmlDeviceGetPciInfo(handle).pciDeviceId) & 0xFFFFFFFF
        sm_count, sm_note = _sm_count(nvml, handle)
        notes = [sm_note]
        if "total" in unknown_fields(memory):
            notes.append(f"memory_total_mib unknown ({unconfirmed_note(memory)})")
        facts = DeviceFacts(nvml_name=name, memory_total_mib=None if "total" in unknown_fields(memory) else total_mib,
                            pci_device_ids=[f"0x{pci:08X}"], architecture=_architecture(nvml, handle), driver=driver,
                            source="; ".join([source, *notes]), sm_count=sm_count)
        profiles = _device_profiles(nvml, handle, total_mib, source)
        if not profiles:
            _check_profiles_visible(nvml, handle, index, name)
        entry = build_entry(facts, profiles)
        add_entry(entries, entry, index)
    return entries


def entries_yaml(entries: dict[str, dict[str, Any]], header: Iterable[str] = ()) -> str:
    """Entries as YAML (one document per entry), leaf mappings and lists in flow style like the catalog."""
    comments = "".join(f"# {line}\n" for line in header)
    docs = [yaml.safe_dump(e, sort_keys=False, default_flow_style=None, width=10_000, allow_unicode=True)
            for e in entries.values()]
    return comments + "---\n".join(docs)


__all__ = ["capture_nvml", "entries_yaml", "mib_from_gib", "parse_nvidia_smi_text"]
