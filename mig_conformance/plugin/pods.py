"""Creating test pods that request MIG resources, and waiting for the scheduler's verdict."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Protocol

from mig_conformance.cluster.base import Cluster
from mig_conformance.k8s.model import PodRequest, PodStatus, Toleration


class _Session(Protocol):
    @property
    def cluster(self) -> Cluster: ...

    namespace: str
    run_id: str
    timeout: float

    def ensure_namespace(self) -> str: ...


class PodFactory:
    """Creates pods in the run namespace and deletes exactly those it created."""

    _ids = itertools.count()

    def __init__(self, session: _Session) -> None:
        self.session = session
        self.created: list[str] = []

    def create(self, resources: Mapping[str, int], node: str | None = None, name: str | None = None,
               tolerate_gpu_taint: bool = True, limits: Mapping[str, int] | None = None,
               claims: tuple[str, ...] = (), claim_templates: tuple[str, ...] = ()) -> PodRequest:
        """Create a pod requesting `resources` (requests = limits unless `limits` is given), pinned to `node`."""
        ns = self.session.ensure_namespace()
        pod_name = name or f"mig-{next(self._ids)}"
        selector = {"kubernetes.io/hostname": node} if node else {}
        tolerations = (Toleration("nvidia.com/gpu"),) if tolerate_gpu_taint else ()
        labels = {"app.kubernetes.io/managed-by": "mig-conformance", "mig-conformance/run": self.session.run_id}
        pod = PodRequest(pod_name, dict(resources), selector, tolerations, labels,
                         dict(limits) if limits is not None else None, claims, claim_templates)
        self.session.cluster.create_pod(ns, pod)
        self.created.append(pod_name)
        return pod

    def wait_bound(self, pod: PodRequest) -> PodStatus:
        return self.session.cluster.wait_for_pod(self.session.namespace, pod.name, lambda p: p.bound,
                                                 self.session.timeout, f"pod {pod.name} to be bound")

    def wait_unschedulable(self, pod: PodRequest) -> PodStatus:
        """Wait until the scheduler has reported the pod Unschedulable (it stays Pending)."""
        return self.session.cluster.wait_for_pod(
            self.session.namespace, pod.name, lambda p: p.reason == "Unschedulable" or p.bound,
            self.session.timeout, f"the scheduler's verdict on pod {pod.name}")

    def cleanup(self) -> None:
        ns = self.session.namespace
        for name in self.created:
            self.session.cluster.delete_pod(ns, name)
        self.created.clear()
