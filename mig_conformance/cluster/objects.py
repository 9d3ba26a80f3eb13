"""Raw objects by kind for read-only readers (diagnose): where each kind lives in the API and what reading it needs.

Only GET requests: a list per kind, paged. Namespaced kinds are read in the operator namespace only (the GPU
Operator's pods, DaemonSets, ConfigMaps and events), so a role limited to that namespace suffices.
"""

from __future__ import annotations

from typing import Any

#: kind -> (path template with {ns}, the permission an access-denied message names)
PATHS = {
    "Node": ("/api/v1/nodes", "list nodes"),
    "Pod": ("/api/v1/namespaces/{ns}/pods", "list pods in the operator namespace"),
    "DaemonSet": ("/apis/apps/v1/namespaces/{ns}/daemonsets", "list daemonsets.apps in the operator namespace"),
    "ConfigMap": ("/api/v1/namespaces/{ns}/configmaps", "list configmaps in the operator namespace"),
    "ClusterPolicy": ("/apis/nvidia.com/v1/clusterpolicies", "list clusterpolicies.nvidia.com"),
    "ResourceSlice": ("/apis/resource.k8s.io/v1/resourceslices", "list resourceslices.resource.k8s.io"),
    "Event": ("/api/v1/namespaces/{ns}/events", "list events in the operator namespace"),
}
PAGE = 500
#: the most objects of one kind a reader takes (a fleet is capped at 10,000 nodes; pods/events are per namespace)
MAX_OBJECTS = 50_000


def path(kind: str, namespace: str) -> tuple[str, str]:
    template, need = PATHS[kind]
    return template.format(ns=namespace), need


def items_of(page: Any) -> tuple[list[dict[str, Any]], str | None]:
    """(items, continue token) of one list response."""
    if not isinstance(page, dict):
        return [], None
    items = [i for i in page.get("items") or () if isinstance(i, dict)]
    token = (page.get("metadata") or {}).get("continue") or None
    return items, token
