"""DRA in the `sim` backend: NVIDIA's DRA driver per node, the DeviceClasses, ResourceClaims and their allocation.

* The driver (`publish`) reads the node's NVML simulator when it starts (`NodeGpus.dra_inventory`) and publishes the
  projection's ResourceSlices (`k8s/dra.py`); it does not see partitions changed later until it restarts
  (`restart_on_reconfigure`: mig-manager v0.15.0+ bounces GPU clients whose DaemonSet selects
  `nvidia.com/gpu.deploy.client`, the kit deploys the driver so; without it the slices stay stale until `restart`).
* Claims are allocated when a pod that uses them is scheduled, by `k8s/dra_alloc.py` (kube-scheduler's allocator);
  the pod reserves them (`status.reservedFor`); when no pod reserves a claim any more its allocation is released, as
  the resourceclaim controller does. Claims from templates are named `<pod>-<template>` and go with the pod.
* Extended-resource bridge (Kubernetes >= 1.35): a pod's `nvidia.com/mig-<profile>: N` that no node advertises but a
  DeviceClass names as its `extendedResourceName` becomes a claim `<pod>-extended-resources` (annotated
  `resource.kubernetes.io/extended-resource-claim`) with request `container-0-request-0`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mig_conformance.cluster.base import ClusterError
from mig_conformance.common.errors import InputError
from mig_conformance.k8s import dra as D
from mig_conformance.k8s import stack as S
from mig_conformance.k8s.dra_alloc import Allocated, CelError, Claim, Inventory
from mig_conformance.k8s.model import PodRequest
from mig_conformance.simulators.node_gpus import NodeGpus


def dra_gpus(node: NodeGpus, models: Sequence[Any]) -> list[D.DraGpu]:
    """The DRA plugin's view of a simulated node's GPUs (`models`: the node's GpuModels in index order)."""
    return [D.DraGpu(r.minor, models[r.minor], r.mig_enabled,
                     tuple(D.MigInstance(p, pid, s, z, u) for p, pid, s, z, u in r.migs), r.uuid, r.name)
            for r in node.dra_inventory()]


@dataclass
class ClaimRecord:
    namespace: str
    obj: dict[str, Any]
    claim: Claim
    allocation: list[Allocated] | None = None
    node: str | None = None
    reserved_for: list[str] = field(default_factory=list)
    owner: str | None = None  # pod name for claims made from a template or for extended resources

    def api(self) -> dict[str, Any]:
        out = copy.deepcopy(self.obj)
        status: dict[str, Any] = {}
        if self.allocation is not None:
            status["allocation"] = {"devices": {"results": [a.api() for a in self.allocation]},
                                    "nodeSelector": {"nodeSelectorTerms": [{"matchFields": [
                                        {"key": "metadata.name", "operator": "In", "values": [self.node]}]}]}}
        if self.reserved_for:
            status["reservedFor"] = [{"resource": "pods", "name": n} for n in self.reserved_for]
        out["status"] = status
        return out


class SimDra:
    """The DRA side of a SimCluster (see the module doc)."""

    def __init__(self, profile: S.StackProfile, dynamic: bool = False, restart_on_reconfigure: bool = True) -> None:
        self.profile = profile
        self.dynamic = dynamic
        self.restart_on_reconfigure = restart_on_reconfigure
        self.slices: dict[str, list[dict[str, Any]]] = {}
        self.devices: dict[str, list[D.Device]] = {}
        self.profiles: set[str] = set()
        self.classes: list[dict[str, Any]] = []
        self.claims: dict[tuple[str, str], ClaimRecord] = {}
        self.templates: dict[tuple[str, str], dict[str, Any]] = {}
        self.generation: dict[str, int] = {}
        self._inventory: Inventory | None = None

    # ---- the driver ----------------------------------------------------------------------------------
    def publish(self, name: str, node: NodeGpus, models: Sequence[Any]) -> None:
        """The kubelet plugin (re)starts on `name`: read NVML, publish the pool with a new generation."""
        gen = self.generation.get(name, 0) + 1
        self.generation[name] = gen
        projection = D.project(name, dra_gpus(node, models), self.profile, dynamic=self.dynamic)
        for s in projection.slices:
            s["spec"]["pool"]["generation"] = gen
        self.slices[name] = list(projection.slices)
        self.devices[name] = list(projection.devices)
        self.profiles |= {g.name for m in models for g in getattr(m, "gi_profiles", ())}
        self.classes = list(D.device_classes(sorted(self.profiles), self.profile.kubernetes.value))
        self._inventory = None

    def inventory(self) -> Inventory:
        """Slices and classes as the scheduler sees them, with the allocations of every claim."""
        if self._inventory is None:
            inv = Inventory.build([s for ss in self.slices.values() for s in ss], self.classes)
            by_key = {d.key: d for d in inv.devices}
            for rec in self.claims.values():
                for a in rec.allocation or []:
                    d = by_key.get((a.driver, a.pool, a.device))
                    if d is not None:
                        inv._take(d, +1)
            self._inventory = inv
        return self._inventory

    def list_slices(self, driver: str | None) -> list[dict[str, Any]]:
        return [copy.deepcopy(s) for ss in self.slices.values() for s in ss
                if driver is None or s["spec"]["driver"] == driver]

    # ---- claims --------------------------------------------------------------------------------------
    def create(self, namespace: str, obj: Mapping[str, Any]) -> None:
        kind = obj.get("kind", "ResourceClaim")
        name = (obj.get("metadata") or {}).get("name")
        if not isinstance(name, str) or not name:
            raise ClusterError(f"{kind}: metadata.name is required")
        try:
            if kind == "ResourceClaimTemplate":
                spec = (obj.get("spec") or {}).get("spec")
                Claim.from_api({"spec": spec}, f"ResourceClaimTemplate {name}")
                if (namespace, name) in self.templates:
                    raise ClusterError(f'resourceclaimtemplates.resource.k8s.io "{name}" already exists')
                self.templates[(namespace, name)] = copy.deepcopy(dict(obj))
                return
            claim = Claim.from_api(obj, f"ResourceClaim {name}")
        except InputError as exc:
            raise ClusterError(f"{kind} {namespace}/{name} is invalid: {exc}") from None
        if (namespace, name) in self.claims:
            raise ClusterError(f'resourceclaims.resource.k8s.io "{name}" already exists')
        self.claims[(namespace, name)] = ClaimRecord(namespace, copy.deepcopy(dict(obj)), claim)

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        rec = self.claims.get((namespace, name))
        if rec is None:
            raise ClusterError(f'resourceclaims.resource.k8s.io "{name}" not found')
        return rec.api()

    def list_claims(self, namespace: str) -> list[dict[str, Any]]:
        return [r.api() for (ns, _), r in sorted(self.claims.items()) if ns == namespace]

    def pod_claims(self, namespace: str, pod: PodRequest) -> list[ClaimRecord]:
        """The pod's claims, creating those of its templates (the resourceclaim controller) and its
        extended-resource claim. ClusterError when a claim or template does not exist."""
        out = []
        for name in pod.claims:
            rec = self.claims.get((namespace, name))
            if rec is None:
                raise ClusterError(f'pod {pod.name}: resourceclaims.resource.k8s.io "{name}" not found')
            out.append(rec)
        for tname in pod.claim_templates:
            tmpl = self.templates.get((namespace, tname))
            if tmpl is None:
                raise ClusterError(f'pod {pod.name}: resourceclaimtemplates.resource.k8s.io "{tname}" not found')
            cname = f"{pod.name}-{tname}"
            if (namespace, cname) not in self.claims:
                obj = {"apiVersion": D.API_VERSION, "kind": "ResourceClaim",
                       "metadata": {"name": cname, "namespace": namespace,
                                    "annotations": {"resource.kubernetes.io/pod-claim-name": tname}},
                       "spec": copy.deepcopy(tmpl["spec"]["spec"])}
                self.claims[(namespace, cname)] = ClaimRecord(namespace, obj, Claim.from_api(obj), owner=pod.name)
            out.append(self.claims[(namespace, cname)])
        bridged = self.bridged(pod)
        if bridged:
            cname = f"{pod.name}-extended-resources"
            if (namespace, cname) not in self.claims:
                requests = [{"name": f"container-0-request-{i}",
                             "exactly": {"deviceClassName": cls, "allocationMode": "ExactCount", "count": n}}
                            for i, (cls, n) in enumerate(bridged)]
                obj = {"apiVersion": D.API_VERSION, "kind": "ResourceClaim",
                       "metadata": {"name": cname, "namespace": namespace,
                                    "annotations": {D.EXTENDED_RESOURCE_CLAIM: "true"}},
                       "spec": {"devices": {"requests": requests}}}
                self.claims[(namespace, cname)] = ClaimRecord(namespace, obj, Claim.from_api(obj), owner=pod.name)
            out.append(self.claims[(namespace, cname)])
        return out

    def bridged(self, pod: PodRequest) -> list[tuple[str, int]]:
        """(DeviceClass, count) for each extended resource of the pod that a DeviceClass bridges."""
        by_resource = {c["spec"]["extendedResourceName"]: c["metadata"]["name"] for c in self.classes
                       if c["spec"].get("extendedResourceName")}
        return [(by_resource[r], int(n)) for r, n in sorted(pod.resources.items()) if r in by_resource and n > 0]

    def bridged_resources(self, pod: PodRequest) -> set[str]:
        by_resource = {c["spec"].get("extendedResourceName") for c in self.classes}
        return {r for r in pod.resources if r in by_resource}

    def try_allocate(self, pod_name: str, records: list[ClaimRecord], node: str) -> bool | str:
        """Allocate the pod's unallocated claims on `node` and reserve all of them; True, False (no allocation),
        or upstream's error text (a CEL error, an unknown class)."""
        for rec in records:
            if rec.allocation is not None and rec.node != node:
                return False
        todo = [r for r in records if r.allocation is None]
        if todo:
            try:
                results = self.inventory().allocate([r.claim for r in todo], node)
            except (CelError, InputError) as exc:
                return str(exc)
            if results is None:
                return False
            for rec, res in zip(todo, results, strict=True):
                rec.allocation, rec.node = res, node
        for rec in records:
            if pod_name not in rec.reserved_for:
                rec.reserved_for.append(pod_name)
        return True

    def pod_gone(self, namespace: str, pod_name: str) -> bool:
        """A pod was deleted: unreserve its claims, release those no pod reserves, delete those it owned. True when
        devices were freed."""
        freed = False
        for key, rec in list(self.claims.items()):
            if rec.namespace != namespace:
                continue
            if pod_name in rec.reserved_for:
                rec.reserved_for.remove(pod_name)
            if not rec.reserved_for and rec.allocation is not None:
                self.inventory().release(rec.allocation)
                rec.allocation, rec.node = None, None
                freed = True
            if rec.owner == pod_name:
                del self.claims[key]
        return freed

    def namespace_gone(self, namespace: str) -> None:
        for key, rec in list(self.claims.items()):
            if key[0] == namespace:
                if rec.allocation is not None:
                    self.inventory().release(rec.allocation)
                del self.claims[key]
        for key in [k for k in self.templates if k[0] == namespace]:
            del self.templates[key]
