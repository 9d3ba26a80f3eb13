"""`nvidia-smi -L` and `nvidia-smi mig -lgip/-lgipp/-lgi/-lci` text, rendered from any pynvml-shaped module.

Layouts are those of driver 580. `-lgip` and `-lgipp` reproduce the NVML captures byte for byte
(tests/data/captures/*-580/lgip.txt, lgipp.txt): 81-character box, two lines per profile, rows in
the order (compute slices, memory, profile ID) that every captured listing shows [DERIVED].

`-lgi` (59-character box) and `-lci` (70-character box) are derived from public captures of the same
table generation (81-character `-lgip` next to them): the A100 walk-through in ssup2/blog-software
`content/docs/theory-analysis/nvidia-gpu-sharing/index.en.md` (shell 4 and 5), and an H100 80GB HBM3
walk-through (hrishi.dev "nvidia-cuda-gpu-on-kube" series, public copy) whose `-lgip` equals ours.
Their row order (GIs by profile in `-lgip` order, then GI id; CIs following their GI) matches those
captures and docs/reference/nvml.md#gi-ids-and-placement-choice.

`-L` MIG lines follow the layout of NVIDIA's MIG User Guide, "MIG Device Names" / "Device Enumeration"
(`  MIG 1g.10gb     Device  0: (UUID: MIG-...)`); the 12-column name field is [DERIVED] from those
examples and public copies of them. Only NVML Get calls are made: rendering never changes state.

Unconfirmed values (kit simulator only; real pynvml never has any): a value the GPU catalog does not know is
printed as `?` in its column, and `run()` puts one `note:` line on stderr per GPU and row that is not confirmed,
with the catalog's reason (NOTE_HEAD first). Output of confirmed GPUs is unchanged and has no notes.
Run on the real pynvml of an H100 and an H200 (driver 580.159.04, MIG disabled, .devcap/run_capture.sh),
-L, -lgip, -lgipp, -lgi and -lci printed exactly what nvidia-smi printed there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mig_conformance.capture.nvml_queries import (
    GiProfileInfo,
    Nvml,
    call_or_none,
    ci_profiles,
    compute_instances,
    constant,
    device_handles,
    device_notes,
    gi_profiles,
    gpu_instances,
    mig_device_handles,
    mig_enabled,
    possible_placements,
    text,
)
from mig_conformance.gpus.profile_names import lgip_gib

NO_MIG = "No MIG-enabled devices found."  # captured lgi.txt / lci.txt with MIG disabled (exit status 0)
NO_GI = "No GPU instances found: Not Found"  # docs/reference/nvidia-smi.md#messages; exit status [UNCONFIRMED]
NO_CI = "No compute instances found: Not Found"  # [DERIVED] by analogy with NO_GI
NO_DEVICE = "No devices were found"  # [UNCONFIRMED] text for an -i that matches no GPU
UNKNOWN = "?"  # printed for a value the GPU catalog does not know
NOTE_HEAD = "note: simulated values not confirmed by the GPU catalog ('?' = unknown):"

_LGIP_RULE = "+" + "-" * 79 + "+"
_LGIP_HEAD = (
    _LGIP_RULE,
    "| GPU instance profiles:                                                        |",
    "| GPU   Name               ID    Instances   Memory     P2P    SM    DEC   ENC  |",
    "|                                Free/Total   GiB              CE    JPEG  OFA  |",
    "|" + "=" * 79 + "|",
)
_LGI_RULE = "+" + "-" * 57 + "+"
_LGI_HEAD = (
    _LGI_RULE,
    "| GPU instances:                                          |",
    "| GPU   Name               Profile  Instance   Placement  |",
    "|                            ID       ID       Start:Size |",
    "|" + "=" * 57 + "|",
)
_LCI_RULE = "+" + "-" * 68 + "+"
_LCI_HEAD = (
    _LCI_RULE,
    "| Compute instances:                                                 |",
    "| GPU     GPU       Name             Profile   Instance   Placement  |",
    "|       Instance                       ID        ID       Start:Size |",
    "|         ID                                                         |",
    "|" + "=" * 68 + "|",
)


@dataclass(frozen=True)
class SmiResult:
    """What one nvidia-smi invocation prints and returns."""

    code: int
    stdout: str
    stderr: str = ""


def _ordered(profiles: list[GiProfileInfo]) -> list[GiProfileInfo]:
    return sorted(profiles, key=lambda p: (p.slices, p.memory_mib, p.id))


def _selected(nvml: Nvml, gpus: Sequence[int] | None) -> list[tuple[int, Any]]:
    handles = list(enumerate(device_handles(nvml)))
    return handles if gpus is None else [(i, h) for i, h in handles if i in set(gpus)]


def _lines(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)


def render_list(nvml: Nvml) -> str:
    """`nvidia-smi -L`: one line per GPU, its MIG devices indented below it."""
    out = []
    for i, handle in enumerate(device_handles(nvml)):
        out.append(f"GPU {i}: {text(nvml.nvmlDeviceGetName(handle))} (UUID: {text(nvml.nvmlDeviceGetUUID(handle))})")
        for k, mig in enumerate(mig_device_handles(nvml, handle)):
            name = text(nvml.nvmlDeviceGetName(mig)).rsplit("MIG ", 1)[-1]
            out.append(f"  MIG {name:<11} Device {k:>2}: (UUID: {text(nvml.nvmlDeviceGetUUID(mig))})")
    return _lines(out)


def _profile_rows(nvml: Nvml, gpus: Sequence[int] | None) -> list[tuple[int, Any, GiProfileInfo]]:
    return [(i, h, p) for i, h in _selected(nvml, gpus) for p in _ordered(gi_profiles(nvml, h))]


def _value(p: GiProfileInfo, key: str, text: str) -> str:
    return text if p.known(key) else UNKNOWN


def render_lgip(nvml: Nvml, gpus: Sequence[int] | None = None) -> str:
    """`nvidia-smi mig -lgip`; Free = nvmlDeviceGetGpuInstanceRemainingCapacity; `?` = unknown value."""
    rows = _profile_rows(nvml, gpus)
    if not rows:
        return NO_MIG + "\n"
    out = list(_LGIP_HEAD)
    for i, handle, p in rows:
        free = call_or_none(nvml, nvml.nvmlDeviceGetGpuInstanceRemainingCapacity, handle, p.id)
        name = f"MIG {p.name}" if p.name else f"MIG profile {p.id}"
        v = {k: _value(p, k, t) for k, t in (("memory_mib", lgip_gib(p.memory_mib)), ("p2p", "Yes" if p.p2p else "No"),
                                             ("sm", str(p.sm)), ("dec", str(p.dec)), ("enc", str(p.enc)),
                                             ("ce", str(p.ce)), ("jpeg", str(p.jpeg)), ("ofa", str(p.ofa)))}
        out.append(f"|{i:>4}  {name:<19}{p.id:>3}{free or 0:>6}/{p.instances:<3}      {v['memory_mib']:<11}"
                   f"{v['p2p']:<7}{v['sm']:<6}{v['dec']:>2}{v['enc']:>6}   |")
        out.append(f"|{'':62}{v['ce']:>2}{v['jpeg']:>6}{v['ofa']:>6}   |")
        out.append(_LGIP_RULE)
    return _lines(out)


def render_lgipp(nvml: Nvml, gpus: Sequence[int] | None = None) -> str:
    """`nvidia-smi mig -lgipp`: `{starts}:size` per profile ID ('Placement :' when there is one)."""
    rows = _profile_rows(nvml, gpus)
    if not rows:
        return NO_MIG + "\n"
    out = []
    for i, handle, p in rows:
        found = possible_placements(nvml, handle, p.id)
        by_size: dict[int, list[int]] = {}
        for start, size in found:
            by_size.setdefault(size, []).append(start)
        groups = " ".join("{" + ",".join(str(s) for s in starts) + f"}}:{size}" for size, starts in by_size.items())
        label = "Placements:" if len(found) > 1 else "Placement :"
        out.append(f"GPU {i:>2} Profile ID {p.id:>2} {label} {groups}")
    return _lines(out)


def _gi_rows(nvml: Nvml, gpus: Sequence[int] | None) -> tuple[list[tuple[int, Any, GiProfileInfo, Any]], bool]:
    """(gpu, GI handle, GI profile, GI info) in -lgi order, and whether any selected GPU has MIG on."""
    found = []
    enabled = False
    for i, handle in _selected(nvml, gpus):
        if not mig_enabled(nvml, handle):
            continue
        enabled = True
        for p in _ordered(gi_profiles(nvml, handle)):
            gis = [(nvml.nvmlGpuInstanceGetInfo(g), g) for g in gpu_instances(nvml, handle, p.id)]
            for info, gi in sorted(gis, key=lambda x: int(x[0].id)):
                found.append((i, gi, p, info))
    return found, enabled


def _gi_table(nvml: Nvml, gpus: Sequence[int] | None) -> tuple[list[tuple[int, Any, str, Any]], bool]:
    """(gpu, GI handle, GI profile name, GI info) in -lgi order, and whether any selected GPU has MIG on."""
    rows, enabled = _gi_rows(nvml, gpus)
    return [(i, gi, f"MIG {p.name}", info) for i, gi, p, info in rows], enabled


def render_lgi(nvml: Nvml, gpus: Sequence[int] | None = None) -> SmiResult:
    """`nvidia-smi mig -lgi`."""
    rows, enabled = _gi_table(nvml, gpus)
    if not enabled:
        return SmiResult(0, NO_MIG + "\n")
    if not rows:
        return SmiResult(constant(nvml, "NVML_ERROR_NOT_FOUND", 6), NO_GI + "\n")
    out = list(_LGI_HEAD)
    for i, _, name, info in rows:
        where = f"{info.placement.start}:{info.placement.size}"
        out.append(f"|{i:>4}  {name:<19}{info.profileId:>5}{info.id:>9}{where:>13}     |")
        out.append(_LGI_RULE)
    return SmiResult(0, _lines(out))


def render_lci(nvml: Nvml, gpus: Sequence[int] | None = None) -> SmiResult:
    """`nvidia-smi mig -lci`: CIs grouped under their GI in -lgi order, by CI profile then CI id."""
    gis, enabled = _gi_table(nvml, gpus)
    if not enabled:
        return SmiResult(0, NO_MIG + "\n")
    if not gis:
        return SmiResult(constant(nvml, "NVML_ERROR_NOT_FOUND", 6), NO_GI + "\n")
    out = list(_LCI_HEAD)
    for i, gi, _, gi_info in gis:
        for cp in ci_profiles(nvml, gi):
            infos = sorted((nvml.nvmlComputeInstanceGetInfo(c) for c in compute_instances(nvml, gi, cp.id)),
                           key=lambda c: int(c.id))
            for c in infos:
                where = f"{c.placement.start}:{c.placement.size}"
                out.append(f"|{i:>4}{gi_info.id:>7}       {'MIG ' + (cp.name or ''):<19}{c.profileId:>3}"
                           f"{c.id:>10}{where:>13}     |")
                out.append(_LCI_RULE)
    if len(out) == len(_LCI_HEAD):
        return SmiResult(constant(nvml, "NVML_ERROR_NOT_FOUND", 6), NO_CI + "\n")
    return SmiResult(0, _lines(out))


def _device_notes(nvml: Nvml, gpus: Sequence[int] | None) -> list[str]:
    return [f"GPU {i}: {n}" for i, h in _selected(nvml, gpus) for n in device_notes(nvml, h)]


def unconfirmed_notes(nvml: Nvml, command: str, gpus: Sequence[int] | None = None) -> list[str]:
    """The `note:` lines for one command ('-L', '-lgip', '-lgipp', '-lgi' or '-lci'); [] when all is confirmed."""
    rows: list[tuple[int, str | None, str]] = []  # (GPU, profile name, note); rows with one note share a line
    if command in ("-lgip", "-lgipp"):
        rows += [(i, p.name, p.unconfirmed) for i, _, p in _profile_rows(nvml, gpus) if p.unconfirmed]
    elif command in ("-lgi", "-lci"):
        for i, gi, p, _ in _gi_rows(nvml, gpus)[0]:
            if p.unconfirmed:
                rows.append((i, p.name, p.unconfirmed))
            if command == "-lci":
                rows += [(i, cp.name, cp.unconfirmed) for cp in ci_profiles(nvml, gi)
                         if cp.unconfirmed and compute_instances(nvml, gi, cp.id)]
    grouped: dict[tuple[int, str], list[str]] = {}
    for i, name, note in rows:
        names = grouped.setdefault((i, note), [])
        if name and name not in names:
            names.append(name)
    notes = _device_notes(nvml, gpus) + [f"GPU {i}: MIG {', '.join(names)}: {note}"
                                         for (i, note), names in grouped.items()]
    return [NOTE_HEAD, *(f"note: {n}" for n in dict.fromkeys(notes))] if notes else []


def _with_notes(result: SmiResult, nvml: Nvml, command: str, gpus: Sequence[int] | None) -> SmiResult:
    notes = unconfirmed_notes(nvml, command, gpus)
    return SmiResult(result.code, result.stdout, result.stderr + _lines(notes)) if notes else result


USAGE = "usage: nvidia-smi [-L] | nvidia-smi mig (-lgip | -lgipp | -lgi | -lci) [-i ID[,ID...]]"


def _gpu_filter(nvml: Nvml, value: str) -> list[int] | None:
    """Indices for `-i`: indices or GPU UUIDs, comma separated; None if one matches nothing."""
    handles = device_handles(nvml)
    uuids = {text(nvml.nvmlDeviceGetUUID(h)): i for i, h in enumerate(handles)}
    chosen = []
    for part in (p.strip() for p in value.split(",")):
        if part.isdigit() and int(part) < len(handles):
            chosen.append(int(part))
        elif part in uuids:
            chosen.append(uuids[part])
        else:
            return None
    return chosen


def run(nvml: Nvml, argv: Sequence[str]) -> SmiResult:
    """Dispatch an nvidia-smi command line (without the program name)."""
    args = list(argv)
    if args == ["-L"] or args == ["--list-gpus"]:
        return _with_notes(SmiResult(0, render_list(nvml)), nvml, "-L", None)
    if not args or args[0] != "mig":
        return SmiResult(2, "", USAGE + "\n")
    rest = args[1:]
    gpus: list[int] | None = None
    for flag in ("-i", "--id"):
        if flag in rest:
            k = rest.index(flag)
            if k + 1 >= len(rest):
                return SmiResult(2, "", USAGE + "\n")
            gpus = _gpu_filter(nvml, rest[k + 1])
            if gpus is None:
                return SmiResult(constant(nvml, "NVML_ERROR_NOT_FOUND", 6), "", NO_DEVICE + "\n")
            del rest[k:k + 2]
    commands = {"-lgip": render_lgip, "--list-gpu-instance-profiles": render_lgip,
                "-lgipp": render_lgipp, "--list-gpu-instance-possible-placements": render_lgipp}
    short = {"--list-gpu-instance-profiles": "-lgip", "--list-gpu-instance-possible-placements": "-lgipp"}
    if len(rest) == 1 and rest[0] in commands:
        return _with_notes(SmiResult(0, commands[rest[0]](nvml, gpus)), nvml, short.get(rest[0], rest[0]), gpus)
    if rest in (["-lgi"], ["--list-gpu-instances"]):
        return _with_notes(render_lgi(nvml, gpus), nvml, "-lgi", gpus)
    if rest in (["-lci"], ["--list-compute-instances"]):
        return _with_notes(render_lci(nvml, gpus), nvml, "-lci", gpus)
    return SmiResult(2, "", USAGE + "\n")
