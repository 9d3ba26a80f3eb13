"""Findings about the platform under MIG: a driver that leaves GPU pods Pending on mixed MIG/full-GPU nodes (10),
Grace systems with CDMM on (11), a GPU advertised both by the device plugin and by a DRA driver (12)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mig_conformance.diagnose.context import DRIVER_LABEL, Context
from mig_conformance.diagnose.finding import Finding, gh
from mig_conformance.diagnose.snapshot import Obj, Snapshot, gpu_node, labels_of, name_of
from mig_conformance.k8s import labels as L
from mig_conformance.k8s import versions as V

OPERATOR = "NVIDIA/gpu-operator"
#: GPU pods stay Pending on nodes mixing MIG and full GPUs with these drivers: the release notes list 570.124.06,
#: 570.133.20, 570.148.08 and 570.158.01 and recommend 570.172.08 (gpu-operator#1361; NVIDIA/cloud-native-docs
#: gpu-operator/release-notes.rst @52dcb7b8, 25.3.x known issues)
PENDING_DRIVERS = ("570.124.06", "570.158.01")
FIXED_DRIVER = "570.172.08"
RELEASE_NOTES = "NVIDIA/cloud-native-docs gpu-operator/release-notes.rst @52dcb7b8"
GRACE = ("gh200", "gb200", "gb300")
DRA_DRIVER = "gpu.nvidia.com"


def _driver_in(version: str | None, low: str, high: str) -> bool:
    try:
        return version is not None and V.release(low) <= V.release(version) <= V.release(high)
    except ValueError:
        return False


def mixed_pending_driver(ctx: Context, node: Obj) -> Iterator[Finding]:
    """10: a node with both full GPUs and MIG devices on a driver of the affected range."""
    driver = labels_of(node).get(DRIVER_LABEL)
    if not _driver_in(driver, *PENDING_DRIVERS):
        return
    allocatable = gpu_node(node).allocatable
    full = allocatable.get(L.GPU_RESOURCE, 0)
    mig = {k: v for k, v in allocatable.items() if k.startswith(L.MIG_RESOURCE_PREFIX) and v}
    if not full or not mig:
        return
    yield Finding(
        "driver-mixed-mig-pending", name_of(node), f"driver {driver} leaves GPU pods Pending on a node that mixes "
        "MIG and full GPUs", {DRIVER_LABEL: driver, L.GPU_RESOURCE: full, "mig": mig,
                              "affected": f"{PENDING_DRIVERS[0]}-{PENDING_DRIVERS[1]}"},
        (gh(OPERATOR, 1361), f"{RELEASE_NOTES} (25.3.x known issues)"),
        f"upgrade the driver to {FIXED_DRIVER} or later (NVIDIA's recommendation), or give the node a config with MIG "
        "on every GPU or on none")


def is_grace_cdmm(node: Obj) -> bool:
    """A Grace system (GH200/GB200/GB300) whose GFD reports MIG unavailable: CDMM is on (driver 580's default)."""
    labels = labels_of(node)
    product = labels.get(L.GPU_PRODUCT, "").lower()
    return any(g in product for g in GRACE) and labels.get(L.MIG_CAPABLE) == "false"


def grace_cdmm(ctx: Context, node: Obj) -> Iterator[Finding]:
    """11: Grace with CDMM on: MIG is unavailable, any MIG config fails or is ignored. Reported where MIG is asked
    for (an nvidia.com/mig.config other than all-disabled): a Grace node used with whole GPUs is healthy."""
    if not is_grace_cdmm(node):
        return
    labels = labels_of(node)
    if labels.get(L.MIG_CONFIG) in (None, "", "all-disabled"):
        return
    yield Finding(
        "grace-cdmm-no-mig", name_of(node), "MIG is unavailable on this Grace system (CDMM is on)",
        {L.GPU_PRODUCT: labels.get(L.GPU_PRODUCT), L.MIG_CAPABLE: "false", DRIVER_LABEL: labels.get(DRIVER_LABEL),
         L.MIG_CONFIG: labels.get(L.MIG_CONFIG), L.MIG_CONFIG_STATE: labels.get(L.MIG_CONFIG_STATE)},
        (f"{RELEASE_NOTES} (from driver 580.65.06 CDMM is on by default on Grace-based systems and is not "
         "compatible with MIG)", "Amazon EKS User Guide, NVIDIA UltraServers (with CDMM, MIG is not supported)"),
        "use full GPUs on this node (leave nvidia.com/mig.config at all-disabled); MIG needs CDMM off, which the "
        "EKS AMI with driver 580 does not offer", severity="warning")


def _devices(slice_: Obj) -> list[Any]:
    return list((slice_.get("spec") or {}).get("devices") or ())


def _dra_slices(snapshot: Snapshot, node: Obj) -> list[Obj]:
    """The node's ResourceSlices of NVIDIA's DRA driver that hold devices."""
    name = name_of(node)
    return [s for s in snapshot.of("ResourceSlice") if (s.get("spec") or {}).get("driver") == DRA_DRIVER
            and (s.get("spec") or {}).get("nodeName") == name and _devices(s)]


def _plugin_resources(node: Obj) -> dict[str, int]:
    """What the device plugin advertises on the node (nvidia.com/gpu, nvidia.com/mig-*), non-zero only."""
    return {k: v for k, v in gpu_node(node).allocatable.items()
            if v and (k == L.GPU_RESOURCE or k.startswith(L.MIG_RESOURCE_PREFIX))}


def runs_dra_driver_only(snapshot: Snapshot, node: Obj) -> bool:
    """The node publishes DRA devices and the device plugin advertises nothing there (a DRA node, as intended)."""
    return bool(_dra_slices(snapshot, node)) and not _plugin_resources(node)


def dra_and_device_plugin(ctx: Context, node: Obj) -> Iterator[Finding]:
    """12: ResourceSlices of gpu.nvidia.com on a node whose device plugin also advertises GPUs."""
    slices = _dra_slices(ctx.snapshot, node)
    if not slices:
        return
    plugin = _plugin_resources(node)
    if not plugin:
        return
    yield Finding(
        "gpu-advertised-twice", name_of(node), "GPUs advertised both by the device plugin and by the DRA driver",
        {"device_plugin": plugin, "resource_slices": sorted(name_of(s) for s in slices),
         "dra_devices": sum(len(_devices(s)) for s in slices)},
        ("kubernetes-sigs/dra-driver-nvidia-gpu deployments/helm/dra-driver-nvidia-gpu/templates/validation.yaml "
         "(not alongside the device plugin until KEP-5004 is GA)", "https://kubernetes.io/docs/concepts/"
         "scheduling-eviction/dynamic-resource-allocation/"),
        "run one of them per node: disable the device plugin on DRA nodes (nvidia.com/gpu.deploy.device-plugin="
        "false) or stop the DRA driver's GPU kubelet plugin there; the scheduler may otherwise hand one GPU to two "
        "pods")
