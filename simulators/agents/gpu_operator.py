"""The GPU Operator's own node labels, as far as mig-manager depends on them.

On a MIG-capable node the operator sets `nvidia.com/gpu.deploy.mig-manager=true` (so mig-manager runs there) and,
when the node has no `nvidia.com/mig.config` label, the ClusterPolicy's `spec.migManager.config.default`. Like the
`sim` backend, the agents set that default once, when they first see a node, not again after someone removes it.
"""

from __future__ import annotations

from mig_conformance.k8s import labels as L
from mig_conformance.simulators.agents.node import NodeAgent, labels

DEPLOY_MIG_MANAGER = "nvidia.com/gpu.deploy.mig-manager"


def operator_labels(node_labels: dict[str, str], mig_capable: bool, default_config: str | None,
                    first_sight: bool) -> dict[str, str]:
    """Labels to add (empty when none)."""
    if not mig_capable:
        return {}
    out = {}
    if node_labels.get(DEPLOY_MIG_MANAGER) != "true":
        out[DEPLOY_MIG_MANAGER] = "true"
    if first_sight and default_config and L.MIG_CONFIG not in node_labels:
        out[L.MIG_CONFIG] = default_config
    return out


def pending_labels(node: NodeAgent, default_config: str | None) -> dict[str, str]:
    """The operator labels this node lacks; marks the default as considered."""
    assert node.obj is not None and node.gpus is not None
    out = operator_labels(labels(node.obj), node.gpus.mig_capable, default_config, not node.defaulted)
    node.defaulted = True
    return out
