"""gpu-feature-discovery: the `nvidia.com/*` labels GFD publishes (`k8s.gfd.labels`) for the node's GPUs.

GFD's labels reach the node through NFD, which records the labels it manages in the annotation
`nfd.node.kubernetes.io/feature-labels` and removes only those when they are no longer produced. The agent does the
same, so labels that anyone else set (`nvidia.com/mig.config`, `nvidia.com/gpu.present`, the GPU Operator's
`nvidia.com/gpu.deploy.*`, user labels) are never touched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mig_conformance.k8s import gfd
from mig_conformance.mig.state import GpuMigState
from mig_conformance.simulators.agents.api import Obj
from mig_conformance.simulators.agents.node import annotations_of, labels

FEATURE_LABELS = "nfd.node.kubernetes.io/feature-labels"


def owned(obj: Obj) -> set[str]:
    """The labels GFD set on this node before (from the NFD annotation)."""
    return {k for k in annotations_of(obj).get(FEATURE_LABELS, "").split(",") if k}


def gfd_labels(strategy: str, gpus: Sequence[GpuMigState], driver: str | None,
               names: Sequence[str] | None = None) -> dict[str, str]:
    """`names`: the GPUs' NVML device names (`NodeGpus.gpu_names`), which GFD's product labels use."""
    return gfd.labels(strategy, gpus, driver, names) if gpus else {}


def metadata_patch(obj: Obj, new: Mapping[str, str]) -> dict[str, Any]:
    """Metadata patch that sets `new`, removes the GFD labels not in it, and records them; {} when nothing changes."""
    current = labels(obj)
    changes: dict[str, str | None] = {k: v for k, v in new.items() if current.get(k) != v}
    changes.update({k: None for k in owned(obj) - new.keys() if k in current})
    record = ",".join(sorted(new))
    patch: dict[str, Any] = {}
    if changes:
        patch["labels"] = changes
    if annotations_of(obj).get(FEATURE_LABELS, "") != record:
        patch["annotations"] = {FEATURE_LABELS: record}
    return patch
