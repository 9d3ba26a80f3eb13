"""NVIDIA k8s-device-plugin: the extended resources a node advertises for a MIG strategy (none | single | mixed).

Follows NVIDIA/k8s-device-plugin `internal/rm/device_map.go` and `internal/rm/rm.go` from v0.15.0 to v0.20.x (read at
snapshot 1b826acc and at the tags). Where releases differ the rule is in `k8s/versions.py` with its source: the error
chain's wording (v0.17.0), an empty MIG-enabled GPU under mixed (an error before v0.16.0, a warning since) and the
pattern anchoring below (v0.20.0).

* none: every GPU is one `nvidia.com/gpu`, MIG mode or not.
* single: every MIG device is one `nvidia.com/gpu` (resource pattern `*`); MIG-disabled and non-MIG GPUs too. It fails
  when a MIG-enabled GPU has no MIG device, when MIG devices differ in their NVML attributes, or when MIG devices and
  full GPUs coexist. With no MIG-enabled GPU it is the same as none.
* mixed: MIG-disabled and non-MIG GPUs are `nvidia.com/gpu`; each MIG device is `nvidia.com/mig-<name>` where the
  name comes from the first matching pattern, one per GI profile with C == G in go-nvlib `VisitMigProfiles` order,
  `+` replaced by `.`. Up to v0.19.x patterns are unanchored regexps, so `1g.10gb+me` matches `1g.10gb` first and is
  advertised as `nvidia.com/mig-1g.10gb` (issue #1462), and a CI `1c.3g.40gb` matches `3g.40gb`. v0.20.0 anchors
  them (commit 0dfdfb97, PR #1807): `nvidia.com/mig-1g.10gb.me`, and a CI matches nothing, so the plugin fails.

On error the real plugin exits 1 (`klog.Error(err); os.Exit(1)` in cmd/nvidia-device-plugin/main.go), the pod
crash-loops and registers nothing: a fresh node shows no `nvidia.com/*` resources at all, and resources registered
earlier drop to 0 in capacity and allocatable (kubelet devicemanager `GetCapacity`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from mig_conformance.common.identity import ByIdentity
from mig_conformance.gpus.catalog import GpuModel
from mig_conformance.k8s import versions
from mig_conformance.k8s.labels import GPU_RESOURCE, MIG_RESOURCE_PREFIX, STRATEGIES
from mig_conformance.mig.state import GpuMigState, device_attributes

#: Version modelled by default: the device plugin of the newest GPU Operator (v26.7.0 ships v0.20.0,
#: deployments/gpu-operator/values.yaml at tag v26.7.0); the stack profile (k8s/stack.py) chooses another.
DEFAULT_VERSION = versions.OPERATOR_RELEASES[versions.NEWEST_OPERATOR].device_plugin

_MAP = "error building device map: error building device map from config.resources: "
#: v0.17.0+: cmd/nvidia-device-plugin/plugin-manager.go + internal/plugin/factory.go (rule device-plugin.error-chain)
ERROR_PREFIX = ("error starting plugins: error getting plugins: unable to create plugins: failed to construct "
                "resource managers: " + _MAP)
#: v0.15.x-v0.16.x: internal/plugin/manager/nvml.go
ERROR_PREFIX_V015 = "error starting plugins: error getting plugins: failed to construct NVML resource managers: " + _MAP
# go-nvlib devicelib.VisitMigDevices wraps a visitor's error five times.
_MIG_VISIT = ("error visiting devices: error visiting device: error visiting device: error visiting MIG device: "
              "error visiting MIG device: ")
_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class DevicePluginResult:
    """Resources the plugin registers with kubelet (only those with devices), or the error it exits with."""

    resources: dict[str, int]
    error: str | None
    warnings: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, object]:
        return {"resources": dict(self.resources), "error": self.error, "warnings": list(self.warnings)}


def parse_version(version: str) -> tuple[int, int, int]:
    m = _VERSION.match(version.strip())
    if not m:
        raise ValueError(f"device plugin version must look like v0.19.3, got '{version}'")
    return int(m[1]), int(m[2]), int(m[3] or 0)


def anchored_patterns(version: str) -> bool:
    """Whether this plugin version matches MIG resource patterns exactly (v0.20.0+)."""
    return versions.since("device-plugin.anchored-patterns", version)


@dataclass(frozen=True)
class Behaviour:
    """What differs between the modelled releases (versions.RULES), decided once per version."""

    anchored: bool  # device-plugin.anchored-patterns
    empty_mig_gpu_is_error: bool  # not device-plugin.empty-mig-gpu
    prefix: str  # device-plugin.error-chain

    @classmethod
    def of(cls, version: str) -> Behaviour:
        parse_version(version)
        return cls(anchored_patterns(version), not versions.since("device-plugin.empty-mig-gpu", version),
                   ERROR_PREFIX if versions.since("device-plugin.error-chain", version) else ERROR_PREFIX_V015)


@functools.cache
def _patterns(models: tuple[ByIdentity[GpuModel], ...]) -> tuple[str, ...]:
    """MIG resource patterns of mixed strategy: GI profiles (C == G) per device, GI index order, first seen first."""
    out: dict[str, None] = {}
    for ref in models:
        model: GpuModel = ref.obj
        if model.mig_capable:
            for gi in sorted(model.gi_profiles, key=lambda p: p.nvml_index):
                out.setdefault(gi.name, None)
    return tuple(out)


def mixed_resource_name(device: str, patterns: Sequence[str], anchored: bool) -> str | None:
    """`nvidia.com/mig-...` for a MIG device under mixed strategy, or None when no pattern matches."""
    for p in patterns:
        if (device == p) if anchored else (p in device):
            return MIG_RESOURCE_PREFIX + p.replace("+", ".")
    return None


def _attributes_key(gpu: GpuMigState, name: str) -> object:
    return device_attributes(gpu.model, name) or name


def _error(message: str, how: Behaviour) -> DevicePluginResult:
    return DevicePluginResult({}, how.prefix + message)


_NOT_CONFIGURED = "invalid MIG configuration: at least one device with migEnabled=true was not configured correctly: "


@functools.cache
def _advertise(strategy: str, gpus: tuple[GpuMigState, ...], how: Behaviour) -> DevicePluginResult:
    if strategy not in STRATEGIES:
        return DevicePluginResult({}, f"error starting plugins: unable to validate flags: unknown MIG strategy: "
                                      f"{strategy}")
    full = sum(1 for g in gpus if strategy == "none" or not g.mig_enabled)
    counts: dict[str, int] = {GPU_RESOURCE: full} if full else {}
    if strategy == "none":
        return DevicePluginResult(counts, None)
    patterns = _patterns(tuple(ByIdentity(g.model) for g in gpus)) if strategy == "mixed" else ()
    mig: dict[str, int] = {}
    for g in gpus:
        if not g.mig_enabled:
            continue
        for d in g.devices:
            name = GPU_RESOURCE if strategy == "single" else mixed_resource_name(d, patterns, how.anchored)
            if name is None:
                return _error(f"error building MIG device map: {_MIG_VISIT}MIG profile '{d}' does not match any "
                              "resource patterns", how)
            mig[name] = mig.get(name, 0) + 1
    warnings: list[str] = []
    for i, g in enumerate(gpus):
        if g.mig_enabled and not g.devices:
            if how.empty_mig_gpu_is_error:  # before v0.16.0 the message always named device 0 (`i := 0`)
                return _error(f"{_NOT_CONFIGURED}error visiting device: device 0 has an invalid MIG configuration",
                              how)
            if strategy == "single":
                return _error(f"{_NOT_CONFIGURED}error visiting device: device {i} has no MIG devices configured", how)
            warnings.append(f"device {i} has no MIG devices configured")
    if strategy == "single":
        kinds = {_attributes_key(g, d) for g in gpus if g.mig_enabled for d in g.devices}
        if len(kinds) > 1:
            return _error(f"invalid MIG configuration: {_MIG_VISIT}more than one MIG device type present on node", how)
        if full and mig:
            return _error("all devices on the node must be configured with the same migEnabled value", how)
    for k, v in mig.items():
        counts[k] = counts.get(k, 0) + v
    return DevicePluginResult(dict(sorted(counts.items())), None, tuple(warnings))


def advertise(strategy: str, gpus: Sequence[GpuMigState], *, version: str = DEFAULT_VERSION) -> DevicePluginResult:
    """Extended resources (count > 0 only, as registered) for `strategy`, or the plugin's fatal error."""
    result = _advertise(strategy, tuple(gpus), _behaviour(version))
    return DevicePluginResult(dict(result.resources), result.error, result.warnings)


@functools.cache
def _behaviour(version: str) -> Behaviour:
    return Behaviour.of(version)
