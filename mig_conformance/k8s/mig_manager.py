"""nvidia-mig-manager's reconcile run as a pure function: the mig.config.state sequence and the GPUs after it.

Follows NVIDIA/mig-parted `pkg/mig/reconfigure/reconfigure.go` (snapshot bd7160f4, reference §8.9) step by step:
`assert --valid-config` (failure -> `failed`), `assert` (passes -> `success` at once), `assert --mode-only` (failure =
a mode change is needed), label `pending`, `apply --mode-only` + `assert --mode-only` (failure and WITH_REBOOT ->
label `rebooting` and reboot; without WITH_REBOOT the failure is ignored), `apply`, label `success` or `failed`.
`apply`/`assert` follow `cmd/nvidia-mig-parted/{apply,assert}/*.go` (reference §8.2, §8.3), walking (entry, GPU)
pairs in file order exactly as `WalkSelectedMigConfigForEachGPU` does, and stopping at the first error.

Modelling (documented in docs/k8s-semantics.md), the same as the NVML simulator's: a MIG mode change on an
`ampere` GPU stays pending until a GPU reset. mig-parted's `apply --mode-only` then resets all GPUs itself
(ResetAllGPUs: every GPU's MIG devices are gone afterwards); by default that reset takes effect. With
`gpu_reset_works=False` (pass-through VMs, where NVML's activation status is RESET_REQUIRED) only a reboot
(WITH_REBOOT) completes the change. Hopper and later switch mode at once, without a reset, so nothing is pending and
no GPU is reset (GoogleCloudPlatform/container-engine-accelerators `partition_gpu/partition_gpu.go` @992db812,
reference §11).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from mig_conformance.common.errors import InputError
from mig_conformance.gpus.catalog import MODE_CHANGE_NEEDS_RESET, GpuModel
from mig_conformance.gpus.device_ids import DeviceID
from mig_conformance.gpus.profile_names import ProfileFormatError, parse_profile
from mig_conformance.mig.config import creation_order, devices_equal, matches_key
from mig_conformance.mig.placement import FitResult, fit
from mig_conformance.mig.spec import MigConfigEntry, Spec, SpecProblem, load_spec
from mig_conformance.mig.state import ByIdentity, GpuMigState, initial_states, same_models

#: Architectures whose MIG mode change needs a GPU reset (MIG User Guide; GCP partition_gpu.go comment); the
#: NVML simulator uses the same set (catalog.MODE_CHANGE_NEEDS_RESET).
RESET_ARCHITECTURES = MODE_CHANGE_NEEDS_RESET

PENDING, REBOOTING, SUCCESS, FAILED = "pending", "rebooting", "success", "failed"
REBOOT_DID_NOT_HELP = "MIG mode change did not take effect after rebooting"  # reconfigure.go checkMigModeChangeRequired
ALL_ORDERINGS_FAILED = "error setting MIGConfig: error attempting multiple config orderings: all orderings failed"


def default_config_file() -> Path:
    """The shipped GPU Operator ConfigMap `default-mig-parted-config` (fixtures/configs)."""
    return Path(str(resources.files("mig_conformance.fixtures").joinpath("configs/default-mig-parted-config.yaml")))


@functools.cache
def default_spec() -> Spec:
    return load_spec(default_config_file())


@dataclass(frozen=True)
class MigManagerOutcome:
    """One mig-manager run: label values in order, the final one, why it failed, and the GPUs afterwards."""

    states: tuple[str, ...]
    state: str | None  # success | failed; None when the node has no nvidia.com/mig.config label
    reason: str | None
    gpus: tuple[GpuMigState, ...]
    mode_change: bool
    notes: tuple[str, ...] = ()  # real mig-parted behaviour worth knowing even on success

    def as_dict(self) -> dict[str, Any]:
        return {"states": list(self.states), "state": self.state, "reason": self.reason,
                "mode_change": self.mode_change, "notes": list(self.notes),
                "gpus": [g.as_dict() for g in self.gpus]}


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
        return tuple(GpuMigState(m, self.mode[i], self.devices[i]) for i, m in enumerate(self.models))


Pair = tuple[MigConfigEntry, int]


def _pairs(entries: Sequence[MigConfigEntry], models: Sequence[GpuModel]) -> list[Pair]:
    """(entry, GPU index) in the order WalkSelectedMigConfigForEachGPU visits them: entries first, then GPUs."""
    ids = [DeviceID.from_int(g.pci_device_id) for g in models]
    return [(e, i) for e in entries for i in range(len(models)) if e.selects(i, ids[i])]


def _known_keys(models: Sequence[GpuModel]) -> frozenset[tuple[int, int, int, bool, frozenset[str]]]:
    """Every MIG device name some GPU of the node offers (mig-parted's global ParseMigProfile, reference §8.2)."""
    return frozenset(matches_key(ci.name) for g in models if g.mig_capable
                     for gi in g.gi_profiles for ci in gi.compute_instances)


@functools.lru_cache(maxsize=4096)
def _fit(model: ByIdentity, devices: tuple[tuple[str, int], ...]) -> FitResult:
    return fit(model.obj, dict(devices))  # type: ignore[arg-type]


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
        elif model.architecture in RESET_ARCHITECTURES:
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


def _run(node: _Node, pairs: list[Pair], with_reboot: bool, rebooted: bool,
         states: list[str], reset_works: bool = True) -> tuple[str | None, bool]:
    """The part of Reconfigure.Run after config validation. Returns (failure reason, mode change needed)."""
    if _assert_mode(node, pairs) is None and _assert_config(node, pairs):
        states.append(SUCCESS)
        return None, False
    mode_change = _assert_mode(node, pairs) is not None
    if mode_change and rebooted:
        states.append(FAILED)
        return REBOOT_DID_NOT_HELP, True
    states.append(PENDING)
    error = None
    if _assert_mode(node, pairs) is not None:  # apply --mode-only
        error = _apply_mode(node, pairs, reset_works)
    error = error or _assert_mode(node, pairs)  # then assert --mode-only
    if error and with_reboot:
        states.append(REBOOTING)
        _reboot(node)
        reason, _ = _run(node, pairs, with_reboot, True, states, reset_works)
        return reason, True
    error = _apply(node, pairs, reset_works)  # a failed mode change without WITH_REBOOT is ignored
    states.append(FAILED if error else SUCCESS)
    return error, mode_change


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


@functools.lru_cache(maxsize=4096)
def _reconcile(spec_key: ByIdentity, models_key: tuple[ByIdentity, ...], selected: str,
               before: tuple[GpuMigState, ...], with_reboot: bool, reset_works: bool = True) -> MigManagerOutcome:
    spec: Spec = spec_key.obj  # type: ignore[assignment]
    models = tuple(m.obj for m in models_key)  # type: ignore[misc]
    if spec.problems:
        p = spec.problems[0]
        return MigManagerOutcome((FAILED,), FAILED, f"invalid config file: {p.upstream or p.message}", before, False)
    try:
        _, entries = spec.select(selected)
    except InputError as exc:
        p = exc.problems[0]
        reason = p.upstream if isinstance(p, SpecProblem) and p.upstream else p.message
        return MigManagerOutcome((FAILED,), FAILED, reason, before, False)
    node = _Node(models, [s.mig_enabled for s in before], [None] * len(models), [s.devices for s in before],
                 _known_keys(models))
    pairs = _pairs(entries, models)
    states: list[str] = []
    reason, mode_change = _run(node, pairs, with_reboot, False, states, reset_works)
    notes = tuple(dict.fromkeys([*node.notes, *_notes(node, entries, pairs)]))
    return MigManagerOutcome(tuple(states), states[-1], reason, node.states(), mode_change, notes)


def reconcile(gpus: Sequence[GpuModel], spec: Spec | None, selected: str | None,
              current: Sequence[GpuMigState] | None = None, with_reboot: bool = False,
              gpu_reset_works: bool = True) -> MigManagerOutcome:
    """What mig-manager does on a node whose `nvidia.com/mig.config` label is `selected`.

    `spec` None = the shipped default ConfigMap; `current` None = a fresh node (MIG disabled everywhere). Results are
    memoized on (spec identity, GPU model identities, selection, current state, with_reboot): treat specs as immutable.
    """
    models = tuple(gpus)
    before = tuple(current) if current is not None else initial_states(models)
    if not same_models(before, models):
        raise ValueError("current GPU states must list the same GPU models as gpus, in the same order")
    if selected is None:
        return MigManagerOutcome((), None, None, before, False)
    return _reconcile(ByIdentity(spec if spec is not None else default_spec()),
                      tuple(ByIdentity(m) for m in models), selected, before, with_reboot, gpu_reset_works)
