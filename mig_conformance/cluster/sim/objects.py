"""The sim backend's objects as an API server would return them: nodes (labels, capacity, allocatable, Ready, the
managedFields time of mig-manager's last state write), the GPU Operator's DaemonSets and their pods, mig-manager's
ConfigMap and the ClusterPolicy. What the diagnose reader lists on every backend, rendered from the simulation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mig_conformance.cluster.sim.node import SimNode
from mig_conformance.k8s import labels as L
from mig_conformance.k8s import stack

Obj = dict[str, Any]
#: the simulated clock's zero on the wall clock (2026-01-01T00:00:00Z), for timestamps
EPOCH = 1_767_225_600.0
NAMESPACE = "gpu-operator"
MIG_MANAGER_FIELD_MANAGER = "nvidia-mig-manager"
DEVICE_PLUGIN, MIG_MANAGER = "nvidia-device-plugin-daemonset", "nvidia-mig-manager"
MIG_MANAGER_VERSION = stack.default().mig_manager.value or "v0.15.0"
#: (app label, DaemonSet name, image repository, MIG_STRATEGY env, node selector label)
COMPONENTS = (
    ("nvidia-device-plugin-daemonset", "nvcr.io/nvidia/k8s-device-plugin", True, "nvidia.com/gpu.deploy.device-plugin"),
    ("gpu-feature-discovery", "nvcr.io/nvidia/k8s-device-plugin", True, "nvidia.com/gpu.deploy.gpu-feature-discovery"),
    ("nvidia-mig-manager", "nvcr.io/nvidia/cloud-native/k8s-mig-manager", False, "nvidia.com/gpu.deploy.mig-manager"),
)


def rfc3339(seconds: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(EPOCH + seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_object(node: SimNode, now: float) -> Obj:
    capacity = {k: str(v) for k, v in node.view().capacity.items()}
    managed = []
    if L.MIG_CONFIG_STATE in node.labels:
        managed.append({"manager": MIG_MANAGER_FIELD_MANAGER, "operation": "Update", "apiVersion": "v1",
                        "time": rfc3339(node.state_since), "fieldsType": "FieldsV1",
                        "fieldsV1": {"f:metadata": {"f:labels": {f"f:{L.MIG_CONFIG_STATE}": {}}}}})
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": node.name, "labels": dict(node.labels), "managedFields": managed},
            "spec": {"taints": [{"key": t.key, "value": t.value, "effect": t.effect} for t in node.taints]},
            "status": {"capacity": capacity, "allocatable": dict(capacity),
                       "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                       "lastTransitionTime": rfc3339(0)}],
                       **({"nodeInfo": {"osImage": node.os_image}} if node.os_image else {})}}


def _pod(app: str, node: SimNode, error: str | None) -> Obj:
    waiting = {"waiting": {"reason": "CrashLoopBackOff", "message": error}} if error else {"running": {}}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{app}-{node.name}", "namespace": NAMESPACE, "labels": {"app": app}},
            "spec": {"nodeName": node.name},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": app, "ready": error is None, "restartCount": 5 if error else 0, "state": waiting}]}}


def _daemon_set(app: str, image: str, strategy_env: bool, selector: str, strategy: str, version: str) -> Obj:
    env = [{"name": "MIG_STRATEGY", "value": strategy}] if strategy_env else []
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": app, "namespace": NAMESPACE, "labels": {"app": app}},
            "spec": {"selector": {"matchLabels": {"app": app}}, "template": {
                "metadata": {"labels": {"app": app}},
                "spec": {"nodeSelector": {selector: "true"},
                         "containers": [{"name": app, "image": f"{image}:{version}", "env": env}]}}}}


def render(nodes: Mapping[str, SimNode], *, strategy: str, policy_name: str | None,
           config_maps: Mapping[str, tuple[str, Mapping[str, str]]], driver: str, plugin_version: str,
           with_reboot: bool, now: float, kinds: frozenset[str] | None = None,
           default_config: str | None = "all-disabled", mig_manager_version: str = MIG_MANAGER_VERSION
           ) -> dict[str, list[Obj]]:
    """The kinds the diagnose reader lists (cluster/objects.py; all, or `kinds`), from the simulated cluster's
    state: `policy_name` is the ClusterPolicy's spec.migManager.config.name (None: empty), `config_maps` the operator
    namespace's ConfigMaps (name -> (config.yaml, labels)), generated `<node>-mig-config` ones included."""
    out: dict[str, list[Obj]] = {"ResourceSlice": [], "Event": []}
    if kinds is None or "Node" in kinds:
        out["Node"] = [node_object(n, now) for n in nodes.values()]
    if kinds is None or "Pod" in kinds:
        out["Pod"] = _pods(nodes)
    if kinds is not None and not kinds & {"DaemonSet", "ClusterPolicy", "ConfigMap"}:
        return out
    daemon_sets = [_daemon_set(app, image, env, sel, strategy, plugin_version if env else mig_manager_version)
                   for app, image, env, sel in COMPONENTS]
    config: Obj = {"default": default_config or ""}
    if policy_name:
        config["name"] = policy_name
    policy = {"apiVersion": "nvidia.com/v1", "kind": "ClusterPolicy", "metadata": {"name": "cluster-policy"},
              "spec": {"mig": {"strategy": strategy},
                       "migManager": {"enabled": True, "config": config,
                                      "env": [{"name": "WITH_REBOOT", "value": str(with_reboot).lower()}]},
                       "driver": {"version": driver}, "devicePlugin": {"version": plugin_version}}}
    maps = [{"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": name, "namespace": NAMESPACE, **({"labels": dict(labels)} if labels else {})},
             "data": {"config.yaml": text}} for name, (text, labels) in sorted(config_maps.items())]
    return {**out, "DaemonSet": daemon_sets, "ConfigMap": maps, "ClusterPolicy": [policy]}


def _pods(nodes: Mapping[str, SimNode]) -> list[Obj]:
    pods = []
    for node in nodes.values():
        for app, _, _, selector in COMPONENTS:  # the operator labels every GPU node for the device plugin and GFD
            if app != MIG_MANAGER or node.labels.get(selector) == "true":
                pods.append(_pod(app, node, node.plugin_error if app == DEVICE_PLUGIN else None))
    return pods
