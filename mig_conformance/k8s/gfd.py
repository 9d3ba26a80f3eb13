"""gpu-feature-discovery (GFD) node labels for a MIG strategy.

Follows NVIDIA/k8s-device-plugin `internal/lm/{labeler.go,nvml.go,mig-strategy.go,resource.go,vgpu.go}` from v0.15.0
(GFD ships with the device plugin's version) to v0.20.x: labelers merged in order, later ones overwriting earlier keys.
Where releases differ the rule is in `k8s/versions.py` with its source (`gpu.family` of Ada and Blackwell).

* Always: `nvidia.com/mig.capable` (any GPU MIG-capable), `nvidia.com/mps.capable=false` (no MPS sharing configured),
  `nvidia.com/gpu.mode=compute`, `nvidia.com/vgpu.present=false` (the vGPU labeler, merged into every node's
  labels; the kit's nodes have no vGPU devices), and full-GPU labels `nvidia.com/gpu.{product,count,replicas,
  sharing-strategy,memory,family}` where count counts every GPU of that NVML name and replicas is 0 when all of them
  have MIG enabled. Names are the boards' (`labels(names=...)`): a variant such as H100 PCIe reports its own NVML
  name.
* single/mixed add `nvidia.com/mig.strategy`. single with one uniform MIG profile overwrites `nvidia.com/gpu.*` with
  the MIG device (`gpu.product=<GPU>-MIG-<profile>`, `gpu.count`=number of MIG devices, memory, multiprocessors,
  slices, engines); a mix of MIG-enabled and -disabled GPUs, an empty MIG-enabled GPU or two profiles give
  `gpu.product=<GPU>-MIG-INVALID`, `gpu.count=0`. mixed adds `nvidia.com/mig-<profile>.*` per profile, the profile
  named by `MigProfile.String()` with `+` replaced by `.` (so `1g.10gb+me` -> `mig-1g.10gb.me`, `1c.3g.40gb` stays).

Not produced (no source data in the catalog, or run-time values): `gpu.compute.major/minor`, `cuda.runtime*`,
`gpu.machine`, `gfd.timestamp`. Labels whose catalog value is unknown (null) are left out, and `unknown_labels` names
them: under single the MIG device's memory replaces the whole GPU's `gpu.memory`, so where the catalog does not know
it (B200 3g/4g/7g) `gpu.memory` is left out rather than kept at the whole GPU's.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from mig_conformance.gpus.catalog import GpuModel
from mig_conformance.k8s import versions
from mig_conformance.k8s.device_plugin import DEFAULT_VERSION
from mig_conformance.k8s.labels import GPU_MEMORY, MIG_CAPABLE, MIG_RESOURCE_PREFIX, MIG_STRATEGY, STRATEGIES
from mig_conformance.mig.state import GpuMigState, device_attributes

GPU_PREFIX = "nvidia.com/gpu"
VGPU_PRESENT = "nvidia.com/vgpu.present"
#: lm/resource.go getArchFamily by catalog architecture (CUDA compute capability -> family), with the release
#: before which the name was different: (rule, name before it).
FAMILIES = {"ada": ("ada-lovelace", "gfd.family-ada", "ampere"), "blackwell": ("blackwell", "gfd.family-blackwell",
                                                                               "undefined")}
_UNSAFE = re.compile(r"[^A-Za-z0-9\-_. ]")


def family(architecture: str, version: str = DEFAULT_VERSION) -> str:
    """`nvidia.com/gpu.family` of a catalog architecture under this GFD release (versions.RULES gfd.family-*)."""
    name, rule, before = FAMILIES.get(architecture, (architecture, "", architecture))
    return name if not rule or versions.since(rule, version) else before


def sanitise(text: str) -> str:
    """lm/resource.go sanitise: drop characters outside [A-Za-z0-9-_. ], join words with '-'."""
    return "-".join(_UNSAFE.sub("", text).split())


def product(*parts: str) -> str:
    return "-".join(sanitise(p) for p in parts if p)


def mig_name(device: str) -> str:
    """GFD's MIG device name: nvmlMigDevice.GetName replaces '+' with '.'."""
    return device.replace("+", ".")


def _driver_labels(driver: str) -> dict[str, str]:
    parts = driver.split(".")
    if not 2 <= len(parts) <= 3:
        raise ValueError(f'error getting driver version: Version "{driver}" does not match format "X.Y[.Z]"')
    major, minor, rev = parts[0], parts[1], parts[2] if len(parts) == 3 else ""
    return {"nvidia.com/cuda.driver.major": major, "nvidia.com/cuda.driver.minor": minor,
            "nvidia.com/cuda.driver.rev": rev, "nvidia.com/cuda.driver-version.major": major,
            "nvidia.com/cuda.driver-version.minor": minor, "nvidia.com/cuda.driver-version.revision": rev,
            "nvidia.com/cuda.driver-version.full": driver}


def _full_gpu_labels(gpus: Sequence[GpuMigState], names: Sequence[str], version: str) -> dict[str, str]:
    """newGPULabelers: MIG-enabled GPUs first (no sharing: replicas 0), then full GPUs (replicas 1) overwrite;
    GPUs are grouped by their NVML name."""
    counts: dict[str, int] = {}
    enabled: dict[str, GpuModel] = {}
    full: dict[str, GpuModel] = {}
    for g, name in zip(gpus, names, strict=True):
        counts[name] = counts.get(name, 0) + 1
        (enabled if g.mig_enabled else full).setdefault(name, g.model)
    out: dict[str, str] = {}
    # Go iterates these maps in random order; with several GPU models on one node the winner is not fixed.
    for group, replicas in ((enabled, 0), (full, 1)):
        for name in sorted(group):
            model = group[name]
            out.update({f"{GPU_PREFIX}.product": product(name), f"{GPU_PREFIX}.count": str(counts[name]),
                        f"{GPU_PREFIX}.replicas": str(replicas), f"{GPU_PREFIX}.sharing-strategy": "none"})
            if model.memory_total_mib:
                out[f"{GPU_PREFIX}.memory"] = str(model.memory_total_mib)
            if model.architecture:
                out[f"{GPU_PREFIX}.family"] = family(model.architecture, version)
    return out


def _mig_resource_labels(prefix: str, gpu: GpuMigState, name: str, device: str, count: int) -> dict[str, str]:
    """NewMIGResourceLabeler: product (the parent GPU's NVML name)/count/replicas/sharing-strategy plus the MIG
    device's NVML attributes."""
    out = {f"{prefix}.product": product(name, "MIG", mig_name(device)), f"{prefix}.count": str(count),
           f"{prefix}.replicas": "1", f"{prefix}.sharing-strategy": "none"}
    a = device_attributes(gpu.model, device)
    if a is not None:
        values = {"memory": a.memory_mib, "multiprocessors": a.multiprocessors, "slices.gi": a.gi_slices,
                  "slices.ci": a.ci_slices, "engines.copy": a.copy_engines, "engines.decoder": a.decoders,
                  "engines.encoder": a.encoders, "engines.jpeg": a.jpeg, "engines.ofa": a.ofa}
        out.update({f"{prefix}.{k}": str(v) for k, v in values.items() if v is not None})
    return out


def _mig_devices(gpus: Sequence[GpuMigState], names: Sequence[str]) -> dict[str, tuple[GpuMigState, str, str, int]]:
    """GFD MIG name -> (first GPU, its NVML name, device name, count over the node)."""
    out: dict[str, tuple[GpuMigState, str, str, int]] = {}
    for g, gpu_name in zip(gpus, names, strict=True):
        if g.mig_enabled:
            for d in g.devices:
                first = out.get(mig_name(d), (g, gpu_name, d, 0))
                out[mig_name(d)] = (*first[:3], first[3] + 1)
    return out


def _invalid(gpus: Sequence[GpuMigState], names: Sequence[str]) -> dict[str, str]:
    """newInvalidMigStrategyLabeler, named after the first MIG-enabled GPU."""
    name = next(n for g, n in zip(gpus, names, strict=True) if g.mig_enabled)
    return {f"{GPU_PREFIX}.product": product(name, "MIG", "INVALID"), f"{GPU_PREFIX}.count": "0",
            f"{GPU_PREFIX}.replicas": "0", f"{GPU_PREFIX}.sharing-strategy": "", f"{GPU_PREFIX}.memory": "0"}


def _single(gpus: Sequence[GpuMigState], names: Sequence[str]) -> dict[str, str]:
    if not any(g.mig_enabled for g in gpus):
        return {}
    if any(g.mig_enabled and not g.devices for g in gpus) or any(not g.mig_enabled for g in gpus):
        return _invalid(gpus, names)
    devices = _mig_devices(gpus, names)
    if len(devices) != 1:
        return _invalid(gpus, names)
    gpu, gpu_name, device, count = next(iter(devices.values()))
    return _mig_resource_labels(GPU_PREFIX, gpu, gpu_name, device, count)


def _mixed(gpus: Sequence[GpuMigState], names: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, (gpu, gpu_name, device, count) in sorted(_mig_devices(gpus, names).items()):
        out.update(_mig_resource_labels(MIG_RESOURCE_PREFIX + name, gpu, gpu_name, device, count))
    return out


def _unknown_mig_labels(prefix: str, gpu: GpuMigState, device: str) -> list[str]:
    """The labels of NewMIGResourceLabeler whose values the catalog does not know (left out of `labels`)."""
    a = device_attributes(gpu.model, device)
    if a is None:
        return [f"{prefix}.{k}" for k in _ATTRIBUTE_LABELS]
    values = {"memory": a.memory_mib, "multiprocessors": a.multiprocessors, "engines.copy": a.copy_engines,
              "engines.decoder": a.decoders, "engines.encoder": a.encoders, "engines.jpeg": a.jpeg,
              "engines.ofa": a.ofa}
    return [f"{prefix}.{k}" for k, v in values.items() if v is None]


_ATTRIBUTE_LABELS = ("memory", "multiprocessors", "slices.gi", "slices.ci", "engines.copy", "engines.decoder",
                     "engines.encoder", "engines.jpeg", "engines.ofa")


@functools.cache
def _labels(strategy: str, gpus: tuple[GpuMigState, ...], driver: str | None,
            names: tuple[str, ...], version: str) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy: {strategy}")
    if not gpus:
        return (), ()
    out: dict[str, str] = _driver_labels(driver) if driver else {}
    unknown: list[str] = []
    out[MIG_CAPABLE] = "true" if any(g.mig_capable for g in gpus) else "false"
    out["nvidia.com/mps.capable"] = "false"
    out.update(_full_gpu_labels(gpus, names, version))
    if strategy != "none":
        out[MIG_STRATEGY] = strategy
        if strategy == "single":
            single = _single(gpus, names)
            out.update(single)
            if single and f"{GPU_PREFIX}.memory" not in single:  # the MIG device's memory is unknown: never the GPU's
                out.pop(GPU_MEMORY, None)
            devices = _mig_devices(gpus, names)
            if single.get(f"{GPU_PREFIX}.count", "0") != "0" and len(devices) == 1:
                gpu, _, device, _ = next(iter(devices.values()))
                unknown += _unknown_mig_labels(GPU_PREFIX, gpu, device)
        else:
            out.update(_mixed(gpus, names))
            for name, (gpu, _, device, _) in sorted(_mig_devices(gpus, names).items()):
                unknown += _unknown_mig_labels(MIG_RESOURCE_PREFIX + name, gpu, device)
    out["nvidia.com/gpu.mode"] = "compute"  # assumed: catalog GPUs are data-center parts (PCI class 3D controller)
    if versions.since("gfd.vgpu-present", version):
        out[VGPU_PRESENT] = "false"  # lm/vgpu.go: len(vGPU devices) > 0; the kit's nodes have none
    unknown.append(GPU_MEMORY)  # the whole GPU's (or, under single, the MIG device's) when the catalog lacks it
    return tuple(sorted(out.items())), tuple(sorted({k for k in unknown if k not in out}))


def labels(strategy: str, gpus: Sequence[GpuMigState], driver: str | None = None,
           names: Sequence[str] | None = None, *, version: str = DEFAULT_VERSION) -> dict[str, str]:
    """GFD labels for the node's GPUs under `strategy` (driver e.g. "580.159.04" adds the cuda.driver labels) as GFD
    `version` writes them.

    `names`: each GPU's NVML device name, which GFD's product labels and counts use; a board variant reports its own
    (`NVIDIA H100 PCIe`, not the model's `NVIDIA H100 80GB HBM3`). None = each model's primary board.
    """
    return dict(_labels(strategy, tuple(gpus), driver, _names(gpus, names), version)[0])


def _names(gpus: Sequence[GpuMigState], names: Sequence[str] | None) -> tuple[str, ...]:
    found = tuple(names) if names is not None else tuple(g.model.nvml_name for g in gpus)
    if len(found) != len(gpus):
        raise ValueError(f"{len(found)} GPU names for {len(gpus)} GPUs")
    return found


def unknown_labels(strategy: str, gpus: Sequence[GpuMigState], names: Sequence[str] | None = None, *,
                   version: str = DEFAULT_VERSION) -> tuple[str, ...]:
    """Labels GFD writes whose values the catalog does not know, so `labels` leaves them out (a check must not read
    their absence as a difference)."""
    return _labels(strategy, tuple(gpus), None, _names(gpus, names), version)[1]
