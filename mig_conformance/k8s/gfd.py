"""gpu-feature-discovery (GFD) node labels for a MIG strategy.

Follows NVIDIA/k8s-device-plugin `internal/lm/{nvml.go,mig-strategy.go,resource.go}` (snapshot 1b826acc, same logic
since v0.17.0): labelers merged in order, later ones overwriting earlier keys.

* Always: `nvidia.com/mig.capable` (any GPU MIG-capable), `nvidia.com/mps.capable=false` (no MPS sharing configured),
  `nvidia.com/gpu.mode=compute`, and full-GPU labels `nvidia.com/gpu.{product,count,replicas,sharing-strategy,memory,
  family}` where count counts every GPU of that NVML name and replicas is 0 when all of them have MIG enabled. Names
  are the boards' (`labels(names=...)`): a variant such as H100 PCIe reports its own NVML name.
* single/mixed add `nvidia.com/mig.strategy`. single with one uniform MIG profile overwrites `nvidia.com/gpu.*` with
  the MIG device (`gpu.product=<GPU>-MIG-<profile>`, `gpu.count`=number of MIG devices, memory, multiprocessors,
  slices, engines); a mix of MIG-enabled and -disabled GPUs, an empty MIG-enabled GPU or two profiles give
  `gpu.product=<GPU>-MIG-INVALID`, `gpu.count=0`. mixed adds `nvidia.com/mig-<profile>.*` per profile, the profile
  named by `MigProfile.String()` with `+` replaced by `.` (so `1g.10gb+me` -> `mig-1g.10gb.me`, `1c.3g.40gb` stays).

Not produced (no source data in the catalog, or run-time values): `gpu.compute.major/minor`, `cuda.runtime*`,
`gpu.machine`, `gfd.timestamp`. Labels whose catalog value is unknown (null) are left out.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from mig_conformance.gpus.catalog import GpuModel
from mig_conformance.k8s.labels import MIG_CAPABLE, MIG_RESOURCE_PREFIX, MIG_STRATEGY, STRATEGIES
from mig_conformance.mig.state import GpuMigState, device_attributes

GPU_PREFIX = "nvidia.com/gpu"
#: lm/resource.go getArchFamily names by catalog architecture (CUDA compute capability -> family).
FAMILIES = {"ada": "ada-lovelace"}
_UNSAFE = re.compile(r"[^A-Za-z0-9\-_. ]")


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


def _full_gpu_labels(gpus: Sequence[GpuMigState], names: Sequence[str]) -> dict[str, str]:
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
                out[f"{GPU_PREFIX}.family"] = FAMILIES.get(model.architecture, model.architecture)
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


@functools.cache
def _labels(strategy: str, gpus: tuple[GpuMigState, ...], driver: str | None,
            names: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy: {strategy}")
    if not gpus:
        return ()
    out: dict[str, str] = _driver_labels(driver) if driver else {}
    out[MIG_CAPABLE] = "true" if any(g.mig_capable for g in gpus) else "false"
    out["nvidia.com/mps.capable"] = "false"
    out.update(_full_gpu_labels(gpus, names))
    if strategy != "none":
        out[MIG_STRATEGY] = strategy
        out.update(_single(gpus, names) if strategy == "single" else _mixed(gpus, names))
    out["nvidia.com/gpu.mode"] = "compute"  # assumed: catalog GPUs are data-center parts (PCI class 3D controller)
    return tuple(sorted(out.items()))


def labels(strategy: str, gpus: Sequence[GpuMigState], driver: str | None = None,
           names: Sequence[str] | None = None) -> dict[str, str]:
    """GFD labels for the node's GPUs under `strategy` (driver e.g. "580.159.04" adds the cuda.driver labels).

    `names`: each GPU's NVML device name, which GFD's product labels and counts use; a board variant reports its own
    (`NVIDIA H100 PCIe`, not the model's `NVIDIA H100 80GB HBM3`). None = each model's primary board.
    """
    found = tuple(names) if names is not None else tuple(g.model.nvml_name for g in gpus)
    if len(found) != len(gpus):
        raise ValueError(f"{len(found)} GPU names for {len(gpus)} GPUs")
    return dict(_labels(strategy, tuple(gpus), driver, found))
