"""Read-only NVML queries through any pynvml-shaped module: nvidia-ml-py or the kit's simulator.

The helpers call only `nvml...Get...` functions. Three pynvml calls fill caller-owned C arrays
(`nvmlDeviceGetGpuInstancePossiblePlacements`, `nvmlDeviceGetGpuInstances`,
`nvmlGpuInstanceGetComputeInstances`); a module that exports the matching ctypes types
(`c_nvmlGpuInstancePlacement_t`, ...) is called that way, any other module in the short form that
returns a list (as `mig_conformance.simulators.nvml` does).

The kit's simulator adds two fields to the structures it returns (its module doc): `unknown`, the pynvml
fields that hold placeholders, and `unconfirmed`, the catalog's reason. The readers here carry them along
(`GiProfileInfo.unknown`, ...); real pynvml structures have neither, so they read as () and None.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from mig_conformance.mig.profile_indices import CI_PROFILE_COUNT, GI_PROFILE_COUNT

ERROR_INVALID_ARGUMENT = 2
ERROR_NOT_SUPPORTED = 3
ERROR_NOT_FOUND = 6
_NO_PROFILE = (ERROR_NOT_SUPPORTED, ERROR_INVALID_ARGUMENT)
_BUFFER = 64  # entries in a C out-array: more than any GPU has placements or instances

Nvml = ModuleType | Any  # the pynvml module, the simulator module, or a proxy of either


def text(value: Any) -> str:
    """A pynvml string field or return value (bytes in some versions) as str."""
    if isinstance(value, bytes | bytearray):
        return bytes(value).split(b"\0", 1)[0].decode("utf-8", "replace")
    return str(value)


def error_code(exc: BaseException) -> int | None:
    """The NVML return code carried by a pynvml NVMLError (its `value`), else None."""
    value = getattr(exc, "value", None)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def is_nvml_error(nvml: Nvml, exc: BaseException, *codes: int) -> bool:
    """True for an NVMLError of `nvml` (with one of `codes`, if given)."""
    base = getattr(nvml, "NVMLError", None)
    if not (isinstance(base, type) and isinstance(exc, base)):
        return False
    return not codes or error_code(exc) in codes


def constant(nvml: Nvml, name: str, default: int) -> int:
    value = getattr(nvml, name, default)
    return value if isinstance(value, int) else default


def call_or_none(nvml: Nvml, fn: Callable[..., Any], *args: Any) -> Any:
    """`fn(*args)`, or None when NVML answers with any NVMLError."""
    try:
        return fn(*args)
    except Exception as exc:
        if is_nvml_error(nvml, exc):
            return None
        raise


def device_handles(nvml: Nvml) -> list[Any]:
    """Handles of all GPUs in NVML index order."""
    return [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]


def _c_array_call(nvml: Nvml, fn: Callable[..., Any], type_name: str, *args: Any) -> list[Any]:
    c_type = getattr(nvml, type_name, None)
    if isinstance(c_type, type) and issubclass(c_type, ctypes.Structure | ctypes._Pointer):
        buffer = (c_type * _BUFFER)()
        count = ctypes.c_uint(_BUFFER)
        fn(*args, buffer, ctypes.byref(count))
        return [buffer[i] for i in range(count.value)]
    return list(fn(*args))


def unknown_fields(info: Any) -> tuple[str, ...]:
    """pynvml fields of a returned structure that hold placeholders (simulator extension; () from pynvml)."""
    value = getattr(info, "unknown", ())
    return tuple(value) if isinstance(value, tuple | list) else ()


def unconfirmed_note(info: Any) -> str | None:
    """Why a returned structure's values are not confirmed (simulator extension; None from pynvml)."""
    value = getattr(info, "unconfirmed", None)
    return value if isinstance(value, str) and value else None


def device_notes(nvml: Nvml, handle: Any) -> list[str]:
    """What the simulator cannot confirm about a GPU as a whole ([] from pynvml, which has no such call)."""
    fn = getattr(nvml, "device_notes", None)
    return list(fn(handle)) if callable(fn) else []


def possible_placements(nvml: Nvml, handle: Any, profile_id: int) -> list[tuple[int, int]]:
    """(start, size) of every placement of a GI profile ID, in NVML's order."""
    found = _c_array_call(nvml, nvml.nvmlDeviceGetGpuInstancePossiblePlacements, "c_nvmlGpuInstancePlacement_t",
                          handle, profile_id)
    return [(int(p.start), int(p.size)) for p in found]


def gpu_instances(nvml: Nvml, handle: Any, profile_id: int) -> list[Any]:
    """GI handles of one profile ID."""
    return _c_array_call(nvml, nvml.nvmlDeviceGetGpuInstances, "c_nvmlGpuInstance_t", handle, profile_id)


def compute_instances(nvml: Nvml, gi: Any, ci_profile: int) -> list[Any]:
    """CI handles of one CI profile (index = id) inside a GI."""
    return _c_array_call(nvml, nvml.nvmlGpuInstanceGetComputeInstances, "c_nvmlComputeInstance_t", gi, ci_profile)


@dataclass(frozen=True)
class GiProfileInfo:
    """One GPU-instance profile as NVML reports it (nvmlGpuInstanceProfileInfo_v2_t)."""

    index: int
    id: int
    name: str | None  # without the "MIG " prefix; None from a v1 struct
    slices: int
    instances: int
    sm: int
    memory_mib: int
    ce: int
    dec: int
    enc: int
    jpeg: int
    ofa: int
    p2p: bool
    unknown: tuple[str, ...] = ()  # GI_UNKNOWN_KEYS of the values that are placeholders
    unconfirmed: str | None = None

    def known(self, key: str) -> bool:
        """Whether a field (`sm`, `memory_mib`, `ce`, `dec`, `enc`, `jpeg`, `ofa`, `p2p`) is a fact."""
        return key not in self.unknown


# pynvml GI profile info fields -> GiProfileInfo fields.
GI_UNKNOWN_KEYS = {"multiprocessorCount": "sm", "memorySizeMB": "memory_mib", "copyEngineCount": "ce",
                   "decoderCount": "dec", "encoderCount": "enc", "jpegCount": "jpeg", "ofaCount": "ofa",
                   "isP2pSupported": "p2p"}


def _profile_name(info: Any) -> str | None:
    raw = getattr(info, "name", None)
    if raw is None:
        return None
    name = text(raw).strip()
    return name.removeprefix("MIG ").strip() or None


def _gi_profile_info(nvml: Nvml, handle: Any, index: int) -> Any:
    try:
        return nvml.nvmlDeviceGetGpuInstanceProfileInfo(handle, index, version=2)
    except TypeError:  # an older pynvml without the version argument
        return nvml.nvmlDeviceGetGpuInstanceProfileInfo(handle, index)


def gi_profiles(nvml: Nvml, handle: Any) -> list[GiProfileInfo]:
    """Every GI profile of a GPU by NVML index 0..COUNT-1; NotSupported/InvalidArgument indices skipped."""
    found: list[GiProfileInfo] = []
    for index in range(constant(nvml, "NVML_GPU_INSTANCE_PROFILE_COUNT", GI_PROFILE_COUNT)):
        try:
            info = _gi_profile_info(nvml, handle, index)
        except Exception as exc:
            if is_nvml_error(nvml, exc, *_NO_PROFILE):
                continue
            raise
        found.append(GiProfileInfo(
            index=index, id=int(info.id), name=_profile_name(info), slices=int(info.sliceCount),
            instances=int(info.instanceCount), sm=int(info.multiprocessorCount), memory_mib=int(info.memorySizeMB),
            ce=int(info.copyEngineCount), dec=int(info.decoderCount), enc=int(info.encoderCount),
            jpeg=int(info.jpegCount), ofa=int(info.ofaCount), p2p=bool(getattr(info, "isP2pSupported", 0)),
            unknown=tuple(GI_UNKNOWN_KEYS[f] for f in unknown_fields(info) if f in GI_UNKNOWN_KEYS),
            unconfirmed=unconfirmed_note(info)))
    return found


@dataclass(frozen=True)
class CiProfileInfo:
    """One compute-instance profile of an existing GI (nvmlComputeInstanceProfileInfo_v2_t)."""

    index: int
    id: int
    name: str | None
    slices: int
    instances: int
    sm: int
    unknown: tuple[str, ...] = ()  # "sm" when the SM count is a placeholder
    unconfirmed: str | None = None


def ci_possible_placements(nvml: Nvml, gi: Any, profile_id: int) -> list[tuple[int, int]] | None:
    """(start, size) of every placement of a CI profile inside a GI; None when NVML offers no such call."""
    if getattr(nvml, "nvmlGpuInstanceGetComputeInstancePossiblePlacements", None) is None:
        return None
    found = call_or_none(nvml, _c_array_call, nvml, nvml.nvmlGpuInstanceGetComputeInstancePossiblePlacements,
                         "c_nvmlComputeInstancePlacement_t", gi, profile_id)
    return None if found is None else [(int(p.start), int(p.size)) for p in found]


def ci_profiles(nvml: Nvml, gi: Any) -> list[CiProfileInfo]:
    """CI profiles a GI supports, by CI index 0..COUNT-1 with the shared engine profile."""
    found: list[CiProfileInfo] = []
    for index in range(constant(nvml, "NVML_COMPUTE_INSTANCE_PROFILE_COUNT", CI_PROFILE_COUNT)):
        try:
            info = nvml.nvmlGpuInstanceGetComputeInstanceProfileInfo(gi, index, 0)
        except Exception as exc:
            if is_nvml_error(nvml, exc, *_NO_PROFILE):
                continue
            raise
        found.append(CiProfileInfo(index=index, id=int(info.id), name=_profile_name(info),
                                   slices=int(info.sliceCount), instances=int(info.instanceCount),
                                   sm=int(info.multiprocessorCount),
                                   unknown=("sm",) if "multiprocessorCount" in unknown_fields(info) else (),
                                   unconfirmed=unconfirmed_note(info)))
    return found


def mig_enabled(nvml: Nvml, handle: Any) -> bool:
    """Current MIG mode is enabled (False when MIG is not supported)."""
    mode = call_or_none(nvml, nvml.nvmlDeviceGetMigMode, handle)
    return bool(mode) and int(mode[0]) == constant(nvml, "NVML_DEVICE_MIG_ENABLE", 1)


def mig_device_handles(nvml: Nvml, handle: Any) -> list[Any]:
    """MIG device handles of a GPU in MIG device index order (indices NVML answers NotFound for are skipped)."""
    limit = call_or_none(nvml, nvml.nvmlDeviceGetMaxMigDeviceCount, handle) or 0
    found = []
    for index in range(int(limit)):
        try:
            found.append(nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, index))
        except Exception as exc:
            if is_nvml_error(nvml, exc, ERROR_NOT_FOUND, ERROR_INVALID_ARGUMENT):
                continue
            raise
    return found
