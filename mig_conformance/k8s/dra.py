"""What NVIDIA's DRA driver for GPUs (`gpu.nvidia.com`) publishes for a node: ResourceSlices and DeviceClasses.

Follows kubernetes-sigs/dra-driver-nvidia-gpu @9593204 (docs/reference/dra.md): one pool per node, named after the
node; static MIG (the default): one `type=mig` device per MIG device that exists when the kubelet plugin starts, no
device for its MIG-enabled parent, nothing at all for a MIG-enabled GPU without MIG devices, a `type=gpu` device per
MIG-disabled GPU; dynamic MIG (alpha, `DynamicMIG` gate): every GI profile at every placement of a MIG-capable GPU
as a partitionable device consuming one counter set per GPU (`k8s/dra_dynamic.py`). Rules that depend on a version
are in `RULES`, each with its source.

Values the catalog does not know (brand or compute capability of a GPU without a capture, the CUDA version of a
driver branch the kit has no capture of) are left out and named in `unknown`; run-time values (UUIDs, PCI bus ID,
PCIe root, NUMA node) come from the caller (the simulators) or are left out (`expect`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mig_conformance.gpus.catalog import GpuModel
from mig_conformance.k8s import stack as S
from mig_conformance.k8s.versions import Rule, release
from mig_conformance.mig.placement import fit
from mig_conformance.mig.state import GpuMigState

DRIVER = "gpu.nvidia.com"
API_VERSION = "resource.k8s.io/v1"
GPU_CLASS, MIG_CLASS = "gpu.nvidia.com", "mig.nvidia.com"
UPSTREAM = "kubernetes-sigs/dra-driver-nvidia-gpu @9593204"
EXTENDED_RESOURCE_CLAIM = "resource.kubernetes.io/extended-resource-claim"

RULES: tuple[Rule, ...] = (
    Rule("dra.api-v1", "kubernetes", "v1.34.0",
         "DRA is beta (resource.k8s.io/v1beta1/v1beta2, feature gate DynamicResourceAllocation)",
         "resource.k8s.io/v1 is GA and served by default",
         "https://kubernetes.io/blog/2025/09/01/kubernetes-v1-34-dra-updates/ (docs/reference/dra.md#api)",
         "k8s/dra.py: no slices or classes are projected below it"),
    Rule("dra.gpu-class-extended-resource", "kubernetes", "v1.34.0",
         "DeviceClass gpu.nvidia.com has no extendedResourceName",
         "the chart sets extendedResourceName: nvidia.com/gpu when it renders resource.k8s.io/v1",
         f"{UPSTREAM} deployments/helm/dra-driver-nvidia-gpu/templates/deviceclass-gpu.yaml",
         "k8s/dra.py device_classes"),
    Rule("dra.extended-resource-bridge", "kubernetes", "v1.35.0",
         "a pod's nvidia.com/mig-<profile> limit cannot be served by DRA",
         "a DeviceClass per MIG profile with extendedResourceName nvidia.com/mig-<profile> bridges the limit to a "
         "claim the scheduler creates (feature DRAExtendedResource)",
         f"{UPSTREAM} demo/specs/extended-resources/mig-1g-12gb.yaml (prerequisites: Kubernetes >= 1.35)",
         "k8s/dra.py device_classes (the kit's per-profile classes, named as in the demo)"),
    Rule("dra.split-counter-slices", "kubernetes", "v1.35.0",
         "dynamic MIG: one ResourceSlice per GPU holding its counter set and its devices",
         "dynamic MIG: one slice with every GPU's counter set, then one slice of devices per GPU",
         f"{UPSTREAM} cmd/gpu-kubelet-plugin/driver.go generateSplitResourceSlices",
         "k8s/dra_dynamic.py"),
    Rule("dra.partitionable-default", "kubernetes", "v1.36.0",
         "partitionable devices (KEP-4815) need the DRAPartitionableDevices gate on apiserver and scheduler",
         "partitionable devices are beta and on by default",
         "https://kubernetes.io/docs/concepts/resource-management/dynamic-resource-allocation/dra-features/ "
         "(docs/reference/dra.md#dynamic-mig)",
         "cluster/local (feature gates below it); k8s/dra_dynamic.py"),
)
_BY_ID = {r.id: r for r in RULES}

#: go-nvlib GetArchitectureAsString by catalog architecture.
ARCHITECTURES = {"ampere": "Ampere", "hopper": "Hopper", "blackwell": "Blackwell", "ada": "Ada Lovelace",
                 "turing": "Turing"}
#: CUDA compute capability by catalog model ("major.minor", go-nvlib GetCudaComputeCapabilityAsString).
COMPUTE_CAPABILITY_SOURCE = "https://developer.nvidia.com/cuda-gpus (docs/reference/dra.md#compute-capability)"
COMPUTE_CAPABILITY = {"A100-40GB": "8.0", "A100-80GB": "8.0", "A30-24GB": "8.0", "H100-80GB": "9.0",
                      "H100-NVL-94GB": "9.0", "H200-141GB": "9.0", "GH200-96GB": "9.0", "B200-180GB": "10.0",
                      "RTXPRO6000-96GB": "12.0", "A10G-24GB": "8.6", "L4-24GB": "8.9", "L40S-48GB": "8.9",
                      "T4-16GB": "7.5"}
#: NVML brand (go-nvlib GetBrandAsString) where a capture shows it.
BRANDS = {"H100-80GB": "Nvidia", "H200-141GB": "Nvidia"}
BRAND_SOURCE = "nvidia-smi -q -x product_brand NVIDIA in tests/data/captures/{h100-80gb-hbm3,h200-141gb}-580"
#: CUDA driver version (nvmlSystemGetCudaDriverVersion as major.minor) by driver branch, where a capture shows it.
CUDA_BY_BRANCH = {580: "13.0"}
CUDA_SOURCE = "nvidia-smi -q -x cuda_version 13.0 with driver 580.159.04 in tests/data/captures/*-580"


def rule(rule_id: str) -> Rule:
    return _BY_ID[rule_id]


def since(rule_id: str, kubernetes: str | None) -> bool:
    """Whether Kubernetes `kubernetes` has the rule's behaviour (unknown: the newest, as the kit builds it)."""
    return kubernetes is None or release(kubernetes) >= release(rule(rule_id).since)


def semver(text: str) -> str:
    """Masterminds/semver NewVersion(...).String() as the driver writes version attributes: missing parts are 0,
    leading zeros are dropped (`580.159.04` -> `580.159.4`, `9.0` -> `9.0.0`)."""
    parts = [int(p) for p in text.split(".")[:3]]
    parts += [0] * (3 - len(parts))
    return ".".join(str(p) for p in parts)


def quantity(value: int, binary: bool = False) -> str:
    """resource.Quantity's canonical text of an integer: BinarySI uses the largest exact power-of-1024 suffix."""
    if binary and value:
        for suffix, power in (("Ei", 60), ("Pi", 50), ("Ti", 40), ("Gi", 30), ("Mi", 20), ("Ki", 10)):
            if value % (1 << power) == 0:
                return f"{value >> power}{suffix}"
    return str(value)


def parse_quantity(text: str) -> int:
    """The integer value of a quantity as the API server returns the kit's quantities (plain, binary or decimal
    suffix). ValueError for anything else."""
    text = str(text).strip()
    for suffix, factor in (("Ki", 1 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30), ("Ti", 1 << 40), ("Pi", 1 << 50),
                           ("Ei", 1 << 60), ("k", 10**3), ("M", 10**6), ("G", 10**9), ("T", 10**12)):
        if text.endswith(suffix):
            return int(text[: -len(suffix)]) * factor
    return int(text)


@dataclass(frozen=True)
class MigInstance:
    """One MIG device as the plugin enumerates it: profile (go-nvlib name), GI profile ID and placement."""

    profile: str
    gi_profile_id: int
    start: int
    size: int
    uuid: str | None = None


@dataclass(frozen=True)
class DraGpu:
    """One physical GPU as the kubelet plugin sees it when it starts."""

    minor: int
    model: GpuModel
    mig_enabled: bool
    instances: tuple[MigInstance, ...] = ()
    uuid: str | None = None
    product_name: str | None = None  # the board's NVML name (default: the model's)


@dataclass(frozen=True)
class Device:
    """A ResourceSlice device: attributes and capacity in API form, plus what the kit knows about it."""

    name: str
    gpu: int
    type: str  # gpu | mig
    profile: str | None
    attributes: dict[str, dict[str, Any]]
    capacity: dict[str, dict[str, str]]
    placement: tuple[int, int] | None = None
    consumes_counters: tuple[dict[str, Any], ...] = ()

    def api(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "attributes": self.attributes, "capacity": self.capacity}
        if self.consumes_counters:
            out["consumesCounters"] = list(self.consumes_counters)
        return out

    def attribute(self, name: str) -> Any:
        value = self.attributes.get(name)
        return None if value is None else next(iter(value.values()))


@dataclass(frozen=True)
class DraProjection:
    """The driver's pool for one node: its slices (API objects), devices, classes, and what the kit left out."""

    node: str
    slices: tuple[dict[str, Any], ...]
    devices: tuple[Device, ...]
    classes: tuple[dict[str, Any], ...]
    notes: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()
    dynamic: bool = False
    rules: tuple[str, ...] = field(default=())

    def counts(self) -> dict[str, int]:
        """Devices per `type=mig` profile, plus `gpu` for full GPUs (partitionable devices count too)."""
        out: dict[str, int] = {}
        for d in self.devices:
            key = d.profile if d.type == "mig" and d.profile else "gpu"
            out[key] = out.get(key, 0) + 1
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"driver": DRIVER, "node": self.node, "pool": self.node, "dynamic_mig": self.dynamic,
                "counts": self.counts(), "resource_slices": list(self.slices),
                "device_classes": list(self.classes), "notes": list(self.notes), "unknown": list(self.unknown),
                "rules": list(self.rules)}


def _common_attributes(gpu: DraGpu, driver: str | None, unknown: set[str]) -> dict[str, dict[str, Any]]:
    """GpuInfo.Attributes / CommonAttributesMig without the run-time ones (deviceinfo.go, mig.go)."""
    m = gpu.model
    attrs: dict[str, dict[str, Any]] = {"productName": {"string": gpu.product_name or m.nvml_name}}
    arch = ARCHITECTURES.get(m.architecture)
    if arch:
        attrs["architecture"] = {"string": arch}
    else:
        unknown.add(f"{m.key}: architecture ({m.architecture!r} has no go-nvlib name in the kit)")
    if m.key in BRANDS:
        attrs["brand"] = {"string": BRANDS[m.key]}
    else:
        unknown.add(f"{m.key}: brand (no capture of this GPU; {BRAND_SOURCE} covers H100 and H200)")
    if m.key in COMPUTE_CAPABILITY:
        attrs["cudaComputeCapability"] = {"version": semver(COMPUTE_CAPABILITY[m.key])}
    else:
        unknown.add(f"{m.key}: cudaComputeCapability")
    if driver:
        attrs["driverVersion"] = {"version": semver(driver)}
        cuda = CUDA_BY_BRANCH.get(int(driver.split(".")[0]))
        if cuda:
            attrs["cudaDriverVersion"] = {"version": semver(cuda)}
        else:
            unknown.add(f"cudaDriverVersion of driver {driver} (the kit knows the 580 branch: {CUDA_SOURCE})")
    else:
        unknown.add("driverVersion and cudaDriverVersion (driver unknown)")
    return attrs


def mig_capacity(model: GpuModel, profile: str, unknown: set[str]) -> dict[str, int]:
    """CommonCapacitiesMig: the GI profile's NVML values (a CI device reports its GI's), memory in bytes."""
    resolved = model.resolve(profile)
    if resolved is None:
        unknown.add(f"{model.key}: capacities of {profile} (not in the catalog)")
        return {}
    gi, _ci = resolved
    e = gi.engines
    values = {"multiprocessors": gi.sm, "copyEngines": e.ce, "decoders": e.dec, "encoders": e.enc,
              "jpegEngines": e.jpeg, "ofaEngines": e.ofa,
              "memory": None if gi.memory_mib is None else gi.memory_mib * 1024 * 1024}
    for name, v in values.items():
        if v is None:
            unknown.add(f"{model.key}: {name} of {gi.name} (catalog value unknown)")
    return {k: v for k, v in values.items() if v is not None}


def _capacity_api(values: Mapping[str, int]) -> dict[str, dict[str, str]]:
    return {k: {"value": quantity(v, binary=True)} for k, v in values.items()}


def canonical_mig_name(minor: int, profile: str, profile_id: int, start: int) -> str:
    """MigSpecTuple.ToCanonicalName (mig.go): `gpu-<minor>-mig-<profile without dots>-<GI profile ID>-<start>`."""
    pname = "".join(c if c.isalnum() or c in "-." else "-" for c in profile.replace(".", "").lower()).strip("-")
    return f"gpu-{minor}-mig-{pname}-{profile_id}-{start}"


def full_gpu_device(gpu: DraGpu, driver: str | None, unknown: set[str]) -> Device:
    attrs = {"type": {"string": "gpu"}, **({"uuid": {"string": gpu.uuid}} if gpu.uuid else {}),
             **_common_attributes(gpu, driver, unknown)}
    capacity: dict[str, int] = {}
    if gpu.model.memory_total_mib is not None:
        capacity["memory"] = gpu.model.memory_total_mib * 1024 * 1024
    else:
        unknown.add(f"{gpu.model.key}: memory of the full GPU")
    return Device(f"gpu-{gpu.minor}", gpu.minor, "gpu", None, attrs, _capacity_api(capacity))


def static_mig_device(gpu: DraGpu, inst: MigInstance, driver: str | None, unknown: set[str]) -> Device:
    """MigDeviceInfo.GetDevice: common MIG attributes, uuid, the GI profile's capacities and memorySlice<i> = 1."""
    attrs: dict[str, dict[str, Any]] = {"type": {"string": "mig"}, "profile": {"string": inst.profile}}
    if gpu.uuid:
        attrs["parentUUID"] = {"string": gpu.uuid}
    if inst.uuid:
        attrs["uuid"] = {"string": inst.uuid}
    attrs.update(_common_attributes(gpu, driver, unknown))
    capacity = mig_capacity(gpu.model, inst.profile, unknown)
    capacity.update({f"memorySlice{i}": 1 for i in range(inst.start, inst.start + inst.size)})
    return Device(canonical_mig_name(gpu.minor, inst.profile, inst.gi_profile_id, inst.start), gpu.minor, "mig",
                  inst.profile, attrs, _capacity_api(capacity), (inst.start, inst.size))


def static_devices(gpus: Sequence[DraGpu], driver: str | None) -> tuple[list[Device], list[str], set[str]]:
    """The devices of the static-MIG path (allocatable.go + deviceinfo.go), with notes and unknown values."""
    devices: list[Device] = []
    notes: list[str] = []
    unknown: set[str] = set()
    for gpu in gpus:
        if not gpu.mig_enabled:
            devices.append(full_gpu_device(gpu, driver, unknown))
        elif not gpu.instances:
            notes.append(f"GPU {gpu.minor} ({gpu.model.key}): MIG enabled without MIG devices: the driver advertises "
                         "neither the GPU nor any slice (it logs a warning)")
        else:
            devices.extend(static_mig_device(gpu, inst, driver, unknown) for inst in gpu.instances)
    names = [d.name for d in devices]
    if len(set(names)) != len(names):
        notes.append("several compute instances share one GPU instance: the driver's canonical names (GI profile and "
                     "placement) collide, so the API server would reject its ResourceSlice")
    return sorted(devices, key=lambda d: d.name), notes, unknown


def slice_object(node: str, index: int, count: int, devices: Sequence[Device],
                 shared_counters: Sequence[dict[str, Any]] = (), generation: int = 1) -> dict[str, Any]:
    """One ResourceSlice of the node's pool (the resourceslice controller names them <node>-gpu.nvidia.com-*)."""
    spec: dict[str, Any] = {"driver": DRIVER, "nodeName": node,
                            "pool": {"name": node, "generation": generation, "resourceSliceCount": count}}
    if devices:
        spec["devices"] = [d.api() for d in devices]
    if shared_counters:
        spec["sharedCounters"] = list(shared_counters)
    return {"apiVersion": API_VERSION, "kind": "ResourceSlice",
            "metadata": {"name": f"{node}-{DRIVER}-{index}"}, "spec": spec}


def _class(name: str, expression: str, extended: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"selectors": [{"cel": {"expression": expression}}]}
    if extended:
        spec["extendedResourceName"] = extended
    return {"apiVersion": API_VERSION, "kind": "DeviceClass", "metadata": {"name": name}, "spec": spec}


def type_selector(kind: str) -> str:
    return f"device.driver == '{DRIVER}' && device.attributes['{DRIVER}'].type == '{kind}'"


def profile_selector(profile: str) -> str:
    return f"device.attributes['{DRIVER}'].profile == '{profile}'"


def profile_class_name(profile: str) -> str:
    """`mig-1g-12gb.gpu.nvidia.com` for 1g.12gb (the demo's naming; `+` becomes `-`)."""
    return f"mig-{profile.replace('.', '-').replace('+', '-')}.{DRIVER}"


def extended_resource(profile: str) -> str:
    """The device plugin's mixed-strategy name (`nvidia.com/mig-1g.10gb`, `+me` -> `.me`)."""
    return f"nvidia.com/mig-{profile.replace('+', '.')}"


def device_classes(profiles: Sequence[str], kubernetes: str | None) -> tuple[dict[str, Any], ...]:
    """The chart's DeviceClasses and, from Kubernetes 1.35, one per MIG profile bridging its extended resource."""
    if not since("dra.api-v1", kubernetes):
        return ()
    gpu_ext = "nvidia.com/gpu" if since("dra.gpu-class-extended-resource", kubernetes) else None
    out = [_class(GPU_CLASS, type_selector("gpu"), gpu_ext), _class(MIG_CLASS, type_selector("mig"))]
    if since("dra.extended-resource-bridge", kubernetes):
        for p in sorted(set(profiles)):
            out.append(_class(profile_class_name(p), f"{type_selector('mig')} && {profile_selector(p)}",
                              extended_resource(p)))
    return tuple(out)


def from_states(states: Sequence[GpuMigState]) -> list[DraGpu]:
    """DraGpus from projected MIG states: each GPU's devices placed as the placement engine places them (the
    projection knows no UUIDs)."""
    out: list[DraGpu] = []
    for i, g in enumerate(states):
        instances: list[MigInstance] = []
        if g.mig_enabled and g.devices:
            result = fit(g.model, g.counts)
            for placed in result.placement:
                gi = g.model.profile(placed.profile)
                for ci in placed.compute_instances:
                    instances.append(MigInstance(ci, gi.id if gi else -1, placed.start, placed.size))
        out.append(DraGpu(i, g.model, g.mig_enabled, tuple(instances)))
    return out


def project(node: str, gpus: Sequence[DraGpu], profile: S.StackProfile | None = None, *,
            dynamic: bool = False, all_profiles: Sequence[str] = ()) -> DraProjection:
    """The driver's ResourceSlices and the DeviceClasses for one node under the stack's versions."""
    profile = profile or S.default()
    kubernetes, driver = profile.kubernetes.value, profile.driver.value
    notes: list[str] = []
    used = [r.id for r in RULES if since(r.id, kubernetes)]
    if not since("dra.api-v1", kubernetes):
        return DraProjection(node, (), (), (), (f"Kubernetes {kubernetes} < {rule('dra.api-v1').since}: "
                                                 f"{rule('dra.api-v1').before}; the kit projects resource.k8s.io/v1 "
                                                 "only",), (), dynamic, tuple(used))
    if dynamic:
        from mig_conformance.k8s.dra_dynamic import dynamic_slices
        slices, devices, dnotes, unknown = dynamic_slices(node, gpus, driver, kubernetes)
        notes.extend(dnotes)
    else:
        devs, snotes, unknown = static_devices(gpus, driver)
        notes.extend(snotes)
        devices = devs
        slices = [slice_object(node, 0, 1, devs)] if devs else []
    profiles = list(all_profiles) or sorted({d.profile for d in devices if d.type == "mig" and d.profile})
    notes.append("not projected: pciBusID, pcieRoot and numaNode attributes (run-time values)")
    return DraProjection(node, tuple(slices), tuple(devices), device_classes(profiles, kubernetes), tuple(notes),
                         tuple(sorted(unknown)), dynamic, tuple(used))


def project_states(node: str, states: Sequence[GpuMigState], profile: S.StackProfile | None = None,
                   dynamic: bool = False) -> DraProjection:
    return project(node, from_states(states), profile, dynamic=dynamic)
