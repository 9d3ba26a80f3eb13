"""Placement engine: does a set of MIG devices fit on one GPU, where, and which layouts exist.

Rules (docs/reference/profiles.md#placements): a GPU instance (GI) takes `size` memory slots from one of its profile's
placement starts; GIs may not overlap; the GIs' compute slices add up to at most the GPU's compute
slices; each profile has a maximum instance count; a profile with `coexists_only_with` may only share
the GPU with those profiles. Compute instances (CIs) are packed into GIs the way mig-parted does.
"""

from __future__ import annotations

import functools
import itertools
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from mig_conformance.common.identity import ByIdentity
from mig_conformance.gpus.catalog import CiProfile, GiProfile, GpuModel
from mig_conformance.gpus.profile_names import ProfileFormatError, ProfileName, parse_profile
from mig_conformance.mig.config import flatten, flatten_order


@dataclass(frozen=True)
class PlacedGi:
    """One GPU instance at a concrete placement, with the MIG devices (CIs) inside it."""

    profile: str
    start: int
    size: int
    gi_id: int
    compute_instances: tuple[str, ...]

    def as_dict(self) -> dict[str, object]:
        return {"profile": self.profile, "start": self.start, "size": self.size, "gi_id": self.gi_id,
                "devices": list(self.compute_instances)}


@dataclass(frozen=True)
class FitResult:
    """Outcome of fit(): a placement, or the reason there is none."""

    gpu: str
    devices: dict[str, int]
    placement: tuple[PlacedGi, ...] = ()
    reason: str | None = None
    unconfirmed: tuple[str, ...] = ()

    @property
    def fits(self) -> bool:
        return self.reason is None

    def as_dict(self) -> dict[str, object]:
        return {"gpu": self.gpu, "devices": self.devices, "fits": self.fits, "reason": self.reason,
                "placement": [p.as_dict() for p in self.placement], "unconfirmed": list(self.unconfirmed)}


@dataclass
class _GiRequest:
    gi: GiProfile
    cis: list[CiProfile] = field(default_factory=list)
    used: int = 0  # bitmask of compute slices used inside the GI


def gi_instance_id(gpu: GpuModel, start: int, size: int) -> int:
    """GI id as NVML tends to assign it, a binary-tree node (docs/reference/nvml.md#gi-ids-and-placement-choice)."""
    total = gpu.memory_slots or size
    level, span = 0, total
    while span > size and span % 2 == 0:
        span //= 2
        level += 1
    return ((1 << level) - 1) + start // size


def choose_placement(gpu: GpuModel, gi: GiProfile, occupied: int) -> int | None:
    """NVML's start for CreateGpuInstance without a placement (docs/reference/nvml.md#gi-ids-and-placement-choice).

    Among free starts, pick the one that makes the fewest still-possible placements of any profile
    impossible; ties go to the lowest start. Returns None when no placement is free. Memoized: a pure function
    of the model, the profile and the occupied slots.
    """
    return _choose_placement(ByIdentity(gpu), ByIdentity(gi), occupied)


@functools.lru_cache(maxsize=8192)
def _choose_placement(gpu_ref: ByIdentity[GpuModel], gi_ref: ByIdentity[GiProfile], occupied: int) -> int | None:
    gpu: GpuModel = gpu_ref.obj
    gi: GiProfile = gi_ref.obj
    free = [s for s in gi.placement_starts if not gi.mask(s) & occupied]
    if not free:
        return None
    possible = [p.mask(s) for p in gpu.gi_profiles for s in p.placement_starts if not p.mask(s) & occupied]

    def cost(start: int) -> tuple[int, int]:
        m = gi.mask(start)
        return (sum(1 for pm in possible if pm & m), start)

    return min(free, key=cost)


def _ci_start(req: _GiRequest, ci: CiProfile) -> int | None:
    taken = sum(1 for c in req.cis if c.name == ci.name)
    if taken >= ci.max_instances:
        return None
    for start, size in ci.placements:
        m = ((1 << size) - 1) << start
        if not m & req.used:
            return start
    return None


def pack_compute_instances(gpu: GpuModel, order: list[ProfileName]) -> list[_GiRequest]:
    """Group MIG devices into GIs as mig-parted's apply does: reuse the last GI while it has room."""
    gis: list[_GiRequest] = []
    for name in order:
        resolved = gpu.resolve(name)
        if resolved is None:
            raise KeyError(name.name)
        gi, ci = resolved
        last = gis[-1] if gis else None
        if last is not None and last.gi.nvml_index == gi.nvml_index:
            start = _ci_start(last, ci)
            if start is not None:
                last.cis.append(ci)
                last.used |= ((1 << ci.slices) - 1) << start
                continue
        req = _GiRequest(gi)
        start = _ci_start(req, ci)
        if start is None:
            raise KeyError(name.name)
        req.cis.append(ci)
        req.used = ((1 << ci.slices) - 1) << start
        gis.append(req)
    return gis


def check_gi_multiset(gpu: GpuModel, counts: Mapping[str, int],
                      profiles: Mapping[str, GiProfile] | None = None) -> str | None:
    """Count-level rules (max instances, compute slices, co-existence); None when they hold. `profiles` (name ->
    profile of `gpu`) saves building the map again in loops."""
    profiles = profiles if profiles is not None else {p.name: p for p in gpu.gi_profiles}
    for name, n in counts.items():
        p = profiles[name]
        if n > p.max_instances:
            return f"{n} x {name} exceeds the maximum of {p.max_instances} instances of {name} on {gpu.key}"
    slices = sum(profiles[n].slices * c for n, c in counts.items())
    if gpu.compute_slices is not None and slices > gpu.compute_slices:
        return f"needs {slices} compute slices, {gpu.key} has {gpu.compute_slices}"
    for name in counts:
        allowed = profiles[name].coexists_only_with
        if allowed is None:
            continue
        others = [o for o in counts if o != name and o not in allowed]
        if others:
            return f"{name} cannot share a GPU with {', '.join(sorted(others))} (only with: {', '.join(allowed)})"
    return None


def check_counts(gpu: GpuModel, parsed: Mapping[ProfileName, int],
                 resolved: Mapping[ProfileName, tuple[GiProfile, CiProfile]]) -> str | None:
    """The count rules of check_gi_multiset on the fewest GIs any packing of `parsed` needs, computed from the
    counts alone (the devices are not expanded). Same messages; when no device is a CI smaller than its GI, the
    fewest GIs are exactly the GIs fit() would pack, so the outcome equals check_gi_multiset's."""
    per_gi: dict[str, list[tuple[ProfileName, int, CiProfile]]] = {}
    profiles: dict[str, GiProfile] = {}
    for name in flatten_order(parsed):
        gi, ci = resolved[name]
        per_gi.setdefault(gi.name, []).append((name, parsed[name], ci))
        profiles[gi.name] = gi
    fewest: Counter[str] = Counter()
    for gi_name, wanted in per_gi.items():
        gi = profiles[gi_name]
        by_count = max(-(-n // max(ci.max_instances, 1)) for _, n, ci in wanted)
        by_slices = -(-sum(n * ci.slices for _, n, ci in wanted) // max(gi.slices, 1))
        fewest[gi_name] = max(by_count, by_slices)
    packed = {g for g, wanted in per_gi.items() if any(ci.slices < profiles[g].slices for _, _, ci in wanted)}
    for gi_name, n in fewest.items():
        most = profiles[gi_name].max_instances
        if n > most and gi_name in packed:
            names = ", ".join(f"{c} x {p.name}" for p, c, _ in per_gi[gi_name])
            return f"{names} need at least {n} GPU instances of {gi_name}, {gpu.key} allows {most}"
        if n > most:
            return f"{n} x {gi_name} exceeds the maximum of {most} instances of {gi_name} on {gpu.key}"
    slices = sum(profiles[g].slices * n for g, n in fewest.items())
    if gpu.compute_slices is not None and slices > gpu.compute_slices:
        return f"needs {'at least ' if packed else ''}{slices} compute slices, {gpu.key} has {gpu.compute_slices}"
    return None


def _search(gpu: GpuModel, gis: list[GiProfile]) -> list[int] | None:
    """Backtracking: concrete non-overlapping starts for `gis` (largest first), or None."""
    order = sorted(range(len(gis)), key=lambda i: (-gis[i].placement_size, len(gis[i].placement_starts)))
    starts: list[int] = [0] * len(gis)

    def step(k: int, occupied: int) -> bool:
        if k == len(order):
            return True
        gi = gis[order[k]]
        preferred = choose_placement(gpu, gi, occupied)
        candidates = sorted(gi.placement_starts, key=lambda s: (s != preferred, s))
        for s in candidates:
            m = gi.mask(s)
            if m & occupied:
                continue
            starts[order[k]] = s
            if step(k + 1, occupied | m):
                return True
        return False

    return starts if step(0, 0) else None


def parse_device_counts(devices: Mapping[str, int]) -> dict[ProfileName, int]:
    """Parse `{profile: count}` keys; ValueError names the bad key."""
    parsed: dict[ProfileName, int] = {}
    for key, n in devices.items():
        try:
            parsed[parse_profile(key)] = parsed.get(parse_profile(key), 0) + int(n)
        except ProfileFormatError as exc:
            raise ValueError(f"invalid format for '{key}': {exc}") from None
    return parsed


def _check_requests(gpu: GpuModel, requests: list[_GiRequest]) -> tuple[str | None, list[int] | None]:
    """(reason, None) when the GIs break a count rule or cannot be placed, else (None, starts)."""
    problem = check_gi_multiset(gpu, Counter(r.gi.name for r in requests))
    if problem:
        return problem, None
    starts = _search(gpu, [r.gi for r in requests])
    if starts is None:
        return ("no non-overlapping placement of these GPU instances exists "
                f"on {gpu.key}'s {gpu.memory_slots} memory slots"), None
    return None, starts


def _fewest_gi_packing(gpu: GpuModel, order: list[ProfileName]) -> list[_GiRequest] | None:
    """Per GI profile, the distinct CI ordering that needs the fewest GIs (None if a group is too large).

    mig-parted's apply tries every distinct permutation; interleaving GI profiles only adds GIs, so
    the best orderings keep each GI profile's CIs together.
    """
    groups: dict[int, list[ProfileName]] = {}
    for name in order:
        resolved = gpu.resolve(name)
        if resolved is None:
            return None
        groups.setdefault(resolved[0].nvml_index, []).append(name)
    packed: list[_GiRequest] = []
    for names in groups.values():
        if len(names) > (gpu.compute_slices or 0):
            return None
        best = min((pack_compute_instances(gpu, list(p)) for p in sorted(set(itertools.permutations(names)))),
                   key=len)
        packed.extend(best)
    return packed


def fit(gpu: GpuModel, devices: Mapping[str, int]) -> FitResult:
    """Whether `devices` ({MIG device profile: count}) fit on one GPU, with a concrete placement."""
    wanted = {k: int(v) for k, v in devices.items()}
    unconfirmed: list[str] = []
    if not gpu.mig_capable:
        return FitResult(gpu.key, wanted, reason=f"{gpu.key} is not MIG capable")
    try:
        parsed = parse_device_counts(wanted)
    except ValueError as exc:
        return FitResult(gpu.key, wanted, reason=str(exc))
    if any(n < 0 for n in parsed.values()):
        return FitResult(gpu.key, wanted, reason="counts must not be negative")
    parsed = {p: n for p, n in parsed.items() if n > 0}
    resolved_all: dict[ProfileName, tuple[GiProfile, CiProfile]] = {}
    for p in parsed:
        resolved = gpu.resolve(p)
        if resolved is None:
            known = ", ".join(g.name for g in gpu.gi_profiles)
            return FitResult(gpu.key, wanted, reason=f"profile {p.name} does not exist on {gpu.key} (known: {known})")
        resolved_all[p] = resolved
        if not resolved[0].confirmed:
            unconfirmed.append(f"{resolved[0].name}: {resolved[0].reason}")
    problem = check_counts(gpu, parsed, resolved_all)
    if problem:  # before expanding one list entry per device: counts may be huge
        return FitResult(gpu.key, wanted, reason=problem, unconfirmed=tuple(unconfirmed))
    try:
        requests = pack_compute_instances(gpu, flatten(parsed))
    except KeyError as exc:
        return FitResult(gpu.key, wanted, reason=f"too many compute instances of {exc.args[0]} for one GPU instance")
    problem, starts = _check_requests(gpu, requests)
    if problem:  # mig-parted also tries every other ordering: its CIs may then need fewer GIs
        fewer = _fewest_gi_packing(gpu, flatten(parsed))
        if fewer is not None and len(fewer) < len(requests) and _check_requests(gpu, fewer)[0] is None:
            requests = fewer
            problem, starts = _check_requests(gpu, requests)
    if problem or starts is None:
        return FitResult(gpu.key, wanted, reason=problem, unconfirmed=tuple(unconfirmed))
    placed = tuple(sorted(
        (PlacedGi(r.gi.name, s, r.gi.placement_size, gi_instance_id(gpu, s, r.gi.placement_size),
                  tuple(c.name for c in r.cis)) for r, s in zip(requests, starts, strict=True)),
        key=lambda p: p.start))
    return FitResult(gpu.key, wanted, placed, unconfirmed=tuple(unconfirmed))


@dataclass(frozen=True)
class Layout:
    """A multiset of GI profiles that fits on one GPU, with one concrete placement."""

    devices: dict[str, int]
    placement: tuple[tuple[str, int, int], ...]

    def as_dict(self) -> dict[str, object]:
        return {"devices": self.devices,
                "placement": [{"profile": p, "start": s, "size": z} for p, s, z in self.placement]}


_Placed = tuple[tuple[str, int, int], ...]  # a Layout.placement being built


def enumerate_layouts(gpu: GpuModel, profiles: Iterable[GiProfile] | None = None) -> list[Layout]:
    """Every non-empty multiset of GI profiles that fits on `gpu` (one CI per GI)."""
    if not gpu.mig_capable:
        return []
    plist = list(profiles if profiles is not None else gpu.gi_profiles)
    by_name = {p.name: p for p in gpu.gi_profiles}
    slots = {p.name: [(s, p.mask(s)) for s in p.placement_starts] for p in plist}  # (start, slot mask), once
    results: list[Layout] = []

    def place_one_more(gi: GiProfile, states: dict[int, _Placed]) -> dict[int, _Placed]:
        """The occupancies reachable by adding one `gi` to each state (one placement kept per occupancy)."""
        out: dict[int, _Placed] = {}
        for occ, placed in states.items():
            for start, mask in slots[gi.name]:
                if not mask & occ and (new := occ | mask) not in out:
                    out[new] = (*placed, (gi.name, start, gi.placement_size))
        return out

    def dfs(i: int, counts: dict[str, int], states: dict[int, _Placed]) -> None:
        if i == len(plist):
            if counts:
                placement = min(states.values(), key=lambda pl: tuple(sorted(x[1] for x in pl)))
                results.append(Layout(dict(counts), tuple(sorted(placement, key=lambda x: x[1]))))
            return
        gi = plist[i]
        dfs(i + 1, counts, states)
        for k in range(1, gi.max_instances + 1):
            if check_gi_multiset(gpu, {**counts, gi.name: k}, by_name):
                break
            states = place_one_more(gi, states)
            if not states:
                break
            dfs(i + 1, {**counts, gi.name: k}, states)

    dfs(0, {}, {0: ()})
    return results


def maximal_layouts(gpu: GpuModel, layouts: list[Layout] | None = None) -> list[Layout]:
    """Layouts to which no further GI can be added."""
    layouts = layouts if layouts is not None else enumerate_layouts(gpu)
    keys = {frozenset(lay.devices.items()) for lay in layouts}
    out = []
    for lay in layouts:
        grown = False
        for p in gpu.gi_profiles:
            bigger = dict(lay.devices)
            bigger[p.name] = bigger.get(p.name, 0) + 1
            if frozenset(bigger.items()) in keys:
                grown = True
                break
        if not grown:
            out.append(lay)
    return out
