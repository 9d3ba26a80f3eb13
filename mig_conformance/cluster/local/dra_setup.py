"""The local backend with NVIDIA's DRA driver (`--gpu-allocation dra`): the DeviceClasses and the agents' options.

Kubernetes v1.37.2 (the binaries the kit builds) serves `resource.k8s.io/v1` and has every DRA feature this needs on
by default, so no feature gate or runtime-config is set: DynamicResourceAllocation GA (locked on since 1.35),
DRAExtendedResource GA in 1.37 (the per-profile classes' extendedResourceName), DRAPartitionableDevices beta and on
since 1.36 (dynamic MIG) (kubernetes/kubernetes v1.37.2 pkg/features/kube_features.go; docs/reference/dra.md).
The DeviceClasses are those of the driver's Helm chart plus, where the version has the bridge, one per MIG profile of
the nodes' GPUs (k8s/dra.py); the driver's kubelet plugin is simulated by the agents (simulators/agents/dra_driver.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from mig_conformance.cluster.local import nodes
from mig_conformance.cluster.local.rest import Rest
from mig_conformance.k8s import dra
from mig_conformance.k8s.versions import LOCAL_KUBERNETES


def profiles(plan: Sequence[nodes.LocalNode]) -> list[str]:
    """Every GI profile of the nodes' GPUs (a class per profile exists before any node is reconfigured)."""
    return sorted({gi.name for n in plan for g in n.spec.gpus for gi in g.gi_profiles})


def create_device_classes(admin: Rest, plan: Sequence[nodes.LocalNode]) -> None:
    admin.create_all(dra.device_classes(profiles(plan), LOCAL_KUBERNETES), exist_ok=True)


def agents_args(gpu_allocation: str, dynamic_mig: bool) -> list[str]:
    if gpu_allocation != "dra":
        return []
    return ["--gpu-allocation", "dra", "--kubernetes-version", LOCAL_KUBERNETES] + (
        ["--dynamic-mig"] if dynamic_mig else [])
