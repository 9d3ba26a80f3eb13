"""kwok configuration of a local cluster: the lifecycle stages of fake nodes and pods.

The standalone kwok binary ships no default stages; these are the kit's own: a node becomes Ready (conditions,
node info, phase) and gets a periodic heartbeat; a pod bound to a kwok node becomes Running with IPs; a pod being
deleted is removed. Status patches are strategic merges of the fields named here only, so capacity/allocatable
that the simulated device plugin publishes are never touched by kwok.
"""

from __future__ import annotations

import yaml

#: The annotation (and value) that marks a node as kwok-managed (kwok --manage-nodes-with-annotation-selector).
NODE_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
HEARTBEAT_MS = 30_000

_CONDITIONS = (
    ("Ready", "True", "KubeletReady", "kubelet is posting ready status (kwok)"),
    ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
)


def _node_ready(kubelet_version: str) -> str:
    # a node created with its own osImage (a simulated Bottlerocket node) keeps it
    keep_os = ('{{ $os := "simulated (kwok)" }}{{ with .status.nodeInfo }}{{ with .osImage }}{{ $os = . }}{{ end }}'
               "{{ end }}")
    lines = ["{{ $now := Now }}" + keep_os, "conditions:"]
    for ctype, status, reason, message in _CONDITIONS:
        lines += [f"- type: {ctype}", f"  status: \"{status}\"", f"  reason: {reason}", f"  message: \"{message}\"",
                  "  lastHeartbeatTime: {{ $now | Quote }}", "  lastTransitionTime: {{ $now | Quote }}"]
    lines += ["nodeInfo:", "  architecture: amd64", "  operatingSystem: linux",
              f"  kubeletVersion: {kubelet_version}", f"  kubeProxyVersion: {kubelet_version}",
              "  containerRuntimeVersion: containerd://simulated-by-kwok", "  kernelVersion: simulated",
              "  osImage: {{ $os | Quote }}", "  machineID: \"\"", "  systemUUID: \"\"", "  bootID: \"\"",
              "phase: Running"]
    return "\n".join(lines) + "\n"


_HEARTBEAT = """{{ $now := Now }}
conditions:
- type: Ready
  status: "True"
  lastHeartbeatTime: {{ $now | Quote }}
"""

_POD_RUNNING = """{{ $now := Now }}
phase: Running
startTime: {{ $now | Quote }}
conditions:
- {type: PodReadyToStartContainers, status: "True", lastTransitionTime: {{ $now | Quote }}}
- {type: Initialized, status: "True", lastTransitionTime: {{ $now | Quote }}}
- {type: ContainersReady, status: "True", lastTransitionTime: {{ $now | Quote }}}
- {type: Ready, status: "True", lastTransitionTime: {{ $now | Quote }}}
containerStatuses:
{{ range .spec.containers }}
- name: {{ .name | Quote }}
  image: {{ .image | Quote }}
  imageID: ""
  ready: true
  started: true
  restartCount: 0
  state: {running: {startedAt: {{ $now | Quote }}}}
{{ end }}
{{ with NodeIPWith .spec.nodeName }}
hostIP: {{ . | Quote }}
hostIPs: [{ip: {{ . | Quote }}}]
{{ end }}
{{ $meta := .metadata }}
{{ with PodIPWith .spec.nodeName ( or .spec.hostNetwork false ) ( or $meta.uid "" ) ( or $meta.name "" ) \
( or $meta.namespace "" ) }}
podIP: {{ . | Quote }}
podIPs: [{ip: {{ . | Quote }}}]
{{ end }}
"""


def _stage(name: str, kind: str, selector: list[dict[str, object]], next_: dict[str, object],
           delay_ms: int | None = None) -> dict[str, object]:
    spec: dict[str, object] = {"resourceRef": {"apiGroup": "v1", "kind": kind},
                               "selector": {"matchExpressions": selector}, "next": next_}
    if delay_ms is not None:
        spec["delay"] = {"durationMilliseconds": delay_ms, "jitterDurationMilliseconds": delay_ms + delay_ms // 10}
    return {"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Stage", "metadata": {"name": name}, "spec": spec}


def _status_patch(template: str) -> dict[str, object]:
    return {"patches": [{"subresource": "status", "root": "status", "type": "strategic", "template": template}]}


_READY = '.status.conditions.[] | select( .type == "Ready" ) | .status'


def stages(kubelet_version: str) -> list[dict[str, object]]:
    """The Stage objects kwok runs."""
    return [
        _stage("mig-conformance-node-ready", "Node", [{"key": _READY, "operator": "NotIn", "values": ["True"]}],
               _status_patch(_node_ready(kubelet_version))),
        _stage("mig-conformance-node-heartbeat", "Node",
               [{"key": _READY, "operator": "In", "values": ["True"]}], _status_patch(_HEARTBEAT), HEARTBEAT_MS),
        _stage("mig-conformance-pod-running", "Pod",
               [{"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
                {"key": ".status.phase", "operator": "In", "values": ["Pending"]}],
               _status_patch(_POD_RUNNING)),
        _stage("mig-conformance-pod-delete", "Pod",
               [{"key": ".metadata.deletionTimestamp", "operator": "Exists"}],
               {"finalizers": {"empty": True}, "delete": True}),
    ]


def config_text(kubelet_version: str) -> str:
    """The multi-document YAML given to `kwok --config`."""
    return yaml.safe_dump_all(stages(kubelet_version), sort_keys=False)


def rbac(user: str, group: str) -> list[dict[str, object]]:
    """What kwok needs: drive node and pod status, delete pods, hold node leases, write events."""
    rules = [
        {"apiGroups": [""], "resources": ["nodes", "pods"], "verbs": ["get", "list", "watch", "patch", "update"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["delete"]},
        {"apiGroups": [""], "resources": ["nodes/status", "pods/status"], "verbs": ["get", "patch", "update"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
         "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
        {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch", "update"]},
    ]
    name = "mig-conformance:kwok"
    return [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name},
         "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user},
                      {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}]},
    ]
