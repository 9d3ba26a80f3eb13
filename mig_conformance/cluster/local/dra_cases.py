"""Claims on a local cluster, one case at a time per node, for the dynamic-MIG differential (the real kube-scheduler
decides) and the DRA benchmarks: create a ResourceClaim and a pod that uses it pinned to a node, wait for the
scheduler's verdict (bound, or PodScheduled=False with reason Unschedulable), then delete both and wait until the
claim is gone (kube-controller-manager deallocates it when the pod goes), so the next case starts on a free GPU.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mig_conformance.cluster.local.rest import Rest, RestError

POLL = 0.02


@dataclass(frozen=True)
class Verdict:
    bound: bool
    message: str | None
    seconds: float


def claim_pod(name: str, node: str, claim: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeSelector": {"kubernetes.io/hostname": node}, "restartPolicy": "Never",
                     "terminationGracePeriodSeconds": 0,
                     "tolerations": [{"operator": "Exists"}],
                     "resourceClaims": [{"name": "gpu", "resourceClaimName": claim}],
                     "containers": [{"name": "main", "image": "busybox:1.36",
                                     "resources": {"claims": [{"name": "gpu"}]}}]}}


def verdict(admin: Rest, namespace: str, pod: str, timeout: float) -> Verdict:
    t0 = time.monotonic()
    while True:
        obj = admin.get("Pod", pod, namespace)
        if obj["spec"].get("nodeName"):
            return Verdict(True, None, time.monotonic() - t0)
        for cond in (obj.get("status") or {}).get("conditions") or []:
            if cond.get("type") == "PodScheduled" and cond.get("reason") == "Unschedulable":
                return Verdict(False, cond.get("message"), time.monotonic() - t0)
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"pod {namespace}/{pod}: no scheduler verdict after {timeout:.0f}s")
        time.sleep(POLL)


def run_case(admin: Rest, namespace: str, node: str, name: str, claim: Mapping[str, Any],
             timeout: float = 60.0) -> Verdict:
    """One claim + pod on `node`; cleaned up before returning."""
    body = {**claim, "metadata": {**claim.get("metadata", {}), "name": name, "namespace": namespace}}
    admin.create(body)
    admin.create({**claim_pod(name, node, name), "metadata": {"name": name, "namespace": namespace}})
    try:
        return verdict(admin, namespace, name, timeout)
    finally:
        admin.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}", {"gracePeriodSeconds": 0})
        admin.delete("ResourceClaim", name, namespace)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                admin.get("ResourceClaim", name, namespace)
            except RestError as exc:
                if exc.status == 404:
                    break
                raise
            time.sleep(POLL)
        while time.monotonic() < deadline:  # the pod too: a Pending pod must not take the next case's devices
            try:
                admin.get("Pod", name, namespace)
            except RestError as exc:
                if exc.status == 404:
                    break
                raise
            time.sleep(POLL)


def wait_pools(admin: Rest, nodes: list[str], driver: str, timeout: float, dynamic: bool = False) -> None:
    """Until every node publishes its pool (partitionable devices when `dynamic`)."""
    deadline = time.monotonic() + timeout
    while True:
        found: set[str] = set()
        for s in admin.list("ResourceSlice", fieldSelector=f"spec.driver={driver}"):
            devices = s["spec"].get("devices") or []
            if devices and (not dynamic or any(d.get("consumesCounters") for d in devices)):
                found.add(s["spec"].get("nodeName"))
        if set(nodes) <= found:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {driver} pool after {timeout:.0f}s on {sorted(set(nodes) - found)}")
        time.sleep(0.1)
