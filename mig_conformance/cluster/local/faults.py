"""Diagnose faults on a local cluster (clusters-file key `diagnose_faults`): once the agents have settled every node,
they are stopped (nothing repairs the faults afterwards) and each fault of cluster/diagnose_faults.py is written
through the API server the way the GPU Operator's components leave it: node labels as a merge patch under
mig-manager's field manager (the API server records when), node status as kubelet and the device plugin publish it,
ConfigMaps, the ClusterPolicy, a kubelet event, a DRA ResourceSlice. A node that turns NotReady loses kwok's
annotation, as a kubelet that stops heartbeating."""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from typing import Any

from mig_conformance.cluster import diagnose_faults as F
from mig_conformance.cluster import objects
from mig_conformance.cluster.local.kwok_stages import NODE_ANNOTATION
from mig_conformance.cluster.local.operator import NAMESPACE
from mig_conformance.cluster.local.rest import Rest, path_of

Obj = dict[str, Any]
KINDS = ("Node", "ConfigMap", "ClusterPolicy", "Event", "ResourceSlice", "Pod")
MERGE = "application/merge-patch+json"


def _ready_false(node: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "False"
               for c in (node.get("status") or {}).get("conditions") or ())


def _write_node(admin: Rest, before: Obj, after: Obj) -> None:
    name = after["metadata"]["name"]
    old, new = before["metadata"].get("labels") or {}, after["metadata"].get("labels") or {}
    labels: dict[str, Any] = {k: None for k in old if k not in new}
    labels.update({k: v for k, v in new.items() if old.get(k) != v})
    meta: Obj = {"labels": labels}
    status = {k: after["status"][k] for k in ("capacity", "allocatable")}
    if _ready_false(after):
        meta["annotations"] = {NODE_ANNOTATION[0]: None}
        status["conditions"] = after["status"]["conditions"]
    admin.request("PATCH", path_of("Node", name), {"metadata": meta}, query={"fieldManager": "nvidia-mig-manager"},
                  content_type=MERGE)
    admin.request("PATCH", path_of("Node", name, sub="status"), {"status": status}, content_type=MERGE)


def inject(admin: Rest, plan: Mapping[str, str]) -> None:
    """Write every fault of `plan` ({node: fault}) as cluster admin (stop the agents first)."""
    before = {kind: admin.request("GET", objects.path(kind, NAMESPACE)[0]).get("items", []) for kind in KINDS}
    after = F.inject(copy.deepcopy(before), dict(plan), time.time())
    by_name = {n["metadata"]["name"]: n for n in before["Node"]}
    for node in after["Node"]:
        if node["metadata"]["name"] in plan:
            _write_node(admin, by_name[node["metadata"]["name"]], node)
    old_maps = {c["metadata"]["name"]: c for c in before["ConfigMap"]}
    for cm in after["ConfigMap"]:
        name = cm["metadata"]["name"]
        if name not in old_maps:
            admin.create({"apiVersion": "v1", "kind": "ConfigMap", "data": cm["data"],
                          "metadata": {"name": name, "namespace": NAMESPACE}})
        elif old_maps[name].get("data") != cm["data"]:
            admin.request("PATCH", path_of("ConfigMap", name, NAMESPACE), {"data": cm["data"]}, content_type=MERGE)
    for policy in after["ClusterPolicy"]:
        admin.request("PATCH", path_of("ClusterPolicy", policy["metadata"]["name"]), {"spec": policy["spec"]},
                      content_type=MERGE)
    for kind in ("Event", "ResourceSlice"):
        url, _ = objects.path(kind, NAMESPACE)
        for obj in after[kind][len(before[kind]):]:
            admin.request("POST", url, obj)


def plan_for(admin: Rest, wanted: Mapping[str, str] | str) -> dict[str, str]:
    """`all` (diagnose_faults.PLAN over the cluster's nodes) or {node: fault}, checked."""
    from mig_conformance.cluster.base import ClusterError
    from mig_conformance.common.errors import InputError

    nodes = admin.list("Node")
    if isinstance(wanted, str):
        if wanted != "all":
            raise ClusterError(f"diagnose_faults: 'all' or a mapping of node -> fault, got '{wanted}'")
        try:
            return F.assign(nodes)
        except InputError as exc:
            raise ClusterError(f"diagnose_faults: all: {exc} (use the fleet {F.FLEET})") from None
    names = {n["metadata"]["name"] for n in nodes}
    out = {str(k): str(v) for k, v in wanted.items()}
    for node, fault in out.items():
        if node not in names:
            raise ClusterError(f"diagnose_faults: no node {node} (nodes: {', '.join(sorted(names))})")
        if fault not in F.FAULTS:
            raise ClusterError(f"diagnose_faults: node {node}: unknown fault '{fault}' (one of: "
                               f"{', '.join(F.FAULTS)})")
    return out
