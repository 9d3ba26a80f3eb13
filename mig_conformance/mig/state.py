"""Per-GPU MIG state as the GPU Operator components see it: MIG mode and the MIG devices (CIs) that exist.

Device names are the profile strings NVML-based tools derive for each MIG device (go-nvlib `MigProfile.String()`):
`3g.40gb`, `1g.10gb+me`, or `1c.3g.40gb` for a compute instance smaller than its GPU instance.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mig_conformance.common.identity import ByIdentity
from mig_conformance.gpus.catalog import GpuModel
from mig_conformance.gpus.profile_names import ProfileFormatError


@dataclass(frozen=True)
class GpuMigState:
    """One GPU: its model, whether MIG mode is enabled, and the MIG devices on it (one entry per CI)."""

    # hash=False: the model still takes part in ==, but hashing a state stays cheap (models are deep tuples).
    model: GpuModel = field(hash=False, repr=False)
    mig_enabled: bool = False
    devices: tuple[str, ...] = ()
    #: a MIG mode set but not yet in effect (Ampere until a GPU reset or reboot); None when nothing is pending
    pending: bool | None = None

    def __repr__(self) -> str:
        pending = "" if self.pending is None else f", pending={self.pending}"
        return f"GpuMigState({self.model.key}, mig_enabled={self.mig_enabled}, devices={self.devices!r}{pending})"

    @property
    def mig_capable(self) -> bool:
        return self.model.mig_capable

    @property
    def counts(self) -> dict[str, int]:
        """MIG devices per profile name, in device order of first appearance."""
        return dict(Counter(self.devices))

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model.key, "mig_enabled": self.mig_enabled, "devices": list(self.devices)}


def initial_state(model: GpuModel) -> GpuMigState:
    """A GPU as a fresh node has it: MIG mode disabled (the factory default), no MIG devices."""
    return GpuMigState(model, False, ())


def initial_states(gpus: Iterable[GpuModel]) -> tuple[GpuMigState, ...]:
    return tuple(initial_state(g) for g in gpus)


@dataclass(frozen=True)
class MigDeviceAttributes:
    """NVML `nvmlDeviceGetAttributes` of one MIG device, from the catalog (None where the catalog has no value)."""

    memory_mib: int | None
    multiprocessors: int | None
    gi_slices: int
    ci_slices: int
    copy_engines: int | None
    decoders: int | None
    encoders: int | None
    jpeg: int | None
    ofa: int | None


@functools.cache
def _attributes(model: ByIdentity[GpuModel], name: str) -> MigDeviceAttributes | None:
    gpu: GpuModel = model.obj
    try:
        resolved = gpu.resolve(name)
    except ProfileFormatError:
        return None
    if resolved is None:
        return None
    gi, ci = resolved
    e = gi.engines
    return MigDeviceAttributes(gi.memory_mib, ci.sm, gi.slices, ci.slices, e.ce, e.dec, e.enc, e.jpeg, e.ofa)


def device_attributes(model: GpuModel, name: str) -> MigDeviceAttributes | None:
    """Attributes of MIG device `name` on `model` (GI memory/engines are shared by its CIs), or None if unknown."""
    return _attributes(ByIdentity(model), name)


def same_models(a: Sequence[GpuMigState], b: Sequence[GpuModel]) -> bool:
    return len(a) == len(b) and all(s.model is m or s.model == m for s, m in zip(a, b, strict=True))
