"""Dynamic MIG (alpha): the driver's partitionable devices (KEP-4815) for a node.

kubernetes-sigs/dra-driver-nvidia-gpu @9593204 `cmd/gpu-kubelet-plugin/partitions.go`, `nvlib.go`
inspectMigProfilesAndPlacements, `driver.go` (docs/reference/dra.md#dynamic-mig):

* one counter set per MIG-capable GPU, `gpu-<minor>-counter-set`: one counter per MIG capacity (the camelCase name
  as a DNS label: `copyEngines` -> `copy-engines`), valued at the largest value any profile has, plus
  `memory-slice-<i>` = 1 for each memory slot (the largest placement size);
* one device per GI profile (its full compute instance) per possible placement, named
  `gpu-<minor>-mig-<profile without dots>-<profile ID>-<start>`, consuming its capacities plus the memory slices of
  its placement;
* the full GPU, consuming every counter, so that any partition excludes it and it excludes every partition.

Ampere cannot toggle MIG mode without a reset: a MIG-enabled Ampere GPU is advertised as its partitions only, a
MIG-disabled one as the full GPU only (PR #1018). GPUs that are not MIG capable are plain `type=gpu` devices.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from mig_conformance.k8s import dra as D

_CAMEL1 = re.compile(r"([a-z0-9])([A-Z])")
_CAMEL2 = re.compile(r"([A-Z]+)([A-Z][a-z])")


def counter_name(capacity: str) -> str:
    """camelToDNSName (mig.go)."""
    return _CAMEL2.sub(r"\1-\2", _CAMEL1.sub(r"\1-\2", capacity)).lower()


def memory_slice(i: int) -> str:
    return f"memory-slice-{i}"


def counter_set_name(minor: int) -> str:
    return f"gpu-{minor}-counter-set"


def _counters(values: dict[str, int], start: int, size: int) -> dict[str, dict[str, str]]:
    out = {counter_name(k): {"value": D.quantity(v, binary=True)} for k, v in values.items()}
    out.update({memory_slice(i): {"value": "1"} for i in range(start, start + size)})
    return out


def gpu_partitions(gpu: D.DraGpu, driver: str | None, unknown: set[str]) -> tuple[list[D.Device],
                                                                                  dict[str, Any] | None]:
    """The devices of one GPU and its counter set (None for a GPU without partitions)."""
    model = gpu.model
    if not model.mig_capable:
        return [D.full_gpu_device(gpu, driver, unknown)], None
    ampere = model.architecture == "ampere"
    parts: list[tuple[str, int, int, int, dict[str, int]]] = []
    if not (ampere and not gpu.mig_enabled):
        for gi in model.gi_profiles:
            caps = D.mig_capacity(model, gi.name, unknown)
            for start, size in gi.placements:
                parts.append((gi.name, gi.id, start, size, caps))
    if not parts:
        return [D.full_gpu_device(gpu, driver, unknown)], None
    # a capacity the catalog does not know for some profile cannot be a counter: NVML reports it on the GPU, the
    # kit would invent the counter's total (the others' maximum) and refuse what the GPU allows
    names = set().union(*(caps for *_, caps in parts))
    partial = sorted(n for n in names if any(n not in caps for *_, caps in parts))
    if partial:
        unknown.add(f"{model.key}: dynamic MIG counters {', '.join(partial)} left out (unknown for some profiles)")
        parts = [(n, i, s, z, {k: v for k, v in caps.items() if k not in partial}) for n, i, s, z, caps in parts]
    maxcap: dict[str, int] = {}
    for *_, caps in parts:
        for k, v in caps.items():
            maxcap[k] = max(maxcap.get(k, 0), v)
    slots = max(size for _, _, _, size, _ in parts)
    cset = counter_set_name(gpu.minor)
    devices: list[D.Device] = []
    if not (ampere and gpu.mig_enabled):
        full = D.full_gpu_device(gpu, driver, unknown)
        devices.append(D.Device(full.name, gpu.minor, "gpu", None, full.attributes,
                                {k: {"value": D.quantity(v, binary=True)} for k, v in maxcap.items()}, (0, slots),
                                ({"counterSet": cset, "counters": _counters(maxcap, 0, slots)},)))
    base = D._common_attributes(gpu, driver, unknown)
    for name, pid, start, size, caps in parts:
        attrs: dict[str, dict[str, Any]] = {"type": {"string": "mig"}, "profile": {"string": name}}
        if gpu.uuid:
            attrs["parentUUID"] = {"string": gpu.uuid}
        attrs.update(base)
        devices.append(D.Device(D.canonical_mig_name(gpu.minor, name, pid, start), gpu.minor, "mig", name, attrs,
                                {k: {"value": D.quantity(v, binary=True)} for k, v in caps.items()}, (start, size),
                                ({"counterSet": cset, "counters": _counters(caps, start, size)},)))
    return devices, {"name": cset, "counters": _counters(maxcap, 0, slots)}


def dynamic_slices(node: str, gpus: Sequence[D.DraGpu], driver: str | None, kubernetes: str | None
                   ) -> tuple[list[dict[str, Any]], list[D.Device], list[str], set[str]]:
    """The pool's slices: split (counter sets first, then one per GPU) from Kubernetes 1.35, else combined."""
    unknown: set[str] = set()
    per_gpu: list[tuple[list[D.Device], dict[str, Any] | None]] = [gpu_partitions(g, driver, unknown) for g in gpus]
    devices = [d for devs, _ in per_gpu for d in devs]
    notes = ["dynamic MIG (alpha, DynamicMIG gate): every profile at every placement is advertised; partitions are "
             "created when a claim is prepared; the driver destroys MIG partitions it did not create"]
    slices: list[dict[str, Any]] = []
    if D.since("dra.split-counter-slices", kubernetes):
        sets = [cs for _, cs in per_gpu if cs]
        count = 1 + len(per_gpu)
        slices.append(D.slice_object(node, 0, count, [], sets))
        slices.extend(D.slice_object(node, i + 1, count, devs) for i, (devs, _) in enumerate(per_gpu))
    else:
        count = len(per_gpu)
        slices.extend(D.slice_object(node, i, count, devs, [cs] if cs else []) for i, (devs, cs) in enumerate(per_gpu))
    return slices, devices, notes, unknown
