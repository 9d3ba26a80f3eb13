"""NVIDIA's DRA driver on a cluster, read-only, for TARGET.yaml and the report: its pools (ResourceSlices of
`gpu.nvidia.com`), its DeviceClasses, GPU Operator's `GPUCluster` (nvidia.com/v1alpha1, GPU Operator v26.7.0+:
`spec.draDriver.version` is the driver's image tag, `spec.draDriver.featureGates` its gates), whether a node also
registers device-plugin resources, and whether dynamic MIG is on (partitionable devices published). The kit never
turns dynamic MIG on for a cluster it did not create: the driver destroys MIG partitions it did not make.
"""

from __future__ import annotations

from typing import Any

from mig_conformance.cluster.base import Cluster, ClusterError
from mig_conformance.k8s import dra
from mig_conformance.k8s.labels import GPU_RESOURCE, MIG_RESOURCE_PREFIX

GPU_CLUSTER = ("nvidia.com", "v1alpha1", "gpuclusters")


def _gpu_cluster(cluster: Cluster) -> tuple[dict[str, Any] | None, str | None]:
    """The first GPUCluster, or (None, why not)."""
    custom = getattr(cluster, "custom", None)
    if custom is None:
        return None, "not a Kubernetes API backend"
    try:
        items = cluster._call(custom.list_cluster_custom_object, *GPU_CLUSTER).get("items") or []  # type: ignore[attr-defined]
    except ClusterError as exc:
        return None, str(exc)
    return (items[0], None) if items else (None, "no GPUCluster")


def detect(cluster: Cluster) -> dict[str, Any]:
    """{present, nodes: {node: devices}, device_classes, dynamic_mig, version, both, gpu_cluster} (read-only)."""
    slices = cluster.list_resource_slices(dra.DRIVER)
    per_node: dict[str, int] = {}
    dynamic = False
    for s in slices:
        node = s["spec"].get("nodeName") or "(not node-local)"
        devices = s["spec"].get("devices") or []
        per_node[node] = per_node.get(node, 0) + len(devices)
        dynamic = dynamic or any(d.get("consumesCounters") for d in devices)
    classes = sorted(c["metadata"]["name"] for c in cluster.list_device_classes()
                     if c["metadata"]["name"].endswith(dra.DRIVER) or c["metadata"]["name"] == dra.MIG_CLASS)
    gpu_cluster, why = _gpu_cluster(cluster)
    draspec = ((gpu_cluster or {}).get("spec") or {}).get("draDriver") or {}
    both = sorted(n.name for n in cluster.list_gpu_nodes() if n.name in per_node and any(
        v for k, v in n.allocatable.items() if k == GPU_RESOURCE or k.startswith(MIG_RESOURCE_PREFIX)))
    gates = draspec.get("featureGates") or {}
    return {"present": bool(slices or classes), "nodes": dict(sorted(per_node.items())), "device_classes": classes,
            "dynamic_mig": dynamic or bool(gates.get("DynamicMIG")), "version": draspec.get("version"),
            "version_source": "GPUCluster spec.draDriver.version" if draspec.get("version") else why,
            "gpu_cluster": (gpu_cluster or {}).get("metadata", {}).get("name"),
            "advertised_by_both": both}
