"""An in-memory NVML with pynvml's call shapes, driven by the GPU catalog (docs/reference/nvml.md).

One `NvmlSimulator` is one node: GPUs in PCI order with MIG mode (current, pending), GPU instances (GIs) and
compute instances (CIs). Methods carry pynvml's names (`nvmlDeviceCreateGpuInstance(...)`); the module-level
functions of the same names forward to the simulator installed with `use()`. Calls that pynvml shapes with
C out-parameters (`nvmlDeviceGetGpuInstancePossiblePlacements`, `nvmlDeviceGetGpuInstances`,
`nvmlGpuInstanceGetComputeInstances`) return Python lists instead.

Semantics that are observed (NVML captures, driver 580.159.04): profile info works while MIG is disabled, indices with
no profile give NotSupported and index 0x11 and above InvalidArgument. R535 drivers cannot list profiles while
MIG is disabled (docs/reference/nvml.md#driver-differences): nodes with R535 or older do so (`legacy_driver`).

Mode changes (docs/reference/nvml.md#mig-mode-changes): Ampere's `nvmlDeviceSetMigMode` sets a pending mode, which a GPU
reset (`reset()`) or a reboot makes current. From Hopper on the new mode takes effect at once when the GPU is idle;
a GPU in `faults.in_use` (not idle) keeps it pending and the activation status is NVML_ERROR_IN_USE. On a node
whose platform exposes no GPU reset (`gpu_reset_works=False`: pass-through VMs) an Ampere change returns the
activation status NVML_ERROR_RESET_REQUIRED and `reset()` raises ResetRequired: only a reboot completes it.

Values the catalog does not know (docs/catalog.md: "never invented") keep pynvml's call shapes, so they come back
as placeholder numbers, always named in the structure's `unknown` field (a tuple of field names) and explained in
its `unconfirmed` field (the catalog reason; None when the row is confirmed):
  * SM and engine counts, P2P: 0;
  * memorySizeMB of a GI profile: its share of memory slots of the device memory (which reproduces the
    profile name's "gb" under go-nvlib's naming rule, so mig-parted matches names as on hardware);
  * device memory.total: the whole-GPU profile's "gb" in GiB, else the largest known GI memory;
  * values of a variant (board) that the catalog marks unconfirmed: the model's values, flagged the same way.
`device_notes(handle)` lists what is unconfirmed about a GPU as a whole. The kit's nvidia-smi renderer prints `?`
for unknown values and these notes on stderr; `capture` writes null. Choices where the reference is silent
are marked [CHOICE] in the docstrings.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from mig_conformance.common.errors import InputError
from mig_conformance.common.yaml_source import read_bytes
from mig_conformance.gpus.catalog import (
    MAX_NODE_GPUS,
    MODE_CHANGE_NEEDS_RESET,
    Catalog,
    CiProfile,
    GiProfile,
    GpuModel,
    GpuVariant,
    load_catalog,
)
from mig_conformance.gpus.instance_types import get_instance_type
from mig_conformance.mig import profile_indices as indices
from mig_conformance.mig.placement import check_gi_multiset, choose_placement, gi_instance_id

_GI = {gi.constant: gi.index for gi in indices.GI_INDICES}
_CI = {name: index for index, name in indices.CI_CONSTANTS.items()}

# --- constants (pynvml names) ------------------------------------------------------------------------------

NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_ALREADY_INITIALIZED = 5
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_RESET_REQUIRED = 16
NVML_ERROR_IN_USE = 19
NVML_ERROR_INSUFFICIENT_RESOURCES = 23
NVML_ERROR_UNKNOWN = 999

NVML_DEVICE_MIG_DISABLE = 0
NVML_DEVICE_MIG_ENABLE = 1

# GPU/compute instance profile indices: pynvml's names for the kit's one table (mig/profile_indices.py).
NVML_GPU_INSTANCE_PROFILE_1_SLICE = _GI["1_SLICE"]
NVML_GPU_INSTANCE_PROFILE_2_SLICE = _GI["2_SLICE"]
NVML_GPU_INSTANCE_PROFILE_3_SLICE = _GI["3_SLICE"]
NVML_GPU_INSTANCE_PROFILE_4_SLICE = _GI["4_SLICE"]
NVML_GPU_INSTANCE_PROFILE_7_SLICE = _GI["7_SLICE"]
NVML_GPU_INSTANCE_PROFILE_8_SLICE = _GI["8_SLICE"]
NVML_GPU_INSTANCE_PROFILE_6_SLICE = _GI["6_SLICE"]
NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV1 = _GI["1_SLICE_REV1"]
NVML_GPU_INSTANCE_PROFILE_2_SLICE_REV1 = _GI["2_SLICE_REV1"]
NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV2 = _GI["1_SLICE_REV2"]
NVML_GPU_INSTANCE_PROFILE_1_SLICE_GFX = _GI["1_SLICE_GFX"]
NVML_GPU_INSTANCE_PROFILE_2_SLICE_GFX = _GI["2_SLICE_GFX"]
NVML_GPU_INSTANCE_PROFILE_4_SLICE_GFX = _GI["4_SLICE_GFX"]
NVML_GPU_INSTANCE_PROFILE_1_SLICE_NO_ME = _GI["1_SLICE_NO_ME"]
NVML_GPU_INSTANCE_PROFILE_2_SLICE_NO_ME = _GI["2_SLICE_NO_ME"]
NVML_GPU_INSTANCE_PROFILE_1_SLICE_ALL_ME = _GI["1_SLICE_ALL_ME"]
NVML_GPU_INSTANCE_PROFILE_2_SLICE_ALL_ME = _GI["2_SLICE_ALL_ME"]
NVML_GPU_INSTANCE_PROFILE_3_SLICE_GFX = _GI["3_SLICE_GFX"]
NVML_GPU_INSTANCE_PROFILE_COUNT = indices.GI_PROFILE_COUNT

NVML_COMPUTE_INSTANCE_PROFILE_1_SLICE = _CI["1_SLICE"]
NVML_COMPUTE_INSTANCE_PROFILE_2_SLICE = _CI["2_SLICE"]
NVML_COMPUTE_INSTANCE_PROFILE_3_SLICE = _CI["3_SLICE"]
NVML_COMPUTE_INSTANCE_PROFILE_4_SLICE = _CI["4_SLICE"]
NVML_COMPUTE_INSTANCE_PROFILE_7_SLICE = _CI["7_SLICE"]
NVML_COMPUTE_INSTANCE_PROFILE_8_SLICE = _CI["8_SLICE"]
NVML_COMPUTE_INSTANCE_PROFILE_6_SLICE = _CI["6_SLICE"]
NVML_COMPUTE_INSTANCE_PROFILE_1_SLICE_REV1 = _CI["1_SLICE_REV1"]
NVML_COMPUTE_INSTANCE_PROFILE_7_SLICE_NVL = _CI["7_SLICE_NVL"]
NVML_COMPUTE_INSTANCE_PROFILE_COUNT = indices.CI_PROFILE_COUNT
NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED = 0x0
NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_COUNT = 0x1

FIRST_INVALID_GI_INDEX = indices.FIRST_INVALID_GI_INDEX

DRIVER_580 = "580.159.04"  # the NVML captures (tests/data/captures)
DRIVER_535 = "535.183.01"  # an R535 driver (A30 log, docs/reference/profiles.md#a30-24gb)
LAST_LEGACY_BRANCH = 535  # R535 lists no MIG profiles while MIG is disabled (docs/reference/nvml.md#driver-differences)


def is_legacy_driver(version: str) -> bool:
    """R535 and older branches: no profile queries while MIG is disabled. [CHOICE] Branches older than R535 are
    treated like it; those between R535 and R580 like R580 (no source says either way)."""
    try:
        return int(version.split(".")[0]) <= LAST_LEGACY_BRANCH
    except ValueError:
        return False

NVML_DEVICE_ARCH_TURING = 6
NVML_DEVICE_ARCH_AMPERE = 7
NVML_DEVICE_ARCH_ADA = 8
NVML_DEVICE_ARCH_HOPPER = 9
NVML_DEVICE_ARCH_BLACKWELL = 10
_ARCH = {"turing": NVML_DEVICE_ARCH_TURING, "ampere": NVML_DEVICE_ARCH_AMPERE, "ada": NVML_DEVICE_ARCH_ADA,
         "hopper": NVML_DEVICE_ARCH_HOPPER, "blackwell": NVML_DEVICE_ARCH_BLACKWELL}
# FP32 cores per SM by compute capability (CUDA C++ Programming Guide, arithmetic instructions table).
_CORES_PER_SM = {(7, 5): 64, (8, 0): 64, (8, 6): 128, (8, 9): 128, (9, 0): 128, (10, 0): 128, (12, 0): 128}

# --- errors (pynvml's classes and str() texts) ---------------------------------------------------------------

_TEXTS = {
    NVML_ERROR_UNINITIALIZED: "Uninitialized",
    NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument",
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
    NVML_ERROR_ALREADY_INITIALIZED: "Already Initialized",
    NVML_ERROR_NOT_FOUND: "Not Found",
    NVML_ERROR_RESET_REQUIRED: "GPU requires restart",
    NVML_ERROR_IN_USE: "In use by another client",
    NVML_ERROR_INSUFFICIENT_RESOURCES: "Insufficient Resources",
    NVML_ERROR_UNKNOWN: "Unknown Error",
}


class NVMLError(Exception):
    """Base NVML error; `NVMLError(code)` returns the subclass for `code`, as pynvml does."""

    value: int = NVML_ERROR_UNKNOWN
    _by_code: ClassVar[dict[int, type[NVMLError]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        NVMLError._by_code[cls.value] = cls

    def __new__(cls, value: int | None = None) -> NVMLError:
        if cls is NVMLError and value in NVMLError._by_code:
            cls = NVMLError._by_code[value]
        obj = Exception.__new__(cls)
        obj.value = cls.value if value is None else value
        return obj

    def __init__(self, value: int | None = None) -> None:
        super().__init__(self.value)

    def __str__(self) -> str:
        return _TEXTS.get(self.value, f"NVML Error with code {self.value}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (NVMLError, (self.value,))


class NVMLError_Uninitialized(NVMLError):  # pynvml names the error classes NVMLError_<Name>
    value = NVML_ERROR_UNINITIALIZED


class NVMLError_InvalidArgument(NVMLError):
    value = NVML_ERROR_INVALID_ARGUMENT


class NVMLError_NotSupported(NVMLError):
    value = NVML_ERROR_NOT_SUPPORTED


class NVMLError_NoPermission(NVMLError):
    value = NVML_ERROR_NO_PERMISSION


class NVMLError_NotFound(NVMLError):
    value = NVML_ERROR_NOT_FOUND


class NVMLError_ResetRequired(NVMLError):
    value = NVML_ERROR_RESET_REQUIRED


class NVMLError_InUse(NVMLError):
    value = NVML_ERROR_IN_USE


class NVMLError_InsufficientResources(NVMLError):
    value = NVML_ERROR_INSUFFICIENT_RESOURCES


class NVMLError_Unknown(NVMLError):
    value = NVML_ERROR_UNKNOWN


def error_code(error: type[NVMLError] | NVMLError | int) -> int:
    """The NVML return code of an error class, instance or code."""
    return error if isinstance(error, int) else error.value


# --- returned structures (pynvml field names) --------------------------------------------------------------

#: Fields the simulator adds to pynvml's structures (module doc); they take no part in equality.
EXTENSION_FIELDS = ("unknown", "unconfirmed")


def pynvml_fields(info: Any) -> dict[str, Any]:
    """A returned structure's pynvml fields (without EXTENSION_FIELDS)."""
    return {k: v for k, v in vars(info).items() if k not in EXTENSION_FIELDS}



@dataclass(frozen=True)
class PciInfo:
    busId: str
    busIdLegacy: str
    domain: int
    bus: int
    device: int
    pciDeviceId: int
    pciSubSystemId: int


@dataclass(frozen=True)
class Memory:
    total: int
    free: int
    used: int
    unknown: tuple[str, ...] = field(default=(), compare=False)  # fields holding placeholders (module doc)
    unconfirmed: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class DeviceAttributes:
    multiprocessorCount: int
    sharedCopyEngineCount: int
    sharedDecoderCount: int
    sharedEncoderCount: int
    sharedJpegCount: int
    sharedOfaCount: int
    gpuInstanceSliceCount: int
    computeInstanceSliceCount: int
    memorySizeMB: int
    unknown: tuple[str, ...] = field(default=(), compare=False)
    unconfirmed: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class GpuInstanceProfileInfo:
    id: int
    isP2pSupported: int
    sliceCount: int
    instanceCount: int
    multiprocessorCount: int
    copyEngineCount: int
    decoderCount: int
    encoderCount: int
    jpegCount: int
    ofaCount: int
    memorySizeMB: int
    name: str
    version: int = 0
    unknown: tuple[str, ...] = field(default=(), compare=False)  # pynvml fields holding placeholders (module doc)
    unconfirmed: str | None = field(default=None, compare=False)  # catalog reason; None = confirmed


@dataclass(frozen=True)
class ComputeInstanceProfileInfo:
    id: int
    sliceCount: int
    instanceCount: int
    multiprocessorCount: int
    sharedCopyEngineCount: int
    sharedDecoderCount: int
    sharedEncoderCount: int
    sharedJpegCount: int
    sharedOfaCount: int
    name: str
    version: int = 0
    unknown: tuple[str, ...] = field(default=(), compare=False)
    unconfirmed: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class GpuInstancePlacement:
    start: int
    size: int


@dataclass(frozen=True)
class ComputeInstancePlacement:
    start: int
    size: int


# --- handles -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceHandle:
    """A full GPU, by NVML index."""

    index: int


@dataclass(frozen=True)
class MigDeviceHandle:
    """A MIG device (one CI). `serial` tells a recreated CI from a destroyed one."""

    gpu: int
    gi_id: int
    ci_id: int
    serial: int


@dataclass(frozen=True)
class GpuInstanceHandle:
    gpu: int
    gi_id: int
    serial: int


@dataclass(frozen=True)
class ComputeInstanceHandle:
    gpu: int
    gi_id: int
    ci_id: int
    serial: int


@dataclass(frozen=True)
class GpuInstanceInfo:
    device: DeviceHandle
    id: int
    profileId: int
    placement: GpuInstancePlacement


@dataclass(frozen=True)
class ComputeInstanceInfo:
    device: DeviceHandle
    gpuInstance: GpuInstanceHandle
    id: int
    profileId: int
    placement: ComputeInstancePlacement


# --- node state --------------------------------------------------------------------------------------------


@dataclass(slots=True)  # no per-instance dict: a 10,000-node fleet holds millions of these
class CiState:
    id: int
    profile_id: int  # CI profile index = id (docs/reference/nvml.md#compute-instance-profiles)
    start: int
    size: int
    serial: int


@dataclass(slots=True)
class GiState:
    id: int
    profile_id: int  # NVML GI profile ID (info.id), not the index
    start: int
    size: int
    serial: int
    cis: dict[int, CiState] = field(default_factory=dict)
    #: one object held by several nodes (`replay`): never changed in place; `_own_gi` copies it first
    shared: bool = field(default=False, compare=False, repr=False)


#: GI states that replays hand out, by their full value (ids, placement, serials, CIs): the equal nodes of a fleet
#: hold the same objects instead of 10,000 copies (and Python's cycle collector has that many fewer to scan).
_SHARED_GIS: dict[tuple[Any, ...], GiState] = {}
_SHARED_GIS_MAX = 4096


def _shared_gi(key: tuple[Any, ...]) -> GiState:
    gi = _SHARED_GIS.get(key)
    if gi is None:
        gi_id, profile_id, start, size, serial, cis = key
        gi = GiState(gi_id, profile_id, start, size, serial, {c[0]: CiState(*c) for c in cis}, shared=True)
        if len(_SHARED_GIS) >= _SHARED_GIS_MAX:
            _SHARED_GIS.clear()
        _SHARED_GIS[key] = gi
    return gi


@dataclass(slots=True)
class GpuState:
    model: GpuModel
    variant: GpuVariant
    uuid: str
    bus_id: str
    subsystem_id: int
    mig_current: int = NVML_DEVICE_MIG_DISABLE
    mig_pending: int = NVML_DEVICE_MIG_DISABLE
    gis: dict[int, GiState] = field(default_factory=dict)


@dataclass(frozen=True)
class NvmlChanges:
    """What a command left on a node, replayable on another node in the same state (`NvmlSimulator.replay`)."""

    serials: int  # serial numbers the command used up
    gpus: tuple[Any, ...]  # per GPU: (mig_current, mig_pending, GIs with relative serials and their CIs)


@dataclass
class CreateFailure:
    """Fail the `remaining`-th next create call of `kind` ('gi', 'ci' or 'any') with NVML code `code`."""

    kind: str
    remaining: int
    code: int
    gpu: int | None = None


@dataclass
class Faults:
    """Injected faults. `in_use`: GPUs that report IN_USE activation and refuse a reset."""

    create_failures: list[CreateFailure] = field(default_factory=list)
    in_use: set[int] = field(default_factory=set)

    @property
    def active(self) -> bool:
        return bool(self.create_failures or self.in_use)

    def fail_create(self, nth: int, error: type[NVMLError] | NVMLError | int, kind: str = "any",
                    gpu: int | None = None) -> None:
        """Make the `nth` next create (1 = the very next) of `kind` fail with `error`."""
        if kind not in ("gi", "ci", "any") or nth < 1:
            raise ValueError("kind must be gi, ci or any and nth >= 1")
        self.create_failures.append(CreateFailure(kind, nth, error_code(error), gpu))

    def check_create(self, kind: str, gpu: int) -> None:
        """Count one create call; raise the injected error when a rule reaches its turn."""
        for rule in list(self.create_failures):
            if rule.kind not in (kind, "any") or rule.gpu not in (None, gpu):
                continue
            rule.remaining -= 1
            if rule.remaining == 0:
                self.create_failures.remove(rule)
                raise NVMLError(rule.code)


# --- catalog-derived numbers -------------------------------------------------------------------------------


def device_memory_mib(model: GpuModel) -> int:
    """NVML memory.total in MiB.

    [CHOICE] Unknown totals (a placeholder, see `device_memory_known`): the "gb" of the whole-GPU profile's name in
    GiB (so names computed with memory_gb match the catalog), else the largest GI memory rounded up to a GiB.
    """
    if model.memory_total_mib:
        return model.memory_total_mib
    whole = [p for p in model.gi_profiles if p.placement_size == model.memory_slots]
    if whole:
        return whole[0].parsed.gb * 1024
    known = [p.memory_mib for p in model.gi_profiles if p.memory_mib]
    return math.ceil(max(known) / 1024) * 1024 if known else 0


def device_memory_known(model: GpuModel, variant: GpuVariant | None = None) -> bool:
    """Whether memory.total is a catalog fact for this board (else `device_memory_mib` is a placeholder)."""
    return bool(model.memory_total_mib) and not (variant and "memory_total_mib" in variant.unconfirmed)


def profile_memory_mib(model: GpuModel, gi: GiProfile) -> int:
    """memorySizeMB of a GI profile. [CHOICE] Unknown values (placeholders): the GI's share of memory slots."""
    if gi.memory_mib is not None:
        return gi.memory_mib
    return device_memory_mib(model) * gi.placement_size // (model.memory_slots or 1)


# Catalog row fields -> the pynvml fields that carry them.
GI_INFO_FIELDS = {"sm": "multiprocessorCount", "memory_mib": "memorySizeMB", "ce": "copyEngineCount",
                  "dec": "decoderCount", "enc": "encoderCount", "jpeg": "jpegCount", "ofa": "ofaCount",
                  "p2p": "isP2pSupported"}
CI_INFO_FIELDS = {"sm": "multiprocessorCount", "ce": "sharedCopyEngineCount", "dec": "sharedDecoderCount",
                  "enc": "sharedEncoderCount", "jpeg": "sharedJpegCount", "ofa": "sharedOfaCount"}


def _join(*notes: str | None) -> str | None:
    found = [n for n in notes if n]
    return "; ".join(dict.fromkeys(found)) or None


def gi_row_unknown(variant: GpuVariant, p: GiProfile) -> tuple[str, ...]:
    """Catalog fields of a GI row whose simulated values are placeholders on this board."""
    wanted = {*p.unknown_fields, *variant.unconfirmed_row_fields}
    return tuple(f for f in GI_INFO_FIELDS if f in wanted)


def gi_row_note(variant: GpuVariant, p: GiProfile) -> str | None:
    """Why a GI row is not confirmed on this board (catalog reasons), None when it is."""
    board = (f"board {variant.key}: {', '.join(variant.unconfirmed)} not confirmed (see its device note)"
             if not variant.confirmed else None)
    return _join(p.reason if not p.confirmed else None, board)


def _ci_mask(start: int, size: int) -> int:
    return ((1 << size) - 1) << start


_UUID_PREFIX = uuid.NAMESPACE_URL.bytes + b"mig-conformance-sim:"


def _stable_uuid(*parts: object) -> str:
    """`uuid.uuid5(NAMESPACE_URL, "mig-conformance-sim:" + "/".join(parts))` as text, computed directly (RFC 4122
    section 4.3: SHA-1, version 5, variant 10): `uuid5` builds a UUID object, which costs a fleet a second."""
    digest = bytearray(hashlib.sha1(_UUID_PREFIX + "/".join(str(p) for p in parts).encode()).digest()[:16])
    digest[6] = digest[6] & 0x0F | 0x50
    digest[8] = digest[8] & 0x3F | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _bus_numbers(count: int) -> list[int]:
    """Ascending PCI bus numbers: p5-like 0x53, 0x64, ... for up to 10 GPUs, denser beyond."""
    if count <= 10:
        return [0x53 + 0x11 * i for i in range(count)]
    if count <= MAX_NODE_GPUS:
        return [0x10 + 4 * i for i in range(count)]
    raise InputError(f"at most {MAX_NODE_GPUS} GPUs per simulated node, got {count}")


# --- the simulator -----------------------------------------------------------------------------------------

# Profile infos are catalog numbers only, so each is built once and shared (the info structures are frozen).
# Keys are object ids; each entry holds the objects themselves, so an id is never reused while it is cached.
_GI_INFOS: dict[tuple[int, int], tuple[GpuVariant, GiProfile, GpuInstanceProfileInfo]] = {}
_CI_INFOS: dict[tuple[int, int, int], tuple[GpuVariant, GiProfile, CiProfile, ComputeInstanceProfileInfo]] = {}
_CI_BY_INDEX: dict[tuple[int, int], tuple[GiProfile, CiProfile | None]] = {}


class NvmlSimulator:
    """One simulated node. Build it from GPU models (PCI order) or with `from_instance_type`."""

    def __init__(self, gpus: Sequence[GpuModel | GpuVariant | str], name: str = "sim-node", *,
                 catalog: Catalog | None = None, legacy_driver: bool | None = None, driver_version: str | None = None,
                 subsystem_id: int = 0x000010DE, gpu_reset_works: bool = True) -> None:
        """GPUs as models (their primary board), variants, or GPU specs (`H100-PCIE-80GB`, catalog.resolve).

        `driver_version` defaults to R535 with `legacy_driver`, else the first model's catalog driver, else
        580.159.04 (captured); an explicit one selects the models' values under that driver (`GpuModel.at_driver`:
        profile memory differs by branch; unknown values are placeholders, flagged like any other). `legacy_driver`
        (default: whether the driver is R535 or older) makes profile queries NotSupported while MIG is disabled.
        `gpu_reset_works=False`: a platform without GPU reset (module doc).
        """
        # models need no catalog: a fleet of 10,000 nodes would otherwise look the catalog up 10,000 times
        cat = catalog if catalog is not None or all(isinstance(g, GpuModel) for g in gpus) else load_catalog()
        boards = [self._board(g, cat) for g in gpus]
        if driver_version is not None:
            boards = [(m.at_driver(driver_version), v) for m, v in boards]
        self.name = name
        known = [m.driver for m, _ in boards if m.driver]
        self.driver_version = driver_version or (DRIVER_535 if legacy_driver else known[0] if known else DRIVER_580)
        self.legacy_driver = is_legacy_driver(self.driver_version) if legacy_driver is None else legacy_driver
        self.gpu_reset_works = gpu_reset_works
        self.faults = Faults()
        self._serial = 0
        self._init_count = 0
        self.gpus: list[GpuState] = []
        for i, ((model, variant), bus) in enumerate(zip(boards, _bus_numbers(len(boards)), strict=True)):
            self.gpus.append(GpuState(model=model, variant=variant, uuid=f"GPU-{_stable_uuid(name, i)}",
                                      bus_id=f"00000000:{bus:02X}:00.0", subsystem_id=subsystem_id))

    @staticmethod
    def _board(gpu: GpuModel | GpuVariant | str, catalog: Catalog | None) -> tuple[GpuModel, GpuVariant]:
        if isinstance(gpu, GpuModel):
            return gpu, gpu.primary_variant
        assert catalog is not None  # __init__ loads it for anything but models
        if isinstance(gpu, GpuVariant):
            model = catalog.gpus.get(gpu.model_key) or catalog.get(gpu.model_key)
            return model, gpu
        return catalog.resolve(gpu)

    @classmethod
    def from_instance_type(cls, instance_type: str, name: str | None = None, **kwargs: Any) -> NvmlSimulator:
        """A node with the GPUs of an EC2 instance type (fixtures/instance-types.yaml)."""
        it = get_instance_type(instance_type)
        return cls(it.gpus(kwargs.get("catalog")), name or instance_type, **kwargs)

    # -- versions --------------------------------------------------------------------------------------------

    @property
    def nvml_version(self) -> str:
        """[CHOICE] CUDA 12 NVML before R580, 13 from R580 (captured: 13.580.159.04)."""
        major = int(self.driver_version.split(".")[0])
        return f"{12 if major < 580 else 13}.{self.driver_version}"

    # -- internal helpers ------------------------------------------------------------------------------------

    def _check_init(self) -> None:
        if self._init_count <= 0:
            raise NVMLError_Uninitialized()

    def _gpu(self, handle: Any) -> GpuState:
        self._check_init()
        if not isinstance(handle, DeviceHandle) or not 0 <= handle.index < len(self.gpus):
            raise NVMLError_InvalidArgument()
        return self.gpus[handle.index]

    def _mig_gpu(self, handle: Any) -> GpuState:
        # _gpu inlined: this is on every profile query of every walk
        if self._init_count <= 0:
            raise NVMLError_Uninitialized()
        if not isinstance(handle, DeviceHandle) or not 0 <= handle.index < len(self.gpus):
            raise NVMLError_InvalidArgument()
        gpu = self.gpus[handle.index]
        if not gpu.model.mig_capable:
            raise NVMLError_NotSupported()
        return gpu

    def _gi(self, handle: Any) -> tuple[GpuState, GiState]:
        self._check_init()
        if not isinstance(handle, GpuInstanceHandle) or not 0 <= handle.gpu < len(self.gpus):
            raise NVMLError_InvalidArgument()
        gpu = self.gpus[handle.gpu]
        gi = gpu.gis.get(handle.gi_id)
        if gi is None or gi.serial != handle.serial:
            raise NVMLError_InvalidArgument()
        return gpu, gi

    def _ci(self, handle: Any) -> tuple[GpuState, GiState, CiState]:
        self._check_init()
        if not isinstance(handle, ComputeInstanceHandle | MigDeviceHandle) or not 0 <= handle.gpu < len(self.gpus):
            raise NVMLError_InvalidArgument()
        gpu = self.gpus[handle.gpu]
        gi = gpu.gis.get(handle.gi_id)
        ci = gi.cis.get(handle.ci_id) if gi else None
        if gi is None or ci is None or ci.serial != handle.serial:
            raise NVMLError_InvalidArgument()
        return gpu, gi, ci

    def _next_serial(self) -> int:
        self._serial += 1
        return self._serial

    def _profiles_visible(self, gpu: GpuState) -> None:
        """R535 cannot list profiles while MIG is disabled (docs/reference/nvml.md#driver-differences)."""
        if self.legacy_driver and gpu.mig_current != NVML_DEVICE_MIG_ENABLE:
            raise NVMLError_NotSupported()

    @staticmethod
    def _gi_profile_by_id(gpu: GpuState, profile_id: int) -> GiProfile:
        p = gpu.model.profile_by_id(profile_id)
        if p is None:
            raise NVMLError_InvalidArgument()
        return p

    @staticmethod
    def _occupied(gpu: GpuState) -> int:
        mask = 0
        for gi in gpu.gis.values():
            mask |= _ci_mask(gi.start, gi.size)
        return mask

    def _gi_counts(self, gpu: GpuState) -> Counter[str]:
        counts: Counter[str] = Counter()
        for gi in gpu.gis.values():
            counts[self._gi_profile_by_id(gpu, gi.profile_id).name] += 1
        return counts

    def _admissible(self, gpu: GpuState, profile: GiProfile, start: int) -> bool:
        """No overlap, and the count, compute-slice and co-existence rules still hold with one more GI."""
        if profile.mask(start) & self._occupied(gpu):
            return False
        counts = self._gi_counts(gpu)
        counts[profile.name] += 1
        return check_gi_multiset(gpu.model, counts) is None

    def _add_gi(self, index: int, gpu: GpuState, profile: GiProfile, start: int) -> GpuInstanceHandle:
        gi_id = gi_instance_id(gpu.model, start, profile.placement_size)
        gi = GiState(gi_id, profile.id, start, profile.placement_size, self._next_serial())
        gpu.gis[gi_id] = gi
        return GpuInstanceHandle(index, gi_id, gi.serial)

    @staticmethod
    def _ci_profile(gpu: GpuState, gi: GiState, profile: int, eng_profile: int = 0) -> CiProfile:
        if not 0 <= profile < NVML_COMPUTE_INSTANCE_PROFILE_COUNT:
            raise NVMLError_InvalidArgument()
        if not 0 <= eng_profile < NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_COUNT:
            raise NVMLError_InvalidArgument()
        gi_profile = gpu.model.profile_by_id(gi.profile_id)
        assert gi_profile is not None
        key = (id(gi_profile), profile)
        if key not in _CI_BY_INDEX:
            _CI_BY_INDEX[key] = (gi_profile, next((c for c in gi_profile.compute_instances
                                                  if c.nvml_index == profile), None))
        ci = _CI_BY_INDEX[key][1]
        if ci is None:
            raise NVMLError_NotSupported()
        return ci

    def _mig_devices(self, index: int) -> list[MigDeviceHandle]:
        gpu = self.gpus[index]
        return [MigDeviceHandle(index, gi.id, ci.id, ci.serial)
                for gi in sorted(gpu.gis.values(), key=lambda g: g.id)
                for ci in sorted(gi.cis.values(), key=lambda c: c.id)]

    # -- library -----------------------------------------------------------------------------------------------

    def nvmlInit(self) -> None:
        self._init_count += 1

    def nvmlShutdown(self) -> None:
        self._check_init()
        self._init_count -= 1

    def nvmlSystemGetDriverVersion(self) -> str:
        self._check_init()
        return self.driver_version

    def nvmlSystemGetNVMLVersion(self) -> str:
        self._check_init()
        return self.nvml_version

    # -- devices -----------------------------------------------------------------------------------------------

    def nvmlDeviceGetCount(self) -> int:
        self._check_init()
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> DeviceHandle:
        self._check_init()
        if not 0 <= index < len(self.gpus):
            raise NVMLError_InvalidArgument()
        return DeviceHandle(index)

    def nvmlDeviceGetHandleByUUID(self, uuid_text: str) -> DeviceHandle:
        self._check_init()
        for i, gpu in enumerate(self.gpus):
            if gpu.uuid == uuid_text:
                return DeviceHandle(i)
        raise NVMLError_NotFound()

    def nvmlDeviceGetHandleByPciBusId(self, bus_id: str) -> DeviceHandle:
        """Accepts the 8-digit (00000000:53:00.0) and the legacy 4-digit domain form, any case."""
        self._check_init()
        wanted = bus_id.strip().upper()
        for i, gpu in enumerate(self.gpus):
            if wanted in (gpu.bus_id, gpu.bus_id[4:]):
                return DeviceHandle(i)
        raise NVMLError_NotFound()

    def nvmlDeviceGetName(self, handle: DeviceHandle | MigDeviceHandle) -> str:
        if isinstance(handle, MigDeviceHandle):
            gpu, gi, ci = self._ci(handle)
            return f"{gpu.variant.nvml_name} MIG {self._ci_profile(gpu, gi, ci.profile_id).name}"
        return self._gpu(handle).variant.nvml_name

    def nvmlDeviceGetUUID(self, handle: DeviceHandle | MigDeviceHandle) -> str:
        if isinstance(handle, MigDeviceHandle):
            gpu, _, ci = self._ci(handle)
            return f"MIG-{_stable_uuid(gpu.uuid, ci.serial)}"
        return self._gpu(handle).uuid

    def nvmlDeviceGetPciInfo(self, handle: DeviceHandle) -> PciInfo:
        gpu = self._gpu(handle)
        domain, bus, rest = gpu.bus_id.split(":")
        device = int(rest.split(".")[0], 16)
        return PciInfo(busId=gpu.bus_id, busIdLegacy=gpu.bus_id[4:], domain=int(domain, 16), bus=int(bus, 16),
                       device=device, pciDeviceId=gpu.variant.pci_device_id_int, pciSubSystemId=gpu.subsystem_id)

    def nvmlDeviceGetMemoryInfo(self, handle: DeviceHandle | MigDeviceHandle) -> Memory:
        """[CHOICE] Nothing is allocated: used = 0, free = total. Placeholders (module doc) are flagged."""
        if isinstance(handle, MigDeviceHandle):
            gpu, gi, _ = self._ci(handle)
            p = self._gi_profile_by_id(gpu, gi.profile_id)
            total = profile_memory_mib(gpu.model, p) * 2**20
            known = "memory_mib" not in gi_row_unknown(gpu.variant, p)
            note = None if known else f"MIG {p.name} memory unknown: {gi_row_note(gpu.variant, p)}"
        else:
            gpu = self._gpu(handle)
            total = device_memory_mib(gpu.model) * 2**20
            known = device_memory_known(gpu.model, gpu.variant)
            note = None if known else f"{gpu.variant.key} memory.total unknown: placeholder"
        return Memory(total=total, free=total, used=0, unknown=() if known else ("total", "free"), unconfirmed=note)

    def nvmlDeviceGetArchitecture(self, handle: DeviceHandle) -> int:
        return _ARCH.get(self._gpu(handle).model.architecture, 0xFFFFFFFF)

    def nvmlDeviceGetCudaComputeCapability(self, handle: DeviceHandle) -> tuple[int, int]:
        """[CHOICE] From the architecture: GA100 8.0 vs other Ampere 8.6; RTX PRO (GB202, 0x2Bxx) 12.0."""
        gpu = self._gpu(handle)
        model = gpu.model
        device = gpu.variant.pci_device_id_int >> 16
        return {"turing": (7, 5), "ada": (8, 9), "hopper": (9, 0),
                "ampere": (8, 0) if model.mig_capable else (8, 6),
                "blackwell": (12, 0) if device & 0xFF00 == 0x2B00 else (10, 0)}.get(model.architecture, (0, 0))

    def nvmlDeviceGetNumGpuCores(self, handle: DeviceHandle) -> int:
        """SMs x FP32 cores per SM; NotSupported when the catalog has no SM count for this board."""
        gpu = self._gpu(handle)
        model = gpu.model
        per_sm = _CORES_PER_SM.get(self.nvmlDeviceGetCudaComputeCapability(handle))
        if not model.sm_count or not per_sm or "sm_count" in gpu.variant.unconfirmed:
            raise NVMLError_NotSupported()
        return model.sm_count * per_sm

    def nvmlDeviceGetAttributes(self, handle: DeviceHandle | MigDeviceHandle) -> DeviceAttributes:
        """MIG device handles only; a full GPU answers NotSupported (NVML captures, and nvml.h)."""
        if not isinstance(handle, MigDeviceHandle):
            self._gpu(handle)
            raise NVMLError_NotSupported()
        gpu, gi, ci = self._ci(handle)
        gi_profile = self._gi_profile_by_id(gpu, gi.profile_id)
        ci_profile = self._ci_profile(gpu, gi, ci.profile_id)
        e = gi_profile.engines
        unknown = [CI_INFO_FIELDS[f] for f in self._ci_unknown(gpu, gi_profile, ci_profile)]
        if "memory_mib" in gi_row_unknown(gpu.variant, gi_profile):
            unknown.append("memorySizeMB")
        return DeviceAttributes(
            multiprocessorCount=ci_profile.sm or 0, sharedCopyEngineCount=e.ce or 0, sharedDecoderCount=e.dec or 0,
            sharedEncoderCount=e.enc or 0, sharedJpegCount=e.jpeg or 0, sharedOfaCount=e.ofa or 0,
            gpuInstanceSliceCount=gi_profile.slices, computeInstanceSliceCount=ci_profile.slices,
            memorySizeMB=profile_memory_mib(gpu.model, gi_profile), unknown=tuple(unknown),
            unconfirmed=self._ci_note(gpu, gi_profile, ci_profile) if unknown else None)

    # -- MIG mode ----------------------------------------------------------------------------------------------

    def nvmlDeviceGetMigMode(self, handle: DeviceHandle) -> list[int]:
        gpu = self._mig_gpu(handle)
        return [gpu.mig_current, gpu.mig_pending]

    def mode_change_needs_reset(self, index: int) -> bool:
        """Whether a MIG mode change on this GPU waits for a GPU reset (Ampere; module doc)."""
        return self.gpus[index].model.architecture in MODE_CHANGE_NEEDS_RESET

    def nvmlDeviceSetMigMode(self, handle: DeviceHandle, mode: int) -> int:
        """Sets the mode; returns the activation status (docs/reference/nvml.md#mig-mode-changes; module doc).

        Ampere: the mode stays pending until `reset()`; activation NVML_SUCCESS, or NVML_ERROR_RESET_REQUIRED on a
        platform without GPU reset. Hopper and later: it takes effect at once (current = pending), unless the GPU is
        not idle (`faults.in_use`): then it stays pending and the activation status is NVML_ERROR_IN_USE.
        [CHOICE] The Hopper source speaks of enabling; disabling is modelled the same way. Disabling while GPU
        instances exist raises IN_USE.
        """
        gpu = self._mig_gpu(handle)
        if mode not in (NVML_DEVICE_MIG_DISABLE, NVML_DEVICE_MIG_ENABLE):
            raise NVMLError_InvalidArgument()
        if mode == NVML_DEVICE_MIG_DISABLE and gpu.gis:
            raise NVMLError_InUse()
        gpu.mig_pending = mode
        if handle.index in self.faults.in_use:
            return NVML_ERROR_IN_USE
        if self.mode_change_needs_reset(handle.index):
            pending = gpu.mig_current != gpu.mig_pending
            return NVML_ERROR_RESET_REQUIRED if pending and not self.gpu_reset_works else NVML_SUCCESS
        gpu.mig_current = mode
        return NVML_SUCCESS

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: DeviceHandle) -> int:
        """0 when MIG is unsupported or disabled; else the compute slices (one CI per slice at most)."""
        gpu = self._gpu(handle)
        if not gpu.model.mig_capable or gpu.mig_current != NVML_DEVICE_MIG_ENABLE:
            return 0
        return gpu.model.compute_slices or 0

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: DeviceHandle, index: int) -> MigDeviceHandle:
        """MIG devices ordered by GI id, then CI id. [CHOICE] NVML's own order is not documented."""
        self._mig_gpu(handle)
        devices = self._mig_devices(handle.index)
        if not 0 <= index < len(devices):
            raise NVMLError_NotFound()
        return devices[index]

    def nvmlDeviceIsMigDeviceHandle(self, handle: Any) -> int:
        self._check_init()
        if isinstance(handle, MigDeviceHandle):
            self._ci(handle)
            return 1
        self._gpu(handle)
        return 0

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, handle: DeviceHandle | MigDeviceHandle) -> DeviceHandle:
        if not isinstance(handle, MigDeviceHandle):
            self._check_init()
            raise NVMLError_InvalidArgument()
        self._ci(handle)
        return DeviceHandle(handle.gpu)

    def nvmlDeviceGetGpuInstanceId(self, handle: DeviceHandle | MigDeviceHandle) -> int:
        if not isinstance(handle, MigDeviceHandle):
            self._gpu(handle)
            raise NVMLError_InvalidArgument()
        return self._ci(handle)[1].id

    def nvmlDeviceGetComputeInstanceId(self, handle: DeviceHandle | MigDeviceHandle) -> int:
        if not isinstance(handle, MigDeviceHandle):
            self._gpu(handle)
            raise NVMLError_InvalidArgument()
        return self._ci(handle)[2].id

    # -- GPU instance profiles -------------------------------------------------------------------------------

    @staticmethod
    def _profile_info(gpu: GpuState, p: GiProfile) -> GpuInstanceProfileInfo:
        """Catalog numbers; unknown ones are placeholders named in `unknown` (module doc)."""
        key = (id(gpu.variant), id(p))
        hit = _GI_INFOS.get(key)
        if hit is None:
            e = p.engines
            info = GpuInstanceProfileInfo(
                id=p.id, isP2pSupported=int(bool(p.p2p)), sliceCount=p.slices, instanceCount=p.max_instances,
                multiprocessorCount=p.sm or 0, copyEngineCount=e.ce or 0, decoderCount=e.dec or 0,
                encoderCount=e.enc or 0, jpegCount=e.jpeg or 0, ofaCount=e.ofa or 0,
                memorySizeMB=profile_memory_mib(gpu.model, p), name=f"MIG {p.name}",
                unknown=tuple(GI_INFO_FIELDS[f] for f in gi_row_unknown(gpu.variant, p)),
                unconfirmed=gi_row_note(gpu.variant, p))
            hit = _GI_INFOS[key] = (gpu.variant, p, info)
        return hit[2]

    def nvmlDeviceGetGpuInstanceProfileInfo(self, handle: DeviceHandle, profile: int,
                                            version: int = 2) -> GpuInstanceProfileInfo:
        """By NVML index (0 = 1_SLICE). Unsupported index: NotSupported; >= 0x11: InvalidArgument (NVML captures)."""
        gpu = self._mig_gpu(handle)
        if not 0 <= profile < FIRST_INVALID_GI_INDEX:
            raise NVMLError_InvalidArgument()
        if self.legacy_driver:
            self._profiles_visible(gpu)
        p = gpu.model.profile_by_index(profile)
        if p is None:
            raise NVMLError_NotSupported()
        return self._profile_info(gpu, p)

    def nvmlDeviceGetGpuInstanceProfileInfoById(self, handle: DeviceHandle, profile_id: int) -> GpuInstanceProfileInfo:
        gpu = self._mig_gpu(handle)
        self._profiles_visible(gpu)
        return self._profile_info(gpu, self._gi_profile_by_id(gpu, profile_id))

    def nvmlDeviceGetGpuInstancePossiblePlacements(self, handle: DeviceHandle,
                                                   profile_id: int) -> list[GpuInstancePlacement]:
        """All placements of a profile ID, whatever is occupied and whether MIG is enabled or not."""
        gpu = self._mig_gpu(handle)
        self._profiles_visible(gpu)
        p = self._gi_profile_by_id(gpu, profile_id)
        return [GpuInstancePlacement(s, z) for s, z in p.placements]

    def nvmlDeviceGetGpuInstanceRemainingCapacity(self, handle: DeviceHandle, profile_id: int) -> int:
        """How many more GIs of this profile CreateGpuInstance would still create, one after another."""
        gpu = self._mig_gpu(handle)
        self._profiles_visible(gpu)
        p = self._gi_profile_by_id(gpu, profile_id)
        occupied, counts, n = self._occupied(gpu), self._gi_counts(gpu), 0
        while True:
            start = choose_placement(gpu.model, p, occupied)
            counts[p.name] += 1
            if start is None or check_gi_multiset(gpu.model, counts) is not None:
                return n
            occupied |= p.mask(start)
            n += 1

    # -- GPU instances ---------------------------------------------------------------------------------------

    def _creatable(self, handle: DeviceHandle, profile_id: int) -> tuple[GpuState, GiProfile]:
        gpu = self._mig_gpu(handle)
        if gpu.mig_current != NVML_DEVICE_MIG_ENABLE:
            raise NVMLError_NotSupported()
        p = self._gi_profile_by_id(gpu, profile_id)
        self.faults.check_create("gi", handle.index)
        return gpu, p

    def nvmlDeviceCreateGpuInstance(self, handle: DeviceHandle, profile_id: int) -> GpuInstanceHandle:
        """NVML picks the placement (placement.choose_placement) and the GI id (placement.gi_instance_id)."""
        gpu, p = self._creatable(handle, profile_id)
        start = choose_placement(gpu.model, p, self._occupied(gpu))
        if start is None or not self._admissible(gpu, p, start):
            raise NVMLError_InsufficientResources()
        return self._add_gi(handle.index, gpu, p, start)

    def nvmlDeviceCreateGpuInstanceWithPlacement(self, handle: DeviceHandle, profile_id: int,
                                                 placement: GpuInstancePlacement | tuple[int, int]
                                                 ) -> GpuInstanceHandle:
        gpu, p = self._creatable(handle, profile_id)
        start, size = placement if isinstance(placement, tuple | list) else (placement.start, placement.size)
        if (start, size) not in p.placements:
            raise NVMLError_InvalidArgument()
        if not self._admissible(gpu, p, start):
            raise NVMLError_InsufficientResources()
        return self._add_gi(handle.index, gpu, p, start)

    def nvmlDeviceGetGpuInstances(self, handle: DeviceHandle, profile_id: int) -> list[GpuInstanceHandle]:
        gpu = self._mig_gpu(handle)
        self._gi_profile_by_id(gpu, profile_id)
        return [GpuInstanceHandle(handle.index, gi.id, gi.serial)
                for gi in sorted(gpu.gis.values(), key=lambda g: g.id) if gi.profile_id == profile_id]

    def nvmlDeviceGetGpuInstanceById(self, handle: DeviceHandle, gi_id: int) -> GpuInstanceHandle:
        gpu = self._mig_gpu(handle)
        gi = gpu.gis.get(gi_id)
        if gi is None:
            raise NVMLError_NotFound()
        return GpuInstanceHandle(handle.index, gi.id, gi.serial)

    def nvmlGpuInstanceGetInfo(self, handle: GpuInstanceHandle) -> GpuInstanceInfo:
        _, gi = self._gi(handle)
        return GpuInstanceInfo(DeviceHandle(handle.gpu), gi.id, gi.profile_id, GpuInstancePlacement(gi.start, gi.size))

    def nvmlGpuInstanceDestroy(self, handle: GpuInstanceHandle) -> int:
        gpu, gi = self._gi(handle)
        if gi.cis:
            raise NVMLError_InUse()
        del gpu.gis[gi.id]
        return NVML_SUCCESS

    # -- compute instances -----------------------------------------------------------------------------------

    def nvmlGpuInstanceGetComputeInstanceProfileInfo(self, handle: GpuInstanceHandle, profile: int,
                                                     eng_profile: int = 0,
                                                     version: int = 2) -> ComputeInstanceProfileInfo:
        gpu, gi = self._gi(handle)
        ci = self._ci_profile(gpu, gi, profile, eng_profile)
        gi_profile = self._gi_profile_by_id(gpu, gi.profile_id)
        key = (id(gpu.variant), id(gi_profile), id(ci))
        hit = _CI_INFOS.get(key)
        if hit is None:
            e = gi_profile.engines
            unknown = self._ci_unknown(gpu, gi_profile, ci)
            info = ComputeInstanceProfileInfo(
                id=ci.id, sliceCount=ci.slices, instanceCount=ci.max_instances, multiprocessorCount=ci.sm or 0,
                sharedCopyEngineCount=e.ce or 0, sharedDecoderCount=e.dec or 0, sharedEncoderCount=e.enc or 0,
                sharedJpegCount=e.jpeg or 0, sharedOfaCount=e.ofa or 0, name=f"MIG {ci.name}",
                unknown=tuple(CI_INFO_FIELDS[f] for f in unknown), unconfirmed=self._ci_note(gpu, gi_profile, ci))
            hit = _CI_INFOS[key] = (gpu.variant, gi_profile, ci, info)
        return hit[3]

    @staticmethod
    def _ci_unknown(gpu: GpuState, gi_profile: GiProfile, ci: CiProfile) -> tuple[str, ...]:
        """Catalog fields of a CI profile whose simulated values are placeholders (SM, the GI's shared engines)."""
        gi_unknown = gi_row_unknown(gpu.variant, gi_profile)
        sm = ("sm",) if ci.sm is None or "sm" in gi_unknown else ()
        return sm + tuple(f for f in CI_INFO_FIELDS if f != "sm" and f in gi_unknown)

    @staticmethod
    def _ci_note(gpu: GpuState, gi_profile: GiProfile, ci: CiProfile) -> str | None:
        """Why a CI profile's values or placements are not confirmed (catalog reasons), None when they are."""
        return _join(ci.reason if not ci.confirmed else None,
                     f"placements: {ci.placements_reason}" if not ci.placements_confirmed else None,
                     gi_row_note(gpu.variant, gi_profile))

    def nvmlGpuInstanceGetComputeInstancePossiblePlacements(self, handle: GpuInstanceHandle,
                                                            profile_id: int) -> list[ComputeInstancePlacement]:
        """All placements (start, size in compute slices) of a CI profile inside the GI, whatever is occupied:
        the catalog's `placements` of the CI row, else the schema formula (i x slices, slices)."""
        gpu, gi = self._gi(handle)
        ci = self._ci_profile(gpu, gi, profile_id)
        return [ComputeInstancePlacement(s, z) for s, z in ci.placements]

    def nvmlGpuInstanceCreateComputeInstance(self, handle: GpuInstanceHandle, profile_id: int) -> ComputeInstanceHandle:
        """First free CI placement inside the GI (CiProfile.placements); CI id = lowest free id."""
        gpu, gi = self._gi(handle)
        ci_profile = self._ci_profile(gpu, gi, profile_id)
        self.faults.check_create("ci", handle.gpu)
        used = self._ci_used(gi)
        free = next(((s, z) for s, z in ci_profile.placements if not _ci_mask(s, z) & used), None)
        if free is None or self._ci_count(gi, profile_id) >= ci_profile.max_instances:
            raise NVMLError_InsufficientResources()
        return self._add_ci(handle, gi, profile_id, *free)

    def nvmlGpuInstanceCreateComputeInstanceWithPlacement(
            self, handle: GpuInstanceHandle, profile_id: int,
            placement: ComputeInstancePlacement | tuple[int, int]) -> ComputeInstanceHandle:
        """A CI at one of its profile's possible placements; InvalidArgument for another one."""
        gpu, gi = self._gi(handle)
        ci_profile = self._ci_profile(gpu, gi, profile_id)
        self.faults.check_create("ci", handle.gpu)
        start, size = placement if isinstance(placement, tuple | list) else (placement.start, placement.size)
        if (start, size) not in ci_profile.placements:
            raise NVMLError_InvalidArgument()
        if _ci_mask(start, size) & self._ci_used(gi) or self._ci_count(gi, profile_id) >= ci_profile.max_instances:
            raise NVMLError_InsufficientResources()
        return self._add_ci(handle, gi, profile_id, start, size)

    @staticmethod
    def _ci_used(gi: GiState) -> int:
        used = 0
        for c in gi.cis.values():
            used |= _ci_mask(c.start, c.size)
        return used

    @staticmethod
    def _ci_count(gi: GiState, profile_id: int) -> int:
        return sum(1 for c in gi.cis.values() if c.profile_id == profile_id)

    @staticmethod
    def _own_gi(gpu: GpuState, gi: GiState) -> GiState:
        """`gi` as this GPU's own object, to change: a GI shared with equal nodes (`replay`) is copied first."""
        if not gi.shared:
            return gi
        own = GiState(gi.id, gi.profile_id, gi.start, gi.size, gi.serial, dict(gi.cis))
        gpu.gis[gi.id] = own
        return own

    def _add_ci(self, handle: GpuInstanceHandle, gi: GiState, profile_id: int, start: int,
                size: int) -> ComputeInstanceHandle:
        gi = self._own_gi(self.gpus[handle.gpu], gi)
        ci_id = next(i for i in range(len(gi.cis) + 1) if i not in gi.cis)
        ci = CiState(ci_id, profile_id, start, size, self._next_serial())
        gi.cis[ci_id] = ci
        return ComputeInstanceHandle(handle.gpu, gi.id, ci_id, ci.serial)

    def nvmlGpuInstanceGetComputeInstances(self, handle: GpuInstanceHandle,
                                           profile_id: int) -> list[ComputeInstanceHandle]:
        gpu, gi = self._gi(handle)
        self._ci_profile(gpu, gi, profile_id)
        return [ComputeInstanceHandle(handle.gpu, gi.id, c.id, c.serial)
                for c in sorted(gi.cis.values(), key=lambda c: c.id) if c.profile_id == profile_id]

    def nvmlComputeInstanceGetInfo(self, handle: ComputeInstanceHandle) -> ComputeInstanceInfo:
        _, gi, ci = self._ci(handle)
        return ComputeInstanceInfo(DeviceHandle(handle.gpu), GpuInstanceHandle(handle.gpu, gi.id, gi.serial), ci.id,
                                   ci.profile_id, ComputeInstancePlacement(ci.start, ci.size))

    def nvmlComputeInstanceDestroy(self, handle: ComputeInstanceHandle) -> int:
        gpu, gi, ci = self._ci(handle)
        del self._own_gi(gpu, gi).cis[ci.id]
        return NVML_SUCCESS

    # -- helpers beyond NVML -----------------------------------------------------------------------------------

    def create_default_compute_instance(self, handle: GpuInstanceHandle) -> ComputeInstanceHandle:
        """What `nvidia-smi mig -cgi ... -C` does: the GI profile's default CI (catalog `default: true`)."""
        gpu, gi = self._gi(handle)
        profile = self._gi_profile_by_id(gpu, gi.profile_id)
        return self.nvmlGpuInstanceCreateComputeInstance(handle, profile.default_ci.nvml_index)

    def reset(self, indices: Iterable[int] | None = None) -> None:
        """GPU reset (`nvidia-smi -r`): pending modes take effect and all GIs/CIs are gone.

        [CHOICE] A GPU in `faults.in_use` refuses: NVMLError_InUse, and no GPU is reset. Without GPU reset
        (`gpu_reset_works=False`, pass-through VMs) it raises NVMLError_ResetRequired and changes nothing: only a
        reboot (`reboot()`) makes a pending mode current there.
        """
        chosen = list(range(len(self.gpus)) if indices is None else indices)
        for i in chosen:
            if not 0 <= i < len(self.gpus):
                raise NVMLError_InvalidArgument()
            if i in self.faults.in_use:
                raise NVMLError_InUse()
        if not self.gpu_reset_works:
            raise NVMLError_ResetRequired()
        for i in chosen:
            gpu = self.gpus[i]
            if gpu.model.mig_capable:
                gpu.mig_current = gpu.mig_pending
            gpu.gis.clear()

    def reboot(self) -> None:
        """Node reboot: pending MIG modes take effect; GPU and compute instances do not survive it."""
        for gpu in self.gpus:
            if gpu.model.mig_capable:
                gpu.mig_current = gpu.mig_pending
            gpu.gis.clear()

    def device_notes(self, handle: DeviceHandle) -> list[str]:
        """What is not confirmed about a GPU as a whole (its board, memory.total); [] when everything is."""
        gpu = self._gpu(handle)
        notes = [*gpu.variant.notes, *gpu.model.driver_notes]
        if self.legacy_driver and gpu.model.mig_capable and gpu.mig_current != NVML_DEVICE_MIG_ENABLE:
            notes.append(f"driver {self.driver_version} lists no MIG profiles while MIG mode is disabled (R535 and "
                         "older, docs/reference/nvml.md#driver-differences)")
        if not gpu.model.memory_total_mib:
            notes.append(f"{gpu.variant.key}: memory.total unknown; the simulator reports a placeholder of "
                         f"{device_memory_mib(gpu.model)} MiB")
        elif not device_memory_known(gpu.model, gpu.variant):
            notes.append(f"{gpu.variant.key}: memory.total not confirmed for this board; the simulator reports "
                         f"{gpu.model.key}'s {device_memory_mib(gpu.model)} MiB")
        return notes

    def mig_layout(self, index: int) -> list[dict[str, Any]]:
        """The GIs of one GPU with their CIs, for reports and tests."""
        gpu = self.gpus[index]
        out = []
        for gi in sorted(gpu.gis.values(), key=lambda g: g.id):
            p = self._gi_profile_by_id(gpu, gi.profile_id)
            cis = [self._ci_profile(gpu, gi, c.profile_id).name for c in sorted(gi.cis.values(), key=lambda c: c.id)]
            out.append({"gi_id": gi.id, "profile": p.name, "profile_id": gi.profile_id, "start": gi.start,
                        "size": gi.size, "compute_instances": cis})
        return out

    # -- state keys and replay (for the command cache) ---------------------------------------------------------

    def state_key(self) -> tuple[Any, ...]:
        """Everything an NVML client's reads and a mig-parted command's outcome depend on, faults aside: the driver,
        whether GPU reset works, and per GPU the model and variant (board: PCI ID, NVML name), PCI identity, MIG
        modes and the GIs/CIs (ids, profiles, placements). Variants and the reset flag never change in a command,
        so `changes_since`/`replay` need not carry them. Serials and
        UUIDs are left out: no command's outcome depends on them, only on which instances exist."""
        # list comprehensions, not generators: this runs before every cached command of every node of a fleet
        return (self.driver_version, self.legacy_driver, self.gpu_reset_works, tuple([
            (g.model.key, g.variant.key, g.bus_id, g.subsystem_id, g.mig_current, g.mig_pending,
             tuple([(gi.id, gi.profile_id, gi.start, gi.size,
                     tuple([(c.id, c.profile_id, c.start, c.size) for c in gi.cis.values()]))
                    for gi in g.gis.values()]) if g.gis else ())
            for g in self.gpus]))

    def changes_since(self, serial: int) -> NvmlChanges:
        """The state now, with the serials of instances created after `serial` made relative to it (None: an
        instance that already existed then), so that `replay` can redo the same changes on an equal node."""
        def rel(s: int) -> int | None:
            return s - serial if s > serial else None

        return NvmlChanges(self._serial - serial, tuple(
            (g.mig_current, g.mig_pending,
             tuple((gi.id, gi.profile_id, gi.start, gi.size, rel(gi.serial),
                    tuple((c.id, c.profile_id, c.start, c.size, rel(c.serial)) for c in gi.cis.values()))
                   for gi in g.gis.values()))
            for g in self.gpus))

    def replay(self, changes: NvmlChanges) -> None:
        """Redo `changes` (taken from a node whose `state_key()` equalled this one's): new instances get fresh
        serials, surviving ones keep theirs. The GI states are shared with nodes that hold equal ones (see
        `_shared_gi`; the two places that change a GI in place copy it first)."""
        base = self._serial
        for gpu, (current, pending, gis) in zip(self.gpus, changes.gpus, strict=True):
            old = gpu.gis
            gpu.mig_current, gpu.mig_pending = current, pending
            new: dict[int, GiState] = {}
            for gi_id, profile_id, start, size, rel, cis in gis:
                cis_now = tuple((ci_id, ci_profile, ci_start, ci_size,
                                 old[gi_id].cis[ci_id].serial if ci_rel is None else base + ci_rel)
                                for ci_id, ci_profile, ci_start, ci_size, ci_rel in cis)
                serial = old[gi_id].serial if rel is None else base + rel
                new[gi_id] = _shared_gi((gi_id, profile_id, start, size, serial, cis_now))
            gpu.gis = new
        self._serial = base + changes.serials

    # -- snapshot ----------------------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The whole node as JSON-ready data (restore with `from_snapshot`)."""
        return {
            "kind": "mig-conformance/nvml-simulator", "version": 1, "name": self.name,
            "legacy_driver": self.legacy_driver, "driver_version": self.driver_version, "serial": self._serial,
            "gpu_reset_works": self.gpu_reset_works,
            "faults": {"in_use": sorted(self.faults.in_use),
                       "create_failures": [vars(r).copy() for r in self.faults.create_failures]},
            "gpus": [{"model": g.model.key, "variant": g.variant.key, "uuid": g.uuid, "bus_id": g.bus_id,
                      "subsystem_id": g.subsystem_id,
                      "mig_mode": [g.mig_current, g.mig_pending],
                      "gpu_instances": [{"id": gi.id, "profile_id": gi.profile_id, "start": gi.start, "size": gi.size,
                                         "serial": gi.serial,
                                         "compute_instances": [asdict(c) for c in gi.cis.values()]}
                                        for gi in g.gis.values()]}
                     for g in self.gpus],
        }

    @classmethod
    def from_snapshot(cls, data: dict[str, Any], catalog: Catalog | None = None) -> NvmlSimulator:
        """Rebuild a node from `snapshot()` data; InputError if it is not one."""
        if not isinstance(data, dict) or data.get("kind") != "mig-conformance/nvml-simulator":
            raise InputError("not a mig-conformance NVML simulator state")
        try:
            sim = cls([g.get("variant", g["model"]) for g in data["gpus"]], data["name"], catalog=catalog,
                      legacy_driver=bool(data.get("legacy_driver", False)), driver_version=data.get("driver_version"),
                      gpu_reset_works=bool(data.get("gpu_reset_works", True)))
            sim._serial = int(data.get("serial", 0))
            faults = data.get("faults", {})
            sim.faults.in_use = set(faults.get("in_use", []))
            sim.faults.create_failures = [CreateFailure(**r) for r in faults.get("create_failures", [])]
            for gpu, raw in zip(sim.gpus, data["gpus"], strict=True):
                gpu.uuid, gpu.bus_id, gpu.subsystem_id = raw["uuid"], raw["bus_id"], int(raw["subsystem_id"])
                gpu.mig_current, gpu.mig_pending = (int(x) for x in raw["mig_mode"])
                for g in raw["gpu_instances"]:
                    gi = GiState(g["id"], g["profile_id"], g["start"], g["size"], g["serial"])
                    gi.cis = {c["id"]: CiState(**c) for c in g["compute_instances"]}
                    gpu.gis[gi.id] = gi
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InputError(f"malformed NVML simulator state: {exc!r}") from None
        return sim

    def to_json(self) -> str:
        return json.dumps(self.snapshot(), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, catalog: Catalog | None = None) -> NvmlSimulator:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"state is not JSON: {exc}") from None
        except RecursionError:
            raise InputError("state is not a simulator state: JSON nested too deep") from None
        return cls.from_snapshot(data, catalog)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path, catalog: Catalog | None = None) -> NvmlSimulator:
        """A node saved by `save`; InputError naming the file for anything else (bounded read: hostile files)."""
        data = read_bytes(path)
        try:
            return cls.from_json(data.decode("utf-8"), catalog)
        except UnicodeDecodeError as exc:
            raise InputError(f"state file {path}: not a simulator state (not UTF-8 text: byte "
                             f"0x{data[exc.start]:02x} at offset {exc.start})") from None
        except InputError as exc:
            raise InputError(f"state file {path}: {exc}") from None


# --- module-level pynvml-style functions -------------------------------------------------------------------

API = tuple(n for n in dir(NvmlSimulator) if n.startswith("nvml"))
_current: NvmlSimulator | None = None


def device_notes(handle: DeviceHandle) -> list[str]:
    """Simulator extension (not in pynvml): `NvmlSimulator.device_notes` of the installed node."""
    if _current is None:
        raise NVMLError_Uninitialized()
    return _current.device_notes(handle)


def use(sim: NvmlSimulator | None) -> NvmlSimulator | None:
    """Install `sim` behind the module-level functions; returns the previous one."""
    global _current
    previous, _current = _current, sim
    return previous


def _forward(name: str) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        if _current is None:
            raise NVMLError_Uninitialized()
        return getattr(_current, name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = getattr(NvmlSimulator, name).__doc__
    return call


globals().update({name: _forward(name) for name in API})
