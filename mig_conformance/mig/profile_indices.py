"""NVML's GPU- and compute-instance profile indices, and the MIG device name go-nvlib derives from them.

One table for the whole kit (the NVML simulator's pynvml constants, the mig-parted simulator, the projection,
capture and the suites all read it). Sources:

* the index constants: `NVML_GPU_INSTANCE_PROFILE_*` / `NVML_COMPUTE_INSTANCE_PROFILE_*` in NVIDIA/go-nvml
  `pkg/nvml/nvml.h` (v0.13.4-1, the module the kit's differential test builds);
* G, attributes and C per index: go-nvlib `pkg/nvlib/device/mig_profile.go` `NewMigProfile` (v0.12.0, as vendored
  by NVIDIA/mig-parted v0.15.0). That version has no case for index 0x11 (`3_SLICE_GFX`): it cannot name a device
  of that profile (`named_by_go_nvlib=False`);
* driver 580.159.04 answers `nvmlDeviceGetGpuInstanceProfileInfo` with InvalidArgument from index 0x11 on
  (`FIRST_INVALID_GI_INDEX`; NVML capture of an H100 80GB HBM3, tests/data/captures/h100-80gb-hbm3-580).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from mig_conformance.gpus.profile_names import ProfileName, memory_gb


@dataclass(frozen=True)
class GiIndex:
    """One `NVML_GPU_INSTANCE_PROFILE_<constant>` index: its slices (G) and the attributes of its devices' names."""

    index: int
    constant: str
    g: int
    attributes: tuple[str, ...] = ()
    negative: bool = False
    named_by_go_nvlib: bool = True

    @property
    def suffix(self) -> str:
        """The name's attribute suffix as go-nvlib writes it: '', '+me', '-me', '+me.all', '+gfx'."""
        if not self.attributes:
            return ""
        return ("-" if self.negative else "+") + ",".join(self.attributes)


GI_INDICES: tuple[GiIndex, ...] = (
    GiIndex(0x0, "1_SLICE", 1),
    GiIndex(0x1, "2_SLICE", 2),
    GiIndex(0x2, "3_SLICE", 3),
    GiIndex(0x3, "4_SLICE", 4),
    GiIndex(0x4, "7_SLICE", 7),
    GiIndex(0x5, "8_SLICE", 8),
    GiIndex(0x6, "6_SLICE", 6),
    GiIndex(0x7, "1_SLICE_REV1", 1, ("me",)),
    GiIndex(0x8, "2_SLICE_REV1", 2, ("me",)),
    GiIndex(0x9, "1_SLICE_REV2", 1),
    GiIndex(0xA, "1_SLICE_GFX", 1, ("gfx",)),
    GiIndex(0xB, "2_SLICE_GFX", 2, ("gfx",)),
    GiIndex(0xC, "4_SLICE_GFX", 4, ("gfx",)),
    GiIndex(0xD, "1_SLICE_NO_ME", 1, ("me",), negative=True),
    GiIndex(0xE, "2_SLICE_NO_ME", 2, ("me",), negative=True),
    GiIndex(0xF, "1_SLICE_ALL_ME", 1, ("me.all",)),
    GiIndex(0x10, "2_SLICE_ALL_ME", 2, ("me.all",)),
    GiIndex(0x11, "3_SLICE_GFX", 3, ("gfx",), named_by_go_nvlib=False),
)
GI_PROFILE_COUNT = 0x12  # NVML_GPU_INSTANCE_PROFILE_COUNT
GI_BY_INDEX = {gi.index: gi for gi in GI_INDICES}
GI_REV2_INDEX = 0x9  # 1_SLICE_REV2: a 1-slice GI with twice the memory (1g.20gb on H100), named like 1_SLICE
#: First GI profile index driver 580 rejects with InvalidArgument (module doc).
FIRST_INVALID_GI_INDEX = 0x11

#: NVML_COMPUTE_INSTANCE_PROFILE_* index -> compute slices (C), and the constants' names.
CI_SLICES = {0x0: 1, 0x1: 2, 0x2: 3, 0x3: 4, 0x4: 7, 0x5: 8, 0x6: 6, 0x7: 1, 0x8: 7}
CI_CONSTANTS = {0x0: "1_SLICE", 0x1: "2_SLICE", 0x2: "3_SLICE", 0x3: "4_SLICE", 0x4: "7_SLICE", 0x5: "8_SLICE",
                0x6: "6_SLICE", 0x7: "1_SLICE_REV1", 0x8: "7_SLICE_NVL"}
CI_PROFILE_COUNT = 0x9  # NVML_COMPUTE_INSTANCE_PROFILE_COUNT
CI_REV1_INDEX = 0x7
#: The plain (not REV1/NVL) CI index of a compute instance with C slices.
CI_INDEX_BY_SLICES = {c: i for i, c in sorted(CI_SLICES.items(), reverse=True)}

#: GI indices of the attribute-free ("base") profiles, by the short name the suites and generate-config use.
BASE_GI_INDICES = {"1g": 0x0, "1g.2x": GI_REV2_INDEX, "2g": 0x1, "3g": 0x2, "4g": 0x3, "7g": 0x4}

_BY_SHAPE = {(gi.g, gi.suffix): gi.index for gi in GI_INDICES if gi.index != GI_REV2_INDEX}


def gi_index_of(name: ProfileName, rev2: bool = False) -> int | None:
    """The GI index whose devices carry `name`'s G and attributes; `rev2` picks 1_SLICE_REV2 for a plain 1g name
    (the name alone cannot tell 1_SLICE from 1_SLICE_REV2: their memory differs). None when no index matches."""
    if rev2 and name.g == 1 and not name.attributes:
        return GI_REV2_INDEX
    return _BY_SHAPE.get((name.g, name.suffix))


class UnnamedProfile(ValueError):
    """go-nvlib cannot name a device of this GI or CI index (its NewMigProfile returns an error)."""


@functools.lru_cache(maxsize=4096)
def device_name(gi_index: int, ci_index: int, mig_memory_mib: int, device_memory_mib: int) -> ProfileName:
    """go-nvlib NewMigProfile: the name of a MIG device from its GI and CI profile indices and memory (the 'gb'
    number by `profile_names.memory_gb`). Raises UnnamedProfile with go-nvlib's message for an index it lacks."""
    gi = GI_BY_INDEX.get(gi_index)
    if gi is None or not gi.named_by_go_nvlib:
        raise UnnamedProfile(f"invalid GPU Instance Profile ID: {gi_index}")
    if ci_index not in CI_SLICES:
        raise UnnamedProfile(f"invalid Compute Instance Profile ID: {ci_index}")
    gb = memory_gb(mig_memory_mib, device_memory_mib) if device_memory_mib else 0
    return ProfileName(g=gi.g, gb=gb, c=CI_SLICES[ci_index], attributes=gi.attributes, negative=gi.negative)


def listed_by_go_nvlib(c: int, g: int) -> bool:
    """go-nvlib GetMigProfiles keeps a CI of C slices in a GI of G slices when C == G, or C < G with 2C <= G + 1
    (so 1c/2c.3g, 1c/2c.4g, 1c/2c/3c/4c.7g are listed; 3c.4g is not)."""
    return c == g or (c < g and 2 * c <= g + 1)
