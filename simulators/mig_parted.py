"""`nvidia-mig-parted` apply / assert / export, simulated on top of the NVML simulator (docs/reference/mig-parted.md).

The flow follows mig-parted's command code step by step and talks to the node only through the simulated
NVML calls, so its behaviour comes from the NVML model: the mode walk (clear enabled GPUs, set the mode, reset
every GPU when one is pending), the config walk (Flatten order, then every distinct permutation, reusing the
last GI while its CIs fit), and the [DERIVED] corner cases of apply (a profile that exists on no GPU of the
node clears the GPU and reports success; a zero count never equals the current config).
Messages are mig-parted's; fatal errors are capitalised like `util.Capitalize`.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import yaml

from mig_conformance.common.identity import ByIdentity
from mig_conformance.gpus.device_ids import DeviceID
from mig_conformance.gpus.profile_names import ProfileFormatError, ProfileName, parse_profile
from mig_conformance.mig.config import config_equals, flatten
from mig_conformance.mig.profile_indices import UnnamedProfile, device_name, listed_by_go_nvlib
from mig_conformance.mig.spec import MigConfigEntry, Spec, parse_spec_text
from mig_conformance.simulators import nvml as nv
from mig_conformance.simulators.command_cache import CommandCache

EXIT_OK, EXIT_FAIL = 0, 1

# Bounds of the ordering walk (iteratePermutationsUntilSuccess). mig-parted tries every distinct permutation of the
# flattened devices, by recursion. A request with more MIG devices than the GPU has compute slices fails in every
# order, so only its first ordering is run; the rest have at most 8 devices (docs/reference/nvml.md: at most 8 compute
# slices), and 8! orderings cover them. Past these bounds the simulator stops (with a warning in the log) where real
# mig-parted would keep going for hours, or overflow its stack.
MAX_ORDERINGS = 40320
MAX_WALK_STEPS = 1_000_000
MAX_FLAT_DEVICES = 1024  # the cut when a model's compute slices are unknown
MAX_LOGGED_FAILURES = 1000

class MigPartedFailure(Exception):
    """An error as mig-parted words it (lower-case Go error text)."""


def capitalize(text: str) -> str:
    """mig-parted's util.Capitalize."""
    return text[:1].upper() + text[1:]


@dataclass(frozen=True)
class DeviceProfile:
    """go-nvlib's MigProfileInfo: a MIG device name plus the NVML indices that create it."""

    name: ProfileName
    gi_index: int
    ci_index: int
    ci_eng: int = 0

    def __str__(self) -> str:
        return self.name.name

    def matches(self, text: str) -> bool:
        try:
            return self.name.matches(parse_profile(text))
        except ProfileFormatError:
            return False

    def equals(self, other: DeviceProfile) -> bool:
        mine, theirs = self.name, other.name
        return (mine.c, mine.g, mine.gb, self.gi_index, self.ci_index, self.ci_eng) == (
            theirs.c, theirs.g, theirs.gb, other.gi_index, other.ci_index, other.ci_eng)


@functools.lru_cache(maxsize=4096)
def new_mig_profile(gi_index: int, ci_index: int, ci_eng: int, mig_memory_mib: int,
                    device_memory_bytes: int) -> DeviceProfile:
    """go-nvlib NewMigProfile: the name NVML-created devices get (`mig.profile_indices.device_name`), with the
    indices that create it. Memoized: DeviceProfile is immutable."""
    try:
        name = device_name(gi_index, ci_index, mig_memory_mib, device_memory_bytes // 2**20)
    except UnnamedProfile as exc:
        raise MigPartedFailure(str(exc)) from None
    return DeviceProfile(name, gi_index, ci_index, ci_eng)


def go_map(config: dict[str, int]) -> str:
    """How Go's %v prints a map[string]int (keys sorted)."""
    return "map[" + " ".join(f"{k}:{config[k]}" for k in sorted(config)) + "]"


def _go_value(value: object) -> str:
    if isinstance(value, list | tuple):
        return "[" + " ".join(str(v) for v in value) + "]"
    return str(value)


@dataclass(frozen=True)
class LogEntry:
    """One logrus line; str() gives the text formatter's TTY form."""

    level: str
    message: str

    def __str__(self) -> str:
        return f"{self.level[:4].upper()}[0000] {self.message}"


@dataclass
class GpuOutcome:
    """What one command did to, or found on, one GPU (state read back after the command)."""

    index: int
    device_id: str
    mig_capable: bool
    status: str = "not-selected"
    message: str | None = None
    orderings_tried: int = 0
    mig_mode: list[int] | None = None
    mig_devices: dict[str, int] = field(default_factory=dict)


@dataclass
class MigPartedResult:
    """Exit code, stdout lines, log lines (logrus levels), the fatal error and per-GPU outcomes."""

    command: str
    exit_code: int = EXIT_OK
    stdout: list[str] = field(default_factory=list)
    log: list[LogEntry] = field(default_factory=list)
    error: str | None = None
    output: str | None = None
    gpus: list[GpuOutcome] = field(default_factory=list)
    detail: str | None = None  # why an assert failed (mig-parted logs it at debug level only)

    @property
    def ok(self) -> bool:
        return self.exit_code == EXIT_OK

    def copy(self) -> MigPartedResult:
        """An independent copy (its lists; log entries are frozen and shared). Built directly: `replace` costs
        more than the command it replays."""
        return MigPartedResult(command=self.command, exit_code=self.exit_code, stdout=list(self.stdout),
                               log=list(self.log), error=self.error, output=self.output, gpus=list(self.gpus),
                               detail=self.detail)

    def stderr_lines(self, debug: bool = False) -> list[str]:
        return [str(e) for e in self.log if debug or e.level != "debug"]

    def messages(self, level: str | None = None) -> list[str]:
        return [e.message for e in self.log if level is None or e.level == level]

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["log"] = [str(e) for e in self.log]
        return d


def spec_for(mig_devices: dict[str, int] | None, mig_enabled: bool = True, devices: str | list[int] = "all",
             name: str = "selected") -> Spec:
    """A one-config, one-entry Spec (handy in tests and for `fit`-style checks)."""
    entry: dict[str, Any] = {"devices": devices, "mig-enabled": mig_enabled}
    if mig_devices is not None or mig_enabled:
        entry["mig-devices"] = dict(mig_devices or {})
    text = yaml.safe_dump({"version": "v1", "mig-configs": {name: [entry]}}, sort_keys=False)
    return parse_spec_text(text, f"<{name}>")


@dataclass
class _Item:
    """One Flatten entry. Entries of one key are the same object, as mig-parted compares pointers."""

    key: str
    profile: DeviceProfile


# NVML answers that depend on the GPU model only (profile infos, go-nvlib's profile list), keyed by model identity:
# the simulator answers them from the catalog, so every command on every node reads the same. Bounded (cleared
# when full); models are catalog objects, so in practice it holds a few hundred entries.
_STATIC_ANSWERS: dict[tuple[Any, ...], Any] = {}


def _remember(key: tuple[Any, ...], value: Any) -> None:
    if len(_STATIC_ANSWERS) >= 8192:
        _STATIC_ANSWERS.clear()
    _STATIC_ANSWERS[key] = value


@dataclass
class _Attempt:
    """Where the running ordering attempt got to: the position of the entry being created (-1: still clearing),
    and whether it started from an empty GPU without injected faults (so its outcome depends on the order only)."""

    position: int = -1
    clean: bool = False


def _permutations(counts: Iterable[int]) -> int:
    """Distinct orderings of a multiset with these multiplicities."""
    counts = list(counts)
    result = math.factorial(sum(counts))
    for c in counts:
        result //= math.factorial(c)
    return result


def _remaining_leaves(items: list[_Item], seen: list[set[int]], start: int) -> int:
    """Orderings the walk has still to visit below position `start` - 1 with the current entries fixed before
    `start`: at each deeper position, one subtree per entry not yet tried there. A subtree that fixes entry k of a
    suffix multiset M (m entries, c_k of them k) has perms(M) * c_k / m orderings; perms(M) grows entry by entry."""
    total, suffix, perms = 0, Counter[int](), 1
    for size, level in enumerate(range(len(items) - 1, start - 1, -1), start=1):
        key = id(items[level])
        suffix[key] += 1
        perms = perms * size // suffix[key]
        untried = sum(c for k, c in suffix.items() if k != key and k not in seen[level])
        total += perms * untried // size
    return total


class _FailureLog:
    """The ERRO line of each failed ordering; past MAX_LOGGED_FAILURES a single warning counts the rest."""

    def __init__(self, parted: MigParted) -> None:
        self.parted, self.logged, self.unlogged, self.last = parted, 0, 0, ""

    def failed(self, message: str, times: int = 1) -> None:
        self.last = message
        shown = max(0, min(times, MAX_LOGGED_FAILURES - self.logged))
        for _ in range(shown):
            self.parted._log("error", message)
        self.logged += shown
        self.unlogged += times - shown

    def repeat(self, times: int) -> None:
        """`times` more orderings failed with the last message."""
        if times:
            self.failed(self.last, times)

    def close(self) -> None:
        if self.unlogged:
            self.parted._log("warning", f"Simulator: {self.unlogged} more failed orderings not logged")


class MigParted:
    """mig-parted against one simulated node. `reset_all` stands for `nvidia-smi -r` on every GPU.

    `gpu_outcomes=False` leaves `MigPartedResult.gpus` empty: callers that only need the exit code and messages
    (the sim backend's mig-manager) skip reading every GPU back after each command. With a `cache` (and no
    per-GPU outcomes, no injected faults) apply and assert replay what an earlier command did in the same state.
    """

    prune_orderings = True  # skip orderings known to fail like one already tried (False: run every one)
    debug_log = True  # keep DEBU lines in results (callers that never show them may turn this off)

    def __init__(self, node: nv.NvmlSimulator, reset_all: Callable[[], None] | None = None,
                 gpu_outcomes: bool = True, cache: CommandCache | None = None) -> None:
        self.nvml = node
        self._reset_all = reset_all or node.reset
        self.gpu_outcomes = gpu_outcomes
        self.cache = cache
        self._result = MigPartedResult("none")
        self._status: dict[int, tuple[str, str | None]] = {}
        self._orderings: dict[int, int] = {}
        self._node_profiles: list[DeviceProfile] | None = None
        self._device_profiles: dict[int, list[DeviceProfile]] = {}
        self._static: dict[tuple[Any, ...], Any] = {}  # NVML answers that cannot change within a command
        self._found: dict[tuple[int, str], DeviceProfile | None] = {}  # _find_profile (lists live as long)

    # -- logging -------------------------------------------------------------------------------------------

    def _log(self, level: str, message: str) -> None:
        self._result.log.append(LogEntry(level, message))

    def _debug(self, message: str) -> None:
        if self.debug_log:
            self._log("debug", message)

    def _set_status(self, i: int, status: str, message: str | None = None) -> None:
        self._status[i] = (status, message)

    # -- NVML access ---------------------------------------------------------------------------------------

    def _handle(self, i: int) -> nv.DeviceHandle:
        try:
            return self.nvml.nvmlDeviceGetHandleByIndex(i)
        except nv.NVMLError as exc:
            raise MigPartedFailure(f"error getting device handle: {exc}") from None

    def device_ids(self) -> list[DeviceID]:
        """GPUs in PCI order with device and subsystem IDs (util.GetGPUDeviceIDs); read once per command."""
        ids = self._static.get(("ids",))
        if ids is None:
            ids = []
            for i in sorted(range(len(self.nvml.gpus)), key=lambda k: self.nvml.gpus[k].bus_id):
                handle = self.nvml.nvmlDeviceGetHandleByPciBusId(self.nvml.gpus[i].bus_id)
                pci = self.nvml.nvmlDeviceGetPciInfo(handle)
                ids.append(DeviceID(pci.pciDeviceId >> 16, pci.pciDeviceId & 0xFFFF,
                                    pci.pciSubSystemId >> 16, pci.pciSubSystemId & 0xFFFF))
            self._static[("ids",)] = ids
        return list(ids)

    def is_mig_capable(self, i: int) -> bool:
        try:
            self.nvml.nvmlDeviceGetMigMode(self._handle(i))
        except nv.NVMLError_NotSupported:
            return False
        except nv.NVMLError as exc:
            raise MigPartedFailure(f"error checking MIG capable: error getting Mig mode: {exc}") from None
        return True

    def _mode(self, i: int) -> list[int]:
        try:
            return self.nvml.nvmlDeviceGetMigMode(self._handle(i))
        except nv.NVMLError as exc:
            raise MigPartedFailure(f"error getting MIG mode: error getting Mig mode settings: {exc}") from None

    def _assert_mig_enabled(self, handle: nv.DeviceHandle) -> None:
        try:
            current, _ = self.nvml.nvmlDeviceGetMigMode(handle)
        except nv.NVMLError_NotSupported:
            raise MigPartedFailure("MIG not supported") from None
        except nv.NVMLError as exc:
            raise MigPartedFailure(f"error getting MIG mode: {exc}") from None
        if current != nv.NVML_DEVICE_MIG_ENABLE:
            raise MigPartedFailure("MIG mode disabled")

    def _static_key(self, kind: str, i: int, *rest: Any) -> tuple[Any, ...]:
        """Key of an NVML answer that is a function of the GPU model alone (and, with a legacy driver, of its MIG
        mode): shared by every command on every simulated node (see _STATIC_ANSWERS)."""
        gpu = self.nvml.gpus[i]
        mode = gpu.mig_current if self.nvml.legacy_driver else None
        return (kind, ByIdentity(gpu.model), self.nvml.legacy_driver, mode, *rest)

    def _gi_profile_infos(self, handle: nv.DeviceHandle) -> list[tuple[int, nv.GpuInstanceProfileInfo]]:
        """The (index, info) of every GI profile the GPU answers for."""
        key = self._static_key("gi", handle.index)
        infos = _STATIC_ANSWERS.get(key)
        if infos is None:
            infos = []
            for index in range(nv.NVML_GPU_INSTANCE_PROFILE_COUNT):
                try:
                    infos.append((index, self.nvml.nvmlDeviceGetGpuInstanceProfileInfo(handle, index)))
                except (nv.NVMLError_NotSupported, nv.NVMLError_InvalidArgument):
                    continue
                except nv.NVMLError as exc:
                    raise MigPartedFailure(f"error getting GPU instance profile info for '{index}': {exc}") from None
            _remember(key, infos)
        return infos

    def _ci_profile_infos(self, gi: nv.GpuInstanceHandle, gi_profile_id: int) -> list[tuple[int, int, int]]:
        """(CI index, engine index, CI profile ID) of every CI profile a GI of this profile answers for (static)."""
        key = self._static_key("ci", gi.gpu, gi_profile_id)
        infos = _STATIC_ANSWERS.get(key)
        if infos is None:
            infos = []
            for j in range(nv.NVML_COMPUTE_INSTANCE_PROFILE_COUNT):
                for k in range(nv.NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_COUNT):
                    try:
                        info = self.nvml.nvmlGpuInstanceGetComputeInstanceProfileInfo(gi, j, k)
                    except (nv.NVMLError_NotSupported, nv.NVMLError_InvalidArgument):
                        continue
                    infos.append((j, k, info.id))
            _remember(key, infos)
        return infos

    def _walk_gpu_instances(self, handle: nv.DeviceHandle,
                            visit: Callable[[nv.GpuInstanceHandle, int, nv.GpuInstanceProfileInfo], None]) -> None:
        infos = self._gi_profile_infos(handle)
        if not self.nvml.gpus[handle.index].gis:
            return  # every nvmlDeviceGetGpuInstances would answer [] (the profile infos above are still asked)
        for index, info in infos:
            for gi in self.nvml.nvmlDeviceGetGpuInstances(handle, info.id):
                visit(gi, index, info)

    def _walk_compute_instances(self, gi: nv.GpuInstanceHandle, gi_profile_id: int,
                                visit: Callable[[nv.ComputeInstanceHandle, int, int], None]) -> None:
        for j, k, ci_profile_id in self._ci_profile_infos(gi, gi_profile_id):
            for ci in self.nvml.nvmlGpuInstanceGetComputeInstances(gi, ci_profile_id):
                visit(ci, j, k)

    # -- config manager ------------------------------------------------------------------------------------

    def get_mig_config(self, i: int) -> dict[str, int]:
        """One entry per CI, named by go-nvlib's NewMigProfile (GIs without CIs count nothing)."""
        handle = self._handle(i)
        total = self.nvml.nvmlDeviceGetMemoryInfo(handle).total
        try:
            self._assert_mig_enabled(handle)
        except MigPartedFailure as exc:
            raise MigPartedFailure(f"error asserting MIG enabled: {exc}") from None
        config: dict[str, int] = {}

        def visit_gi(gi: nv.GpuInstanceHandle, gi_index: int, gi_info: nv.GpuInstanceProfileInfo) -> None:
            def visit_ci(_ci: nv.ComputeInstanceHandle, j: int, k: int) -> None:
                name = str(new_mig_profile(gi_index, j, k, gi_info.memorySizeMB, total))
                config[name] = config.get(name, 0) + 1

            self._walk_compute_instances(gi, gi_info.id, visit_ci)

        self._walk_gpu_instances(handle, visit_gi)
        return config

    def clear_mig_config(self, i: int) -> None:
        """Destroy every CI, then every GI, of one GPU."""
        handle = self._handle(i)
        try:
            self._assert_mig_enabled(handle)
        except MigPartedFailure as exc:
            raise MigPartedFailure(f"error asserting MIG enabled: {exc}") from None

        def visit_gi(gi: nv.GpuInstanceHandle, gi_index: int, gi_info: nv.GpuInstanceProfileInfo) -> None:
            def visit_ci(ci: nv.ComputeInstanceHandle, j: int, k: int) -> None:
                try:
                    self.nvml.nvmlComputeInstanceDestroy(ci)
                except nv.NVMLError as exc:
                    raise MigPartedFailure(f"error destroying Compute instance for profile '({j}, {k})': "
                                           f"{exc}") from None

            self._walk_compute_instances(gi, gi_info.id, visit_ci)
            try:
                self.nvml.nvmlGpuInstanceDestroy(gi)
            except nv.NVMLError as exc:
                raise MigPartedFailure(f"error destroying GPU instance for profile '{gi_index}': {exc}") from None

        self._walk_gpu_instances(handle, visit_gi)

    def device_profiles(self, i: int) -> list[DeviceProfile]:
        """go-nvlib GetMigProfiles: GI indices x CI rule (docs/reference/nvml.md#compute-instance-profiles).

        Kept per GPU for the rest of the command (go-nvlib caches a device's list), until a mode change.
        """
        if i not in self._device_profiles:
            key = self._static_key("profiles", i)
            profiles = _STATIC_ANSWERS.get(key)
            if profiles is None:
                profiles = self._read_device_profiles(i)
                _remember(key, profiles)
            self._device_profiles[i] = profiles
        return self._device_profiles[i]

    def _read_device_profiles(self, i: int) -> list[DeviceProfile]:
        handle = self._handle(i)
        if not self.is_mig_capable(i):
            return []
        total = self.nvml.nvmlDeviceGetMemoryInfo(handle).total
        out = []
        for index in range(nv.NVML_GPU_INSTANCE_PROFILE_COUNT):
            try:
                info = self.nvml.nvmlDeviceGetGpuInstanceProfileInfo(handle, index)
            except (nv.NVMLError_NotSupported, nv.NVMLError_InvalidArgument):
                continue
            except nv.NVMLError as exc:
                raise MigPartedFailure(f"error getting GPU Instance profile info: {exc}") from None
            for j in range(nv.NVML_COMPUTE_INSTANCE_PROFILE_COUNT):
                for k in range(nv.NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_COUNT):
                    p = new_mig_profile(index, j, k, info.memorySizeMB, total)
                    if not listed_by_go_nvlib(p.name.c, p.name.g):
                        continue
                    out.append(p)
        return out

    def _find_profile(self, profiles: list[DeviceProfile], name: str) -> DeviceProfile | None:
        """The first profile of `profiles` that Matches `name` (go-nvlib), memoized for the command."""
        key = (id(profiles), name)
        if key not in self._found:
            self._found[key] = next((p for p in profiles if p.matches(name)), None)
        return self._found[key]

    def node_profiles(self) -> list[DeviceProfile]:
        """The union over all GPUs (first of each name wins), which mig-parted's global parse uses.

        Built on first use in a command and kept, as go-nvlib caches its list.
        """
        if self._node_profiles is None:
            lists = [self.device_profiles(i) for i in range(len(self.nvml.gpus))]
            key = ("node", *(ByIdentity(lst) for lst in lists))  # the lists are shared static answers
            union = _STATIC_ANSWERS.get(key)
            if union is None:
                seen: dict[str, DeviceProfile] = {}
                for profiles in lists:
                    for p in profiles:
                        seen.setdefault(str(p), p)
                union = list(seen.values())
                _remember(key, union)
            self._node_profiles = union
        return self._node_profiles

    def _flatten_groups(self, config: dict[str, int]) -> list[tuple[_Item, int]] | None:
        """types.MigConfig.Flatten as (entry, count) runs in Flatten order; None if a key is unknown on every GPU
        of the node or a count is negative (zero counts are skipped after the key is parsed)."""
        known = self.node_profiles()
        groups: list[tuple[_Item, int]] = []
        for key, count in config.items():
            profile = self._find_profile(known, key)
            if profile is None or count < 0:
                return None
            if count:
                groups.append((_Item(key, profile), count))
        order = flatten({item.profile.name: 1 for item, _ in groups})
        rank = {name: pos for pos, name in enumerate(order)}
        return sorted(groups, key=lambda g: rank[g[0].profile.name])

    def flatten(self, config: dict[str, int]) -> list[_Item] | None:
        """types.MigConfig.Flatten: None if a key is unknown on every GPU or a count is negative."""
        groups = self._flatten_groups(config)
        return None if groups is None else [item for item, n in groups for _ in range(n)]

    def _stop_walk(self, tried: int, devices: int) -> MigPartedFailure:
        self._log("warning", f"Simulator: stopped after {tried} of the orderings of {devices} MIG devices "
                             "(nvidia-mig-parted would go on trying every distinct permutation)")
        return MigPartedFailure("all orderings failed")

    def _iterate_orderings(self, i: int, items: list[_Item], attempt: Callable[[Iterable[_Item]], None],
                           progress: _Attempt | None = None) -> None:
        """iteratePermutationsUntilSuccess: Flatten order first, then every distinct permutation in the order of
        mig-parted's recursive swap walk (an entry is swapped in at a position only if no identical entry came
        before it in the rest of the list; Flatten's entries of one key are one object).

        Walked with an explicit stack. With `progress` (no injected faults, GPU empty when the attempt started),
        an attempt that failed at position f stands for every later ordering with the same first f+1 entries:
        they fail the same way, so they are counted and logged without being run. Bounded by MAX_ORDERINGS
        attempts run and MAX_WALK_STEPS list positions visited.
        """
        n, ran, steps = len(items), 0, 0
        log = _FailureLog(self)

        def leaf() -> MigPartedFailure | None:
            nonlocal ran
            ran += 1
            self._orderings[i] = self._orderings.get(i, 0) + 1
            try:
                attempt(items)
            except MigPartedFailure as exc:
                log.failed(capitalize(str(exc)))
                return exc
            return None

        if n == 0:  # the walk calls the creation function once, with nothing to create
            error = leaf()
            if error is not None:
                raise error
            return
        chosen = [0] * n  # per position: the index swapped into it (the next candidate while scanning)
        seen: list[set[int]] = [set() for _ in range(n)]  # per position: entries already tried there
        level = 0
        try:
            while True:
                j, tried_here = chosen[level], seen[level]
                while j < n and id(items[j]) in tried_here:
                    j += 1
                    steps += 1
                if steps >= MAX_WALK_STEPS:
                    raise self._stop_walk(ran, n)
                if j < n:
                    chosen[level] = j
                    items[level], items[j] = items[j], items[level]
                    if level + 1 < n:
                        level += 1
                        chosen[level], seen[level] = level, set()
                        continue
                    if leaf() is None:
                        return
                    if ran >= MAX_ORDERINGS:
                        raise self._stop_walk(ran, n)
                    failed_at = progress.position if progress is not None and progress.clean else n - 1
                    if failed_at < n - 1:
                        skipped = _remaining_leaves(items, seen, failed_at + 1)
                        self._orderings[i] += skipped
                        log.repeat(skipped)
                        for k in range(n - 1, failed_at, -1):
                            items[k], items[chosen[k]] = items[chosen[k]], items[k]
                        if failed_at < 0:
                            raise MigPartedFailure("all orderings failed")
                        level = failed_at
                        j = chosen[level]
                elif level == 0:
                    raise MigPartedFailure("all orderings failed")
                else:
                    level -= 1
                    j = chosen[level]
                items[level], items[j] = items[j], items[level]  # undo, then try the next candidate here
                seen[level].add(id(items[j]))
                chosen[level] = j + 1
                steps += 1
        finally:
            log.close()

    def _first_ordering_only(self, i: int, groups: list[tuple[_Item, int]],
                             attempt: Callable[[Iterable[_Item]], None], capacity: int | None) -> None:
        """More devices than the GPU can hold in any order (each compute instance takes at least one of the GPU's
        compute slices): the Flatten order is tried (lazily: it fails as the GPU fills up), the others are not."""
        self._orderings[i] = 1
        devices = sum(n for _, n in groups)
        try:
            attempt(itertools.chain.from_iterable(itertools.repeat(item, n) for item, n in groups))
        except MigPartedFailure as exc:
            self._log("error", capitalize(str(exc)))
            room = f"the GPU's {capacity} compute slices" if capacity is not None else "a GPU"
            self._log("warning", f"Simulator: {devices} MIG devices do not fit in {room} in any order; the other "
                                 "orderings were not tried (nvidia-mig-parted tries every distinct permutation)")
            raise MigPartedFailure("all orderings failed") from None

    def set_mig_config(self, i: int, config: dict[str, int]) -> None:
        """Clear the GPU and create `config`, trying orderings until one works; clear it if none does."""
        handle = self._handle(i)
        total = self.nvml.nvmlDeviceGetMemoryInfo(handle).total
        try:
            self._assert_mig_enabled(handle)
        except MigPartedFailure as exc:
            raise MigPartedFailure(f"error asserting MIG enabled: {exc}") from None
        profiles = self.device_profiles(i)
        progress = _Attempt()

        def attempt(items: Iterable[_Item]) -> None:
            progress.position, progress.clean = -1, False
            self._clear_before_attempt(i)
            progress.clean = not self.nvml.gpus[i].gis and not self.nvml.faults.active
            last_index, gi = -1, None
            for position, item in enumerate(items):
                progress.position = position
                resolved = self._find_profile(profiles, str(item.profile))
                if resolved is None:
                    raise MigPartedFailure(f'MIG profile "{item.profile}" not found on this GPU')
                gi = self._create_one(handle, resolved, total, gi, reuse=gi is not None
                                      and last_index == resolved.gi_index)
                last_index = resolved.gi_index

        groups = self._flatten_groups(config) or []
        capacity = self.nvml.gpus[i].model.compute_slices  # what the simulated NVML admits (catalog)
        try:
            if sum(n for _, n in groups) > min(MAX_FLAT_DEVICES, capacity or MAX_FLAT_DEVICES):
                self._first_ordering_only(i, groups, attempt, capacity)
            else:
                self._iterate_orderings(i, [item for item, n in groups for _ in range(n)], attempt,
                                        progress if self.prune_orderings else None)
        except MigPartedFailure as exc:
            try:
                self.clear_mig_config(i)
            except MigPartedFailure:
                self._log("error", f"Error clearing MIG config on GPU {i}, erroneous devices may persist")
            raise MigPartedFailure(f"error attempting multiple config orderings: {exc}") from None

    def _clear_before_attempt(self, i: int) -> None:
        for attempts in range(2):
            try:
                existing = self.get_mig_config(i)
            except MigPartedFailure as exc:
                raise MigPartedFailure(f"error getting existing MigConfig: {exc}") from None
            if not self.flatten(existing):
                return
            if attempts == 1:
                raise MigPartedFailure("exceeded maximum attempts to clear MigConfig")
            try:
                self.clear_mig_config(i)
            except MigPartedFailure as exc:
                raise MigPartedFailure(f"error clearing MigConfig: {exc}") from None

    def _create_one(self, handle: nv.DeviceHandle, resolved: DeviceProfile, total: int,
                    gi: nv.GpuInstanceHandle | None, reuse: bool) -> nv.GpuInstanceHandle:
        """Add one MIG device: into the last GI when `reuse`, else (or when that fails) into a new GI."""
        try:
            gi_info = self.nvml.nvmlDeviceGetGpuInstanceProfileInfo(handle, resolved.gi_index)
        except nv.NVMLError as exc:
            raise MigPartedFailure(f"error getting GPU instance profile info for '{resolved}': {exc}") from None
        while True:
            if not reuse or gi is None:
                try:
                    gi = self.nvml.nvmlDeviceCreateGpuInstance(handle, gi_info.id)
                except nv.NVMLError as exc:
                    raise MigPartedFailure(f"error creating GPU instance for '{resolved}': {exc}") from None
            step = "getting Compute instance profile info"
            try:
                ci_info = self.nvml.nvmlGpuInstanceGetComputeInstanceProfileInfo(gi, resolved.ci_index,
                                                                                 resolved.ci_eng)
                step = "creating Compute instance"
                self.nvml.nvmlGpuInstanceCreateComputeInstance(gi, ci_info.id)
            except nv.NVMLError as exc:
                if reuse:
                    reuse = False
                    continue
                raise MigPartedFailure(f"error {step} for '{resolved}': {exc}") from None
            valid = new_mig_profile(resolved.gi_index, resolved.ci_index, resolved.ci_eng, gi_info.memorySizeMB, total)
            if not resolved.equals(valid):
                if reuse:
                    reuse = False
                    continue
                raise MigPartedFailure(f"unsupported MIG Device specified {resolved}, expected {valid} instead")
            return gi

    # -- walks ---------------------------------------------------------------------------------------------

    def _walk(self, entries: Sequence[MigConfigEntry], visit: Callable[[MigConfigEntry, int, DeviceID], None]) -> None:
        """assert.WalkSelectedMigConfigForEachGPU: entries in file order, GPUs in PCI order."""
        ids = self.device_ids()
        for mc in entries:
            if mc.device_filter:
                self._debug(f"Walking MigConfig for (device-filter={_go_value(mc.device_filter)}, "
                            f"devices={_go_value(mc.devices)})")
            else:
                self._debug(f"Walking MigConfig for (devices={_go_value(mc.devices)})")
            for i, device_id in enumerate(ids):
                if mc.matches_device_filter(device_id) and mc.matches_devices(i):
                    self._debug(f"  GPU {i}: {device_id}")
                    visit(mc, i, device_id)

    def assert_mig_mode(self, entries: Sequence[MigConfigEntry]) -> None:
        def visit(mc: MigConfigEntry, i: int, _d: DeviceID) -> None:
            self._debug(f"    Asserting MIG mode: {'Enabled' if mc.mig_enabled else 'Disabled'}")
            capable = self.is_mig_capable(i)
            self._debug(f"    MIG capable: {str(capable).lower()}")
            if not capable and mc.mig_enabled:
                raise MigPartedFailure("unable to assert MIG mode enabled on non MIG-capable GPU")
            if not capable:
                return
            current = self._mode(i)[0]
            self._debug(f"    Current MIG mode: {'Enabled' if current else 'Disabled'}")
            if mc.mig_enabled != (current == nv.NVML_DEVICE_MIG_ENABLE):
                raise MigPartedFailure("current mode different than mode being asserted")

        self._walk(entries, visit)

    def assert_mig_config(self, entries: Sequence[MigConfigEntry]) -> None:
        matched = [False] * len(self.nvml.gpus)

        def visit(mc: MigConfigEntry, i: int, _d: DeviceID) -> None:
            if not self.is_mig_capable(i) and not mc.mig_enabled:
                matched[i] = True
                return
            current_mode = self._mode(i)[0]
            if not mc.mig_enabled and current_mode == nv.NVML_DEVICE_MIG_DISABLE:
                matched[i] = True
                return
            try:
                current = self.get_mig_config(i)
            except MigPartedFailure as exc:
                raise MigPartedFailure(f"error getting MIGConfig: {exc}") from None
            self._debug(f"    Asserting MIG config: {go_map(mc.mig_devices or {})}")
            matched[i] = config_equals(current, mc.mig_devices)

        self._walk(entries, visit)
        if sum(matched) != len(matched):
            raise MigPartedFailure("not all GPUs match the specified config")

    def apply_mig_mode(self, entries: Sequence[MigConfigEntry], skip_reset: bool) -> None:
        pending = [False] * len(self.nvml.gpus)

        def visit(mc: MigConfigEntry, i: int, _d: DeviceID) -> None:
            desired = nv.NVML_DEVICE_MIG_ENABLE if mc.mig_enabled else nv.NVML_DEVICE_MIG_DISABLE
            capable = self.is_mig_capable(i)
            self._debug(f"    MIG capable: {str(capable).lower()}")
            if not capable and (mc.devices == "all" or not mc.mig_enabled):
                self._debug("    Skipping -- non MIG-capable GPU")
                self._set_status(i, "skipped", "non MIG-capable GPU")
                return
            if not capable:
                self._set_status(i, "failed", "cannot set MIG mode on non MIG-capable GPU")
                raise MigPartedFailure("cannot set MIG mode on non MIG-capable GPU")
            current = self._mode(i)[0]
            self._debug(f"    Current MIG mode: {'Enabled' if current else 'Disabled'}")
            if current != nv.NVML_DEVICE_MIG_DISABLE:
                self._debug("    Clearing existing MIG configuration")
                try:
                    self.clear_mig_config(i)
                except MigPartedFailure as exc:
                    raise MigPartedFailure(f"error clearing existing MIG configurations: {exc}") from None
            self._debug(f"    Updating MIG mode: {'Enabled' if desired else 'Disabled'}")
            try:
                self.nvml.nvmlDeviceSetMigMode(self._handle(i), desired)
            except nv.NVMLError as exc:
                self._set_status(i, "failed", str(exc))
                raise MigPartedFailure(f"error setting MIG mode: error setting Mig mode: {exc}") from None
            now = self._mode(i)
            pending[i] = now[0] != now[1]
            self._set_status(i, "mode-set")
            self._debug(f"    Mode change pending: {str(pending[i]).lower()}")

        self._walk(entries, visit)
        self._device_profiles.clear()  # a legacy driver lists profiles only while MIG is enabled
        if skip_reset or not any(pending):
            return
        self._debug("At least one mode change pending")
        self._debug("Resetting all GPUs...")
        try:
            self._reset_all()
        except nv.NVMLError as exc:
            self._log("error", f"\n{exc}")
            raise MigPartedFailure(f"error resetting all GPUs: {exc}") from None
        self._device_profiles.clear()

    def apply_mig_config(self, entries: Sequence[MigConfigEntry]) -> None:
        def visit(mc: MigConfigEntry, i: int, _d: DeviceID) -> None:
            capable = self.is_mig_capable(i)
            self._debug(f"    MIG capable: {str(capable).lower()}")
            if not capable and (mc.devices == "all" or not mc.mig_enabled):
                self._debug("    Skipping -- non MIG-capable GPU")
                return
            if not capable:
                raise MigPartedFailure("cannot set MIG config on non MIG-capable GPU")
            current_mode = self._mode(i)[0]
            if mc.mig_enabled and current_mode == nv.NVML_DEVICE_MIG_DISABLE:
                self._set_status(i, "failed", "MIG mode disabled")
                raise MigPartedFailure("unable to apply MIG config with MIG mode disabled")
            if not mc.mig_enabled and current_mode == nv.NVML_DEVICE_MIG_ENABLE:
                self._set_status(i, "failed", "MIG mode enabled")
                raise MigPartedFailure("MIG mode is currently enabled, but the configuration specifies it should "
                                       "be disabled")
            if not mc.mig_enabled:
                self._debug("    Skipping MIG config -- MIG disabled")
                self._set_status(i, "unchanged")
                return
            try:
                current = self.get_mig_config(i)
            except MigPartedFailure as exc:
                raise MigPartedFailure(f"error getting MIGConfig: {exc}") from None
            self._debug(f"    Updating MIG config: {go_map(mc.mig_devices or {})}")
            if config_equals(current, mc.mig_devices):
                self._debug("    Skipping -- already set to desired value")
                self._set_status(i, "unchanged")
                return
            try:
                self.set_mig_config(i, dict(mc.mig_devices or {}))
            except MigPartedFailure as exc:
                self._set_status(i, "failed", str(exc))
                raise MigPartedFailure(f"error setting MIGConfig: {exc}") from None
            self._set_status(i, "configured")

        self._walk(entries, visit)

    # -- commands --------------------------------------------------------------------------------------------

    def _begin(self, command: str) -> MigPartedResult:
        self._result = MigPartedResult(command)
        self._status, self._orderings, self._node_profiles, self._device_profiles = {}, {}, None, {}
        self._static, self._found = {}, {}
        self.nvml.nvmlInit()
        return self._result

    def _finish(self, error: MigPartedFailure | None) -> MigPartedResult:
        res = self._result
        if error is not None:
            res.exit_code, res.error = EXIT_FAIL, capitalize(str(error))
            self._log("fatal", res.error)
        for i, device_id in enumerate(self.device_ids() if self.gpu_outcomes else ()):
            capable = self.is_mig_capable(i)
            status, message = self._status.get(i, ("not-selected", None))
            outcome = GpuOutcome(i, str(device_id.primary), capable, status, message, self._orderings.get(i, 0))
            if capable:
                outcome.mig_mode = list(self._mode(i))
                if outcome.mig_mode[0] == nv.NVML_DEVICE_MIG_ENABLE:
                    outcome.mig_devices = self.get_mig_config(i)
            res.gpus.append(outcome)
        self.nvml.nvmlShutdown()
        return res

    def _select(self, spec: Spec, selected_config: str | None) -> tuple[MigConfigEntry, ...]:
        """Parse problems and config selection, with mig-parted's wrapping (sigs.k8s.io/yaml's included)."""
        self._debug("Parsing config file...")
        if spec.problems:
            raise MigPartedFailure(spec.selection_error(selected_config or None) or "")
        self._debug("Selecting specific MIG config...")
        error = spec.selection_error(selected_config or None)
        if error is not None:
            raise MigPartedFailure(error)
        return spec.select(selected_config or None)[1]

    def _cached(self, command: str, args: tuple[Any, ...], run: Callable[[], MigPartedResult]) -> MigPartedResult:
        """Run a command, or replay it from the cache (see the class doc). The spec is keyed by identity (a
        cluster parses each config version once), the reset by its function (a real reset or one that needs a
        reboot)."""
        if self.cache is None or self.gpu_outcomes or self.nvml.faults.active:
            return run()
        spec, *rest = args
        reset = getattr(self._reset_all, "__func__", self._reset_all)
        state = self.nvml.state_key()
        key = (command, ByIdentity(spec), *rest, reset, self.debug_log, state)
        before = self.nvml._serial

        def changes() -> nv.NvmlChanges | None:
            """What the command did, or None when it left the node as it was (every assert, an apply of what is
            applied): then a replay has nothing to redo."""
            if self.nvml._serial == before and self.nvml.state_key() == state:
                return None
            return self.nvml.changes_since(before)

        return self.cache.get_or_run(key, run, self.nvml.replay, changes, MigPartedResult.copy)

    def apply(self, spec: Spec, selected_config: str | None = None, mode_only: bool = False,
              skip_reset: bool = False) -> MigPartedResult:
        """`nvidia-mig-parted apply` (hooks are not simulated)."""
        return self._cached("apply", (spec, selected_config, mode_only, skip_reset),
                            lambda: self._apply(spec, selected_config, mode_only, skip_reset))

    def _apply(self, spec: Spec, selected_config: str | None, mode_only: bool, skip_reset: bool) -> MigPartedResult:
        res = self._begin("apply")
        error = None
        try:
            entries = self._select(spec, selected_config)
            try:
                self._debug("Checking current MIG mode...")
                try:
                    self.assert_mig_mode(entries)
                except MigPartedFailure:
                    self._debug("Applying MIG mode change...")
                    self.apply_mig_mode(entries, skip_reset)
                if not mode_only:
                    self._debug("Checking current MIG device configuration...")
                    try:
                        self.assert_mig_config(entries)
                    except MigPartedFailure:
                        self._debug("Applying MIG device configuration...")
                        self.apply_mig_config(entries)
            except MigPartedFailure as exc:
                raise MigPartedFailure(f"error applying MIG configuration with hooks: {exc}") from None
            res.stdout.append("MIG configuration applied successfully")
        except MigPartedFailure as exc:
            error = exc
        return self._finish(error)

    def assert_config(self, spec: Spec, selected_config: str | None = None, mode_only: bool = False,
                      valid_config: bool = False) -> MigPartedResult:
        """`nvidia-mig-parted assert`."""
        return self._cached("assert", (spec, selected_config, mode_only, valid_config),
                            lambda: self._assert_config(spec, selected_config, mode_only, valid_config))

    def _assert_config(self, spec: Spec, selected_config: str | None, mode_only: bool,
                       valid_config: bool) -> MigPartedResult:
        res = self._begin("assert")
        error = None
        try:
            entries = self._select(spec, selected_config)
            if valid_config:
                res.stdout.append("Selected MIG configuration is valid")
                return self._finish(None)
            for label, check in (("mode", self.assert_mig_mode), ("device", self.assert_mig_config)):
                self._debug(f"Asserting MIG {label} configuration...")
                try:
                    check(entries)
                except MigPartedFailure as exc:
                    res.detail = capitalize(str(exc))
                    self._debug(res.detail)
                    raise MigPartedFailure("assertion failure: selected configuration not currently applied") from None
                if mode_only:
                    res.stdout.append("Selected MIG mode settings from configuration currently applied")
                    return self._finish(None)
            res.stdout.append("Selected MIG configuration currently applied")
        except MigPartedFailure as exc:
            error = exc
        return self._finish(error)

    def export(self, output_format: str = "yaml", config_label: str = "current") -> MigPartedResult:
        """`export`: per-GPU entries merged like mergeMigConfigSpecs (docs/reference/mig-parted.md#export)."""
        res = self._begin("export")
        error = None
        try:
            if output_format not in ("json", "yaml"):
                raise MigPartedFailure(f"unrecognized 'output-format': {output_format}")
            specs = []
            for i, device_id in enumerate(self.device_ids()):
                enabled = self.is_mig_capable(i) and self._mode(i)[0] == nv.NVML_DEVICE_MIG_ENABLE
                devices = self.get_mig_config(i) if enabled else {}
                specs.append({"device-filter": [str(device_id.primary)], "devices": [i], "mig-enabled": enabled,
                              "mig-devices": devices})
            document = {"version": "v1", "mig-configs": {config_label: merge_mig_config_specs(specs)}}
            res.output = dump_yaml(document) if output_format == "yaml" else dump_json(document)
            res.stdout.append(res.output)
        except MigPartedFailure as exc:
            error = exc
        return self._finish(error)


# --- export helpers ------------------------------------------------------------------------------------------


def merge_mig_config_specs(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """mergeMigConfigSpecs: group equal (mig-enabled, mig-devices), then simplify filters and devices."""
    merged: list[dict[str, Any]] = []
    for s in specs:
        for m in merged:
            if m["mig-enabled"] == s["mig-enabled"] and config_equals(s["mig-devices"], m["mig-devices"]):
                m["devices"] = sorted(set(m["devices"]) | set(s["devices"]))
                m["device-filter"] = sorted(set(m["device-filter"]) | set(s["device-filter"]))
                break
        else:
            merged.append(dict(s))
    by_filter: dict[str, set[int]] = {}
    for s in specs:
        by_filter.setdefault(s["device-filter"][0], set()).update(s["devices"])
    out = []
    for m in merged:
        filters: list[str] = m["device-filter"]
        entry: dict[str, Any] = {}
        if len(by_filter) > 1:
            entry["device-filter"] = filters[0] if len(filters) == 1 else filters
        covered = sorted(set().union(*(by_filter[f] for f in filters)))
        entry["devices"] = "all" if m["devices"] == covered else m["devices"]
        entry["mig-enabled"] = m["mig-enabled"]
        entry["mig-devices"] = m["mig-devices"]
        out.append(entry)
    if len(out) == 1:
        out[0].pop("device-filter", None)
    return out


def _yaml_v2_less(a: str, b: str) -> int:
    """gopkg.in/yaml.v2's map-key order: non-letters before letters, digit runs compared as numbers."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x == y:
            continue
        if x.isalpha() and y.isalpha():
            return -1 if x < y else 1
        if x.isalpha() or y.isalpha():
            return 1 if x.isalpha() else -1
        ra, rb = _digits(a, i), _digits(b, i)
        na, nb = int(ra or 0), int(rb or 0)
        if na != nb:
            return -1 if na < nb else 1
        if len(ra) != len(rb):
            return -1 if len(ra) < len(rb) else 1
        return -1 if x < y else 1
    return (len(a) > len(b)) - (len(a) < len(b))


def _digits(text: str, start: int) -> str:
    end = start
    while end < len(text) and text[end].isdigit():
        end += 1
    return text[start:end]


class _Flow(list[Any]):
    """A list written in flow style (`devices: [0, 1]`), as the spec's yaml `flow` tags ask."""


class _GoYamlDumper(yaml.SafeDumper):
    pass


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    implicit = dumper.resolve(yaml.ScalarNode, value, (True, False))
    style = '"' if implicit != "tag:yaml.org,2002:str" else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _represent_flow(dumper: yaml.SafeDumper, value: _Flow) -> yaml.Node:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=True)


_GoYamlDumper.add_representer(str, _represent_str)
_GoYamlDumper.add_representer(_Flow, _represent_flow)


def dump_yaml(document: dict[str, Any]) -> str:
    """YAML like gopkg.in/yaml.v2 marshals v1.Spec: field order kept, map keys sorted, flow lists."""

    def shape(entry: dict[str, Any]) -> dict[str, Any]:
        out = dict(entry)
        for key in ("device-filter", "devices"):
            if isinstance(out.get(key), list):
                out[key] = _Flow(out[key])
        devices = entry["mig-devices"]
        out["mig-devices"] = {k: devices[k] for k in sorted(devices, key=functools.cmp_to_key(_yaml_v2_less))}
        return out

    configs = {label: [shape(e) for e in entries] for label, entries in document["mig-configs"].items()}
    return yaml.dump({"version": document["version"], "mig-configs": configs}, Dumper=_GoYamlDumper,
                     sort_keys=False, default_flow_style=False)


def dump_json(document: dict[str, Any]) -> str:
    """JSON like Go's json.MarshalIndent(spec, "", "  ") (map keys sorted, no trailing newline)."""
    configs = {label: [{**e, "mig-devices": dict(sorted(e["mig-devices"].items()))} for e in entries]
               for label, entries in sorted(document["mig-configs"].items())}
    return json.dumps({"version": document["version"], "mig-configs": configs}, indent=2)
