"""What the NVIDIA GPU Operator installs that the kit and the simulated agents read: the namespace, the
`default-mig-parted-config` ConfigMap, the ClusterPolicy CRD and object, and the agents' identity (ServiceAccount +
least-privilege RBAC). The agents themselves run as a separate process (backend.py starts them)."""

from __future__ import annotations

import time
from typing import Any

import yaml

from mig_conformance.cluster.local.rest import RestError, path_of
from mig_conformance.k8s import device_plugin
from mig_conformance.k8s import stack as stack_profile
from mig_conformance.k8s.stack import StackProfile
from mig_conformance.mig.default_config import CONFIG_MAP, DEFAULT_LABEL, default_config_file
from mig_conformance.simulators import nvml as nv

NAMESPACE = "gpu-operator"
POLICY = "cluster-policy"
AGENTS_SA = "nvidia-gpu-operator-agents"
RBAC_GROUP = "rbac.authorization.k8s.io"
Obj = dict[str, Any]


def config_map(namespace: str = NAMESPACE, config_text: str | None = None) -> Obj:
    cm: Obj = yaml.safe_load(default_config_file().read_text(encoding="utf-8"))
    cm["metadata"] = {"name": CONFIG_MAP, "namespace": namespace,
                      "labels": {"app.kubernetes.io/managed-by": "mig-conformance"}}
    if config_text is not None:
        cm["data"] = {"config.yaml": config_text}
    return cm


def _str(**extra: Any) -> Obj:
    return {"type": "string", **extra}


def _component(**props: Obj) -> Obj:
    """A ClusterPolicy component section: typed where the kit reads, open for everything else."""
    return {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
            "properties": {"enabled": {"type": "boolean"}, "version": _str(), "repository": _str(),
                           "image": _str(), **props}}


def crd() -> Obj:
    """clusterpolicies.nvidia.com, cluster-scoped, v1, with a structural schema for the fields the kit and the
    agents use and x-kubernetes-preserve-unknown-fields for the rest of the operator's large schema."""
    mig = {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
           "properties": {"strategy": _str(enum=["none", "single", "mixed"])}}
    config = {"type": "object", "properties": {"name": _str(), "default": _str()}}
    env = {"type": "array", "items": {"type": "object", "required": ["name"],
                                      "properties": {"name": _str(), "value": _str()}}}
    spec = {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {
        "mig": mig, "migManager": _component(config=config, env=env), "devicePlugin": _component(),
        "gfd": _component(), "driver": _component(), "operator": _component(defaultRuntime=_str())}}
    schema = {"type": "object", "properties": {
        "apiVersion": _str(), "kind": _str(), "metadata": {"type": "object"}, "spec": spec,
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "clusterpolicies.nvidia.com"},
        "spec": {
            "group": "nvidia.com", "scope": "Cluster",
            "names": {"kind": "ClusterPolicy", "listKind": "ClusterPolicyList", "plural": "clusterpolicies",
                      "singular": "clusterpolicy"},
            "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                          "schema": {"openAPIV3Schema": schema},
                          "additionalPrinterColumns": [
                              {"name": "Status", "type": "string", "jsonPath": ".status.state"},
                              {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]}],
        },
    }


def cluster_policy(strategy: str = "mixed", default_config: str | None = DEFAULT_LABEL,
                   with_reboot: bool = False, stack: StackProfile | None = None,
                   config_name: str | None = CONFIG_MAP) -> Obj:
    """The ClusterPolicy `cluster-policy`: MIG strategy, mig-manager's ConfigMap (`config_name`; None: unset, as
    GPU Operator v26.3.0+ installs it, so mig-manager generates its config) and the simulated versions (the stack
    profile's, as the GPU Operator's Helm chart writes them: chart label and spec.<component>.version)."""
    profile = stack or stack_profile.default()
    plugin = profile.device_plugin.value or device_plugin.DEFAULT_VERSION
    config: Obj = {"name": config_name} if config_name else {}
    if default_config:
        config["default"] = default_config
    return {
        "apiVersion": "nvidia.com/v1", "kind": "ClusterPolicy",
        "metadata": {"name": POLICY, "labels": {"helm.sh/chart": f"gpu-operator-{profile.gpu_operator.value}"}
                     if profile.gpu_operator.value else {}},
        "spec": {
            "operator": {"defaultRuntime": "containerd"},
            "mig": {"strategy": strategy},
            "migManager": {"enabled": True, "config": config, "version": profile.mig_manager.value or "",
                           "env": [{"name": "WITH_REBOOT", "value": "true" if with_reboot else "false"}]},
            "driver": {"enabled": True, "version": profile.driver.value or nv.DRIVER_580},
            "devicePlugin": {"enabled": True, "version": plugin},
            "gfd": {"enabled": True, "version": plugin},
        },
    }


def namespace(name: str = NAMESPACE) -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def agents_rbac(ns: str = NAMESPACE) -> list[Obj]:
    """The agents' identity: SA gpu-operator/nvidia-gpu-operator-agents with exactly the verbs they use."""
    name = AGENTS_SA
    subject = [{"kind": "ServiceAccount", "name": name, "namespace": ns}]
    cluster_rules = [
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch", "patch"]},
        {"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["patch"]},
        {"apiGroups": ["nvidia.com"], "resources": ["clusterpolicies"], "verbs": ["get", "list", "watch"]},
        # the DRA driver's kubelet plugin publishes its node's pool (only used with --gpu-allocation dra)
        {"apiGroups": ["resource.k8s.io"], "resources": ["resourceslices"],
         "verbs": ["get", "list", "create", "update", "delete"]},
    ]
    # configmaps create/update: mig-manager >= v0.14.0 stores the config it generated in <node>-mig-config
    ns_rules = [{"apiGroups": [""], "resources": ["configmaps"],
                 "verbs": ["get", "list", "watch", "create", "update"]}]
    ref = {"apiGroup": RBAC_GROUP}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": ns}},
        {"apiVersion": f"{RBAC_GROUP}/v1", "kind": "ClusterRole", "metadata": {"name": name}, "rules": cluster_rules},
        {"apiVersion": f"{RBAC_GROUP}/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
         "roleRef": {**ref, "kind": "ClusterRole", "name": name}, "subjects": subject},
        {"apiVersion": f"{RBAC_GROUP}/v1", "kind": "Role", "metadata": {"name": name, "namespace": ns},
         "rules": ns_rules},
        {"apiVersion": f"{RBAC_GROUP}/v1", "kind": "RoleBinding", "metadata": {"name": name, "namespace": ns},
         "roleRef": {**ref, "kind": "Role", "name": name}, "subjects": subject},
    ]


def objects(config_text: str | None = None, ns: str = NAMESPACE) -> list[Obj]:
    """Everything except the ClusterPolicy itself (its CRD must be established first), in creation order."""
    return [namespace(ns), config_map(ns, config_text), crd(), *agents_rbac(ns)]


def install(api: Any, config_text: str | None = None, ns: str = NAMESPACE) -> None:
    """Create everything but the ClusterPolicy with an admin client (rest.Rest)."""
    api.create_all(objects(config_text, ns))


def create_policy(api: Any, strategy: str = "mixed", default_config: str | None = DEFAULT_LABEL,
                  with_reboot: bool = False, timeout: float = 30.0, stack: StackProfile | None = None,
                  config_name: str | None = CONFIG_MAP) -> None:
    """Create the ClusterPolicy once its CRD serves. Server-side apply, not POST: the API server holds every
    create of a CRD established less than 2 s ago for 2 s (a guard for HA API servers), an apply is not held."""
    policy = cluster_policy(strategy, default_config, with_reboot, stack, config_name)
    deadline = time.monotonic() + timeout
    while True:
        try:
            api.apply(policy)
            api.request("PATCH", path_of("ClusterPolicy", POLICY, sub="status"),  # what the operator reports
                        {"status": {"state": "ready", "namespace": NAMESPACE}},
                        content_type="application/merge-patch+json")
            return
        except RestError as exc:
            if exc.status != 404 or time.monotonic() >= deadline:  # 404: the CRD is not established yet
                raise
            time.sleep(0.05)
