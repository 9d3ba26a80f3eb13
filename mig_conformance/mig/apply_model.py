"""mig-parted's apply and assert computed in closed form on per-GPU MIG states: the projection's model of mig-parted.

The simulators run mig-parted's command code against simulated NVML (`simulators/mig_parted.py`); this module
computes the same results directly, which `expect`, `mig_expect` and the report use (fast and memoizable).
tests/unit/test_models_agree.py checks both against each other on generated configs and sequences.

Follows NVIDIA/mig-parted v0.15.0 `cmd/nvidia-mig-parted/{apply,assert}/*.go` and `pkg/mig/config/config.go`:
(entry, GPU) pairs are walked in file order as `WalkSelectedMigConfigForEachGPU` does, stopping at the first error;
names are compared literally (`mig.config.config_equals`); a key that names no device profile of any GPU of the
node makes `Flatten` fail, which clears the GPU and reports success.

Modelling, the same as the NVML simulator's: a MIG mode change on an Ampere GPU stays pending until a GPU reset.
mig-parted's `apply --mode-only` then resets all GPUs itself (every GPU's MIG devices are gone afterwards); by
default that reset takes effect. With `reset_works=False` (pass-through VMs, where NVML's activation status is
RESET_REQUIRED) only a reboot completes the change. Hopper and later switch mode at once, without a reset
(GoogleCloudPlatform/container-engine-accelerators `partition_gpu/partition_gpu.go` @992db812).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

from mig_conformance.common.identity import ByIdentity
from mig_conformance.gpus.catalog import MODE_CHANGE_NEEDS_RESET, GpuModel
from mig_conformance.gpus.device_ids import DeviceID
from mig_conformance.gpus.profile_names import ProfileFormatError, parse_profile
from mig_conformance.mig.config import creation_order, devices_equal, matches_key
from mig_conformance.mig.placement import FitResult, fit
from mig_conformance.mig.spec import MigConfigEntry, Spec
from mig_conformance.mig.state import GpuMigState

#: apply's error when no ordering of the GPU instances can be created (SetMigConfig, config.go)
ALL_ORDERINGS_FAILED = "error setting MIGConfig: error attempting multiple config orderings: all orderings failed"


@dataclass
class _Node:
    """Mutable GPU state during one simulated run."""

    models: tuple[GpuModel, ...]
    mode: list[bool]
    pending: list[bool | None]
    devices: list[tuple[str, ...]]
    known: frozenset[tuple[int, int, int, bool, frozenset[str]]]
    notes: list[str] = field(default_factory=list)

    def states(self) -> tuple[GpuMigState, ...]:
        return tuple(GpuMigState(m, self.mode[i], self.devices[i], self.pending[i]) for i, m in enumerate(self.models))


Pair = tuple[MigConfigEntry, int]


def _pairs(entries: Sequence[MigConfigEntry], models: Sequence[GpuModel]) -> list[Pair]:
    """(entry, GPU index) in the order WalkSelectedMigConfigForEachGPU visits them: entries first, then GPUs."""
    ids = [DeviceID.from_int(g.pci_device_id) for g in models]
    return [(e, i) for e in entries for i in range(len(models)) if e.selects(i, ids[i])]


@functools.cache
def _known_keys(models: tuple[ByIdentity[GpuModel], ...]) -> frozenset[tuple[int, int, int, bool, frozenset[str]]]:
    """Every MIG device name some GPU of the node offers (mig-parted's global ParseMigProfile)."""
    gpus: tuple[GpuModel, ...] = tuple(m.obj for m in models)
    return frozenset(matches_key(ci.name) for g in gpus if g.mig_capable
                     for gi in g.gi_profiles for ci in gi.compute_instances)


@functools.lru_cache(maxsize=4096)
def _fit(model: ByIdentity[GpuModel], devices: tuple[tuple[str, int], ...]) -> FitResult:
    return fit(model.obj, dict(devices))


def _assert_mode(node: _Node, pairs: list[Pair]) -> str | None:
    """`assert --mode-only` (cmd/nvidia-mig-parted/assert/mode.go): None when it passes, else its error."""
    for e, i in pairs:
        if not node.models[i].mig_capable:
            if e.mig_enabled:
                return "unable to assert MIG mode enabled on non MIG-capable GPU"
            continue
        if e.mig_enabled != node.mode[i]:
            return "current mode different than mode being asserted"
    return None


def _assert_config(node: _Node, pairs: list[Pair]) -> bool:
    """AssertMigConfig (assert/config.go): every GPU of the node must be matched by the walk."""
    matched = [False] * len(node.models)
    for e, i in pairs:
        if not node.models[i].mig_capable:
            if e.mig_enabled:
                return False  # GetMigMode fails on a non-capable GPU
            matched[i] = True
        elif not e.mig_enabled and not node.mode[i]:
            matched[i] = True
        elif not node.mode[i]:
            return False  # GetMigConfig fails on a GPU whose MIG mode is disabled
        else:
            matched[i] = devices_equal(node.devices[i], e.mig_devices)
    return all(matched)


def _apply_mode(node: _Node, pairs: list[Pair], reset_works: bool) -> str | None:
    """ApplyMigMode (apply/mode.go): clear MIG-enabled GPUs, set modes, then reset if a change is pending."""
    for e, i in pairs:
        model = node.models[i]
        if not model.mig_capable:
            if e.devices == "all" or not e.mig_enabled:
                continue
            return f"GPU {i}: cannot set MIG mode on non MIG-capable GPU"
        if node.mode[i]:
            node.devices[i] = ()  # ClearMigConfig, even when this GPU's mode is already right
        if e.mig_enabled == node.mode[i]:
            node.pending[i] = None
        elif model.architecture in MODE_CHANGE_NEEDS_RESET:
            node.pending[i] = e.mig_enabled
        else:
            node.mode[i] = e.mig_enabled
    waiting = [i for i, p in enumerate(node.pending) if p is not None]
    if waiting and reset_works:  # ResetAllGPUs makes every pending mode current and resets every GPU
        for i in waiting:
            node.mode[i] = bool(node.pending[i])
            node.pending[i] = None
        node.devices = [() for _ in node.models]
        return None
    if waiting:
        arch = ", ".join(sorted({node.models[i].architecture for i in waiting}))
        return (f"error resetting all GPUs: MIG mode change pending on GPU {', '.join(map(str, waiting))} ({arch}) "
                "and a GPU reset cannot make it take effect on this node; it needs a reboot (WITH_REBOOT)")
    return None


def _set_config(node: _Node, i: int, desired: dict[str, int]) -> str | None:
    """SetMigConfig for one GPU (pkg/mig/config/config.go)."""
    model = node.models[i]
    for name in desired:
        try:
            unknown = matches_key(name) not in node.known
        except ProfileFormatError:
            unknown = True
        if unknown:
            # Flatten() returns nil: the GPU is cleared, nothing is created, and apply reports success.
            node.devices[i] = ()
            node.notes.append(f"GPU {i}: profile {name} exists on no GPU of this node; mig-parted cleared the GPU, "
                              "created nothing and still reported success")
            return None
    result = _fit(ByIdentity(model), tuple(desired.items()))
    if result.fits:
        node.devices[i] = creation_order(c for gi in result.placement for c in gi.compute_instances)
        return None
    node.devices[i] = ()  # all orderings failed: ClearMigConfig leaves the GPU empty
    missing = next((n for n, c in desired.items() if c and model.resolve(parse_profile(n)) is None), None)
    detail = f'MIG profile "{missing}" not found on this GPU' if missing else result.reason
    return f"GPU {i}: {ALL_ORDERINGS_FAILED} ({detail})"


def _apply_config(node: _Node, pairs: list[Pair]) -> str | None:
    """ApplyMigConfig (apply/config.go)."""
    for e, i in pairs:
        if not node.models[i].mig_capable:
            if e.devices == "all" or not e.mig_enabled:
                continue
            return f"GPU {i}: cannot set MIG config on non MIG-capable GPU"
        if e.mig_enabled and not node.mode[i]:
            return f"GPU {i}: unable to apply MIG config with MIG mode disabled"
        if not e.mig_enabled and node.mode[i]:
            return f"GPU {i}: MIG mode is currently enabled, but the configuration specifies it should be disabled"
        desired = e.mig_devices or {}
        if not e.mig_enabled or devices_equal(node.devices[i], desired):
            continue
        error = _set_config(node, i, desired)
        if error:
            return error
    return None


def _apply(node: _Node, pairs: list[Pair], reset_works: bool = True) -> str | None:
    """`nvidia-mig-parted apply` (ApplyMigConfigWithHooks): mode first if its assert fails, then the devices."""
    if _assert_mode(node, pairs) is not None:
        error = _apply_mode(node, pairs, reset_works)
        if error:
            return error
    if not _assert_config(node, pairs):
        return _apply_config(node, pairs)
    return None


def _reboot(node: _Node) -> None:
    """Pending MIG modes take effect; GPU and compute instances do not survive a reboot."""
    for i, p in enumerate(node.pending):
        if p is not None:
            node.mode[i] = p
            node.pending[i] = None
    node.devices = [() for _ in node.models]


def _notes(node: _Node, entries: Sequence[MigConfigEntry], pairs: list[Pair]) -> list[str]:
    notes = []
    unselected = sorted(set(range(len(node.models))) - {i for _, i in pairs})
    if unselected:
        notes.append(f"GPU {', '.join(map(str, unselected))} not selected by the config: left as it is, and "
                     "mig-parted's assert never passes, so every mig-manager run goes through pending again")
    skipped = sorted({i for e, i in pairs if not node.models[i].mig_capable and e.mig_enabled and e.devices == "all"})
    if skipped:
        notes.append(f"GPU {', '.join(map(str, skipped))} not MIG capable: apply skips it (devices: all), but the "
                     "mode assert never passes, so with WITH_REBOOT the node reboots once and then fails")
    zero = sorted({k for e in entries for k, v in (e.mig_devices or {}).items() if v == 0})
    if zero:
        notes.append(f"zero count for {', '.join(zero)}: the assert never matches, so every run clears and "
                     "recreates the MIG devices")
    return notes


class ModelledParted:
    """mig-parted's commands for one selected config on one node's GPU states (`mig.reconfigure.MigPartedCommands`).

    `states()` gives the GPUs after the commands run so far; `notes` collects what real mig-parted does that the
    states alone do not show (a GPU cleared by an unknown profile, an unselected GPU, zero counts)."""

    def __init__(self, spec: Spec, selected: str, models: Sequence[GpuModel], before: Sequence[GpuMigState],
                 reset_works: bool = True) -> None:
        self.spec, self.selected, self.reset_works = spec, selected, reset_works
        self.node = _Node(tuple(models), [s.mig_enabled for s in before], [s.pending for s in before],
                          [s.devices for s in before], _known_keys(tuple(ByIdentity(m) for m in models)))
        self._pairs: list[Pair] | None = None
        self._entries: tuple[MigConfigEntry, ...] = ()

    @property
    def pairs(self) -> list[Pair]:
        if self._pairs is None:
            self._entries = self.spec.select(self.selected)[1]
            self._pairs = _pairs(self._entries, self.node.models)
        return self._pairs

    def assert_valid(self) -> str | None:
        return self.spec.selection_error(self.selected)

    def assert_applied(self) -> bool:
        return _assert_mode(self.node, self.pairs) is None and _assert_config(self.node, self.pairs)

    def assert_mode(self) -> str | None:
        return _assert_mode(self.node, self.pairs)

    def apply_mode(self) -> str | None:
        if _assert_mode(self.node, self.pairs) is None:
            return None
        return _apply_mode(self.node, self.pairs, self.reset_works)

    def apply(self) -> str | None:
        return _apply(self.node, self.pairs, self.reset_works)

    def reboot(self) -> None:
        _reboot(self.node)

    def states(self) -> tuple[GpuMigState, ...]:
        return self.node.states()

    @property
    def notes(self) -> tuple[str, ...]:
        extra = _notes(self.node, self._entries, self._pairs) if self._pairs is not None else []
        return tuple(dict.fromkeys([*self.node.notes, *extra]))
