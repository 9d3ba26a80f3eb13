"""Field faults for the diagnose suite, written into a cluster's objects the way the GPU Operator's components leave
them when the fault happens (a mig-manager that wedges, a GFD that never labels, a device plugin that crashes, a DRA
driver next to the device plugin, ...). One function per finding of issue 14, used by both simulated backends:
sim applies them to the objects it renders (clusters-file key `diagnose_faults: {NODE: FAULT}`), the local tests
write the changed objects through the API server. A fault touches its node, and cluster-wide objects only where the
fault lives there (a device-plugin ConfigMap, a DaemonSet's env)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from mig_conformance.common.errors import InputError
from mig_conformance.diagnose.effective import choose_config_map
from mig_conformance.k8s import labels as L
from mig_conformance.k8s import stack
from mig_conformance.k8s.model import GpuNode
from mig_conformance.k8s.node_hardware import node_gpu_models
from mig_conformance.k8s.projection import project_node
from mig_conformance.mig.spec import parse_installed_config

Obj = dict[str, Any]
Objects = dict[str, list[Obj]]
Fault = Callable[[Objects, str, float], None]

PAUSED = "paused-for-mig-change"
DEPLOY = ("device-plugin", "gpu-feature-discovery", "dcgm-exporter", "dcgm", "container-toolkit", "operator-validator")
DRIVER_LABELS = ("nvidia.com/cuda.driver.major", "nvidia.com/cuda.driver.minor", "nvidia.com/cuda.driver.rev",
                 "nvidia.com/cuda.driver-version.major", "nvidia.com/cuda.driver-version.minor",
                 "nvidia.com/cuda.driver-version.revision", "nvidia.com/cuda.driver-version.full")
#: GPU Operator labels that are not GFD's (kept when GFD's labels are rewritten)
NOT_GFD = (L.GPU_PRESENT, "nvidia.com/gpu.deploy.", L.MIG_CONFIG, "nvidia.com/device-plugin.config")
PENDING_DRIVER = "570.133.20"  # inside 570.124.06-570.158.01 (gpu-operator#1361)
HALF_MIG = "diagnose-half-mig"  # a config with MIG on half the GPUs, added to the effective ConfigMap by fault 10
DEVICE_PLUGIN_CONFIG = "device-plugin-config"


def _node(objs: Objects, name: str) -> Obj:
    for n in objs["Node"]:
        if n["metadata"]["name"] == name:
            return n
    raise InputError(f"diagnose fault: no node {name}")


def _labels(node: Obj) -> dict[str, str]:
    labels: dict[str, str] = node["metadata"].setdefault("labels", {})
    return labels


def _set_state(node: Obj, state: str, since: float) -> None:
    """mig-manager's state write, with the managedFields time the API server records for it."""
    from mig_conformance.diagnose.snapshot import rfc3339

    _labels(node)[L.MIG_CONFIG_STATE] = state
    fields: Obj = {"f:metadata": {"f:labels": {f"f:{L.MIG_CONFIG_STATE}": {}}}}
    managed = [m for m in node["metadata"].get("managedFields") or () if m.get("manager") != "nvidia-mig-manager"]
    managed.append({"manager": "nvidia-mig-manager", "operation": "Update", "apiVersion": "v1",
                    "time": rfc3339(since), "fieldsType": "FieldsV1", "fieldsV1": fields})
    node["metadata"]["managedFields"] = managed


def _remove_pods(objs: Objects, node: str, *apps: str) -> None:
    objs["Pod"] = [p for p in objs["Pod"] if (p.get("spec") or {}).get("nodeName") != node
                   or (p["metadata"].get("labels") or {}).get("app") not in apps]


#: a cluster whose versions the faults do not know: the ConfigMaps that exist decide
UNKNOWN_STACK = stack.resolve(simulated=False)


def _config_map(objs: Objects, name: str) -> Obj | None:
    return next((c for c in objs["ConfigMap"] if c["metadata"]["name"] == name), None)


def _effective_map(objs: Objects, node: str) -> Obj:
    """The ConfigMap `node`'s mig-manager reads (diagnose/effective.py; versions unknown: what the objects show)."""
    policy = objs["ClusterPolicy"][0]
    name = ((policy["spec"].get("migManager") or {}).get("config") or {}).get("name") or None
    found, cm, _ = choose_config_map(name, node, UNKNOWN_STACK, lambda n: _config_map(objs, n))
    if cm is None:
        raise InputError(f"diagnose fault: no ConfigMap {found}")
    return cm


def _apply(objs: Objects, name: str, config: str, now: float, *, strategy: str | None = None) -> None:
    """The node after mig-manager applied `config` with success: GPUs, allocatable and GFD labels as projected."""
    node = _node(objs, name)
    labels = _labels(node)
    status = node.setdefault("status", {})
    view = GpuNode(name, labels, {}, {})
    policy = objs["ClusterPolicy"][0]["spec"]
    spec = parse_installed_config(_effective_map(objs, name)["data"]["config.yaml"], "effective ConfigMap")
    version = (policy.get("devicePlugin") or {}).get("version") or "v0.20.0"
    projection = project_node(node_gpu_models(view), strategy or policy["mig"]["strategy"], spec, config, name,
                              labels.get(L.INSTANCE_TYPE), device_plugin_version=version)
    kept = {k: v for k, v in labels.items() if not k.startswith("nvidia.com/") or k.startswith(NOT_GFD)}
    kept.update({k: v for k, v in labels.items() if k in DRIVER_LABELS})
    kept.update(projection.labels)
    node["metadata"]["labels"] = kept
    _set_state(node, "success", now)
    for key in ("capacity", "allocatable"):
        other = {k: v for k, v in (status.get(key) or {}).items() if not k.startswith("nvidia.com/")}
        status[key] = {**other, **{k: str(v) for k, v in projection.allocatable.items()}}


# ---- one fault per finding ---------------------------------------------------------------------------
def wedged(objs: Objects, name: str, now: float) -> None:
    """1: mig-manager set pending, paused the GPU clients, then returned without a state (a client pod that did not
    go in 5 minutes): the node stays so, an hour later."""
    node = _node(objs, name)
    labels = _labels(node)
    labels[L.MIG_CONFIG] = "all-balanced"
    for component in DEPLOY:
        labels[f"nvidia.com/gpu.deploy.{component}"] = PAUSED
    _set_state(node, "pending", now - 3600)


def gfd_never_labels(objs: Objects, name: str, now: float) -> None:
    """2: GFD never ran on the node (SELinux, a re-joined node): no nvidia.com/mig.capable, so the operator neither
    labels it for mig-manager nor sets the default nvidia.com/mig.config; no mig-manager pod."""
    node = _node(objs, name)
    node["metadata"]["labels"] = {k: v for k, v in _labels(node).items()
                                  if not k.startswith("nvidia.com/") or k == L.GPU_PRESENT}
    node["metadata"]["managedFields"] = []
    _remove_pods(objs, name, "nvidia-mig-manager", "gpu-feature-discovery")


def single_heterogeneous(objs: Objects, name: str, now: float) -> None:
    """3: the node's GFD and device plugin still run single (the strategy was mixed for the others) and the node got
    all-balanced: GFD writes <product>-MIG-INVALID, the device plugin exits and kubelet keeps its names at 0."""
    _apply(objs, name, "all-balanced", now, strategy="single")
    node = _node(objs, name)
    status = node["status"]
    for key in ("capacity", "allocatable"):
        status[key] = {k: ("0" if k.startswith("nvidia.com/") else v) for k, v in status[key].items()}
    for pod in objs["Pod"]:
        if (pod.get("spec") or {}).get("nodeName") == name and \
                pod["metadata"].get("labels", {}).get("app") == "nvidia-device-plugin-daemonset":
            pod["status"] = {"phase": "Running", "containerStatuses": [
                {"name": "nvidia-device-plugin", "ready": False, "restartCount": 12, "state": {"waiting": {
                    "reason": "CrashLoopBackOff", "message": "invalid MIG configuration: more than one MIG device "
                                                             "type present on node"}}}]}


def empty_mig_gpus(objs: Objects, name: str, now: float) -> None:
    """4: all-enabled applied: MIG mode on every GPU and no MIG devices."""
    _apply(objs, name, "all-enabled", now)


def mode_change_not_taken(objs: Objects, name: str, now: float) -> None:
    """5: an Ampere node reported success for all-1g.5gb, but the mode change needs a reset that never came
    (WITH_REBOOT unset): the GPUs still show as full GPUs."""
    node = _node(objs, name)
    _labels(node)[L.MIG_CONFIG] = "all-1g.5gb"
    _set_state(node, "success", now)


def reset_blocked(objs: Objects, name: str, now: float) -> None:
    """6: mig-manager failed: the GPU reset for the mode change was blocked by a host client."""
    from mig_conformance.diagnose.snapshot import rfc3339

    node = _node(objs, name)
    _labels(node)[L.MIG_CONFIG] = "all-balanced"
    _set_state(node, "failed", now)
    namespace = objs["ConfigMap"][0]["metadata"]["namespace"]
    pod = f"nvidia-mig-manager-{hashlib.sha256(name.encode()).hexdigest()[:5]}"
    objs["Event"].append({  # kubelet's event about the mig-manager pod on the node (source.host)
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": f"{pod}.reset-blocked", "namespace": namespace},
        "involvedObject": {"kind": "Pod", "name": pod, "namespace": namespace}, "reason": "BackOff",
        "type": "Warning", "count": 1, "firstTimestamp": rfc3339(now), "lastTimestamp": rfc3339(now),
        "message": "error applying MIG configuration: failed to reset GPU 00000000:10:1C.0: In use by another client",
        "source": {"component": "kubelet", "host": name}})


def unknown_name(objs: Objects, name: str, now: float) -> None:
    """7: the node was labelled with a name its effective config does not have: assert --valid-config fails."""
    node = _node(objs, name)
    _labels(node)[L.MIG_CONFIG] = "team-a-custom"
    _set_state(node, "failed", now)


def stale_strategy(objs: Objects, name: str, now: float) -> None:
    """8: the ClusterPolicy moved from single to mixed, but this node's GFD did not restart: it still says single."""
    _labels(_node(objs, name))[L.MIG_STRATEGY] = "single"


def plugin_config_overridden(objs: Objects, name: str, now: float) -> None:
    """9: the node selects a device-plugin config with flags.migStrategy single; the operator's env says mixed."""
    _labels(_node(objs, name))["nvidia.com/device-plugin.config"] = "mig-single"
    policy = objs["ClusterPolicy"][0]["spec"]
    policy.setdefault("devicePlugin", {})["config"] = {"name": DEVICE_PLUGIN_CONFIG, "default": "default"}
    if _config_map(objs, DEVICE_PLUGIN_CONFIG) is None:
        namespace = objs["ConfigMap"][0]["metadata"]["namespace"]
        objs["ConfigMap"].append({"apiVersion": "v1", "kind": "ConfigMap",
                                  "metadata": {"name": DEVICE_PLUGIN_CONFIG, "namespace": namespace},
                                  "data": {"default": "version: v1\n",
                                           "mig-single": "version: v1\nflags:\n  migStrategy: single\n"}})


def mixed_on_pending_driver(objs: Objects, name: str, now: float) -> None:
    """10: a node with MIG on half its GPUs and full GPUs on the others, on driver 570.133.20."""
    cm = _effective_map(objs, name)
    text = cm["data"]["config.yaml"]
    if HALF_MIG not in text:
        entry = (f"  {HALF_MIG}:\n    - devices: [0, 1, 2, 3]\n      mig-enabled: true\n      mig-devices:\n"
                 f"        \"1g.5gb\": 7\n    - devices: [4, 5, 6, 7]\n      mig-enabled: false\n")
        cm["data"]["config.yaml"] = text.replace("mig-configs:\n", "mig-configs:\n" + entry, 1)
    major, minor, rev = PENDING_DRIVER.split(".")
    labels = _labels(_node(objs, name))
    labels.update({"nvidia.com/cuda.driver.major": major, "nvidia.com/cuda.driver.minor": minor,
                   "nvidia.com/cuda.driver.rev": rev, "nvidia.com/cuda.driver-version.major": major,
                   "nvidia.com/cuda.driver-version.minor": minor, "nvidia.com/cuda.driver-version.revision": rev,
                   "nvidia.com/cuda.driver-version.full": PENDING_DRIVER})
    _apply(objs, name, HALF_MIG, now)


def grace_cdmm(objs: Objects, name: str, now: float) -> None:
    """11: a Grace node with CDMM on where a user asked for MIG: NVML reports MIG unsupported, GFD labels
    mig.capable=false, the operator does not deploy mig-manager, and nothing acts on the nvidia.com/mig.config label
    the user set."""
    node = _node(objs, name)
    labels = _labels(node)
    labels[L.MIG_CAPABLE] = "false"
    labels[L.MIG_CONFIG] = "all-balanced"
    labels.pop(L.MIG_CONFIG_STATE, None)
    labels.pop("nvidia.com/gpu.deploy.mig-manager", None)
    _remove_pods(objs, name, "nvidia-mig-manager")


def dra_slices(objs: Objects, name: str, now: float) -> None:
    """12: the DRA driver's kubelet plugin publishes the node's GPUs while the device plugin advertises them too."""
    node = _node(objs, name)
    count = int((node.get("status") or {}).get("allocatable", {}).get(L.GPU_RESOURCE, "8") or 8)
    objs["ResourceSlice"].append({
        "apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice",
        "metadata": {"name": f"{name}-gpu.nvidia.com-0"},
        "spec": {"driver": "gpu.nvidia.com", "nodeName": name,
                 "pool": {"name": name, "generation": 1, "resourceSliceCount": 1},
                 "devices": [{"name": f"gpu-{i}", "attributes": {"type": {"string": "gpu"}}}
                             for i in range(max(count, 1))]}})


def not_ready(objs: Objects, name: str, now: float) -> None:
    """13: mig-manager restarted kubelet while the node bootstrapped (EKS AL2023): the node is NotReady after a
    successful reconfiguration."""
    from mig_conformance.diagnose.snapshot import rfc3339

    node = _node(objs, name)
    conditions = [c for c in (node.setdefault("status", {}).get("conditions") or ()) if c.get("type") != "Ready"]
    conditions.append({"type": "Ready", "status": "False", "reason": "KubeletNotReady",
                       "message": "container runtime network not ready: NetworkReady=false",
                       "lastHeartbeatTime": rfc3339(now), "lastTransitionTime": rfc3339(now - 120)})
    node["status"]["conditions"] = conditions


#: fault name -> (the finding id it must produce, the fault)
FAULTS: dict[str, tuple[str, Fault]] = {
    "wedged": ("mig-manager-wedged", wedged),
    "gfd-never-labels": ("mig-manager-absent", gfd_never_labels),
    "single-heterogeneous": ("single-strategy-heterogeneous", single_heterogeneous),
    "empty-mig-gpus": ("mig-enabled-without-devices", empty_mig_gpus),
    "mode-change-not-taken": ("success-counts-mismatch", mode_change_not_taken),
    "reset-blocked": ("mig-config-failed", reset_blocked),
    "unknown-name": ("mig-config-unknown", unknown_name),
    "stale-strategy": ("stale-after-strategy-change", stale_strategy),
    "plugin-config-overridden": ("device-plugin-strategy-overridden", plugin_config_overridden),
    "mixed-on-pending-driver": ("driver-mixed-mig-pending", mixed_on_pending_driver),
    "grace-cdmm": ("grace-cdmm-no-mig", grace_cdmm),
    "dra-slices": ("gpu-advertised-twice", dra_slices),
    "not-ready": ("node-not-ready-after-reconfiguration", not_ready),
}


def inject(objs: Objects, faults: dict[str, str], now: float) -> Objects:
    """Apply `faults` ({node: fault name}) to a copy of `objs`, in node order."""
    import copy

    out = copy.deepcopy(objs)
    for kind in ("Event", "ResourceSlice", "Pod", "ConfigMap"):
        out.setdefault(kind, [])
    for node, fault in sorted(faults.items()):
        if fault not in FAULTS:
            raise InputError(f"diagnose fault '{fault}' on node {node}: not one of {', '.join(FAULTS)}")
        FAULTS[fault][1](out, node, now)
    return out


#: A fleet with room for every fault, one node each, and which kind of node each fault goes to (an instance type,
#: or a word of the GPU product label for GPU-list nodes)
FLEET = "p4d.24xlarge*3,p5.48xlarge*6,p5en.48xlarge*2,p6-b200.48xlarge,GH200-96GBx1"
PLAN = (("wedged", "p5.48xlarge"), ("gfd-never-labels", "p5en.48xlarge"), ("single-heterogeneous", "p5.48xlarge"),
        ("empty-mig-gpus", "p5.48xlarge"), ("mode-change-not-taken", "p4d.24xlarge"),
        ("reset-blocked", "p5.48xlarge"), ("unknown-name", "p5.48xlarge"), ("stale-strategy", "p5en.48xlarge"),
        ("plugin-config-overridden", "p6-b200.48xlarge"), ("mixed-on-pending-driver", "p4d.24xlarge"),
        ("grace-cdmm", "GH200"), ("dra-slices", "p4d.24xlarge"), ("not-ready", "p5.48xlarge"))


def assign(nodes: list[Obj]) -> dict[str, str]:
    """{node: fault} for PLAN over `nodes` (sorted by name; each node gets at most one fault)."""
    free = sorted(nodes, key=lambda n: str(n["metadata"]["name"]))
    out: dict[str, str] = {}
    for fault, want in PLAN:
        for node in free:
            labels = _labels(node)
            if labels.get(L.INSTANCE_TYPE) == want or want.lower() in labels.get(L.GPU_PRODUCT, "").lower():
                out[node["metadata"]["name"]] = fault
                free.remove(node)
                break
        else:
            raise InputError(f"diagnose fault {fault}: no free node of kind {want}")
    return out
