"""Plain data the backends exchange with suites and reports."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Taint:
    key: str
    value: str = ""
    effect: str = "NoSchedule"


@dataclass(frozen=True)
class Toleration:
    key: str
    operator: str = "Exists"  # Exists | Equal
    value: str = ""
    effect: str = ""  # empty = all effects

    def tolerates(self, taint: Taint) -> bool:
        if self.key and self.key != taint.key:
            return False
        if self.effect and self.effect != taint.effect:
            return False
        return self.operator == "Exists" or self.value == taint.value


@dataclass(frozen=True)
class GpuNode:
    """A node as the API server shows it (labels, taints, capacity/allocatable of every resource)."""

    name: str
    labels: Mapping[str, str]
    capacity: Mapping[str, int]
    allocatable: Mapping[str, int]
    taints: tuple[Taint, ...] = ()
    #: after a reconfiguration (`mig_reconfigure`) that changed the label: the `nvidia.com/mig.config.state` values
    #: mig-manager wrote, in order, as watched while the kit waited (the kit's own clearing of the old verdict left
    #: out); None when the node was labelled so already (mig-manager had nothing to pick up)
    mig_states: tuple[str, ...] | None = None
    #: status.nodeInfo.osImage (e.g. "Bottlerocket OS 1.34.0 (aws-k8s-1.33-nvidia)"); None where unknown
    os_image: str | None = None

    @property
    def instance_type(self) -> str | None:
        return self.labels.get("node.kubernetes.io/instance-type")

    def extended(self, prefix: str = "nvidia.com/") -> dict[str, int]:
        """Allocatable extended resources under `prefix` (e.g. every nvidia.com/* resource)."""
        return {k: v for k, v in self.allocatable.items() if k.startswith(prefix)}


@dataclass(frozen=True)
class PodRequest:
    """A single-container pod that requests extended resources (requests = limits)."""

    name: str
    resources: Mapping[str, int]
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Toleration, ...] = (Toleration("nvidia.com/gpu"),)
    labels: Mapping[str, str] = field(default_factory=dict)
    limits: Mapping[str, int] | None = None  # None = same as resources; differs only to test validation
    #: DRA: ResourceClaims (by name, in the pod's namespace) and ResourceClaimTemplates the pod references in
    #: spec.resourceClaims (its container uses all of them)
    claims: tuple[str, ...] = ()
    claim_templates: tuple[str, ...] = ()


@dataclass(frozen=True)
class PodStatus:
    """Where a pod stands: bound to a node, or Pending with the scheduler's reason and message."""

    name: str
    node: str | None
    phase: str
    reason: str | None = None
    message: str | None = None

    @property
    def bound(self) -> bool:
        return self.node is not None
