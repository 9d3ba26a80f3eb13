"""Findings about mig-manager: wedged in pending (1), never deployed (2), failed by reason (6), a config name the
node's effective config lacks (7), a node NotReady around a reconfiguration (13)."""

from __future__ import annotations

from collections.abc import Iterator

from mig_conformance.diagnose.context import DEPLOY_PREFIX, MIG_MANAGER_APP, PAUSED, Context
from mig_conformance.diagnose.finding import Finding, gh
from mig_conformance.diagnose.platform import is_grace_cdmm
from mig_conformance.diagnose.snapshot import (
    Obj,
    condition,
    label_changed_at,
    labels_of,
    name_of,
    rfc3339,
    timestamp,
)
from mig_conformance.k8s import labels as L
from mig_conformance.mig.reconfigure import FAILED, PENDING, REBOOTING

OPERATOR, PARTED = "NVIDIA/gpu-operator", "NVIDIA/mig-parted"
#: the operator's fallback when nvidia.com/mig.capable is missing (gpu-operator controllers/state_manager.go
#: hasMIGCapableGPU: a case-insensitive match of nvidia.com/gpu.product)
PRODUCT_FALLBACK = ("a100", "h100", "a30")
RESET_BLOCKED = "In use by another client"
#: a node that turned NotReady at most this long before mig-manager's last state write went NotReady during that
#: run (kubelet is restarted in the middle of it; the final state comes later)
RECONFIGURATION_WINDOW_S = 1800.0


def wedged(ctx: Context, node: Obj) -> Iterator[Finding]:
    """1: pending longer than the threshold while GPU clients stay paused: mig-manager left without a state
    (waitForPodsToBeDeleted or restartValidatorPod failed) and never retries an unchanged label."""
    labels = labels_of(node)
    if labels.get(L.MIG_CONFIG_STATE) != PENDING:
        return
    paused = sorted(k for k, v in labels.items() if k.startswith(DEPLOY_PREFIX) and v == PAUSED)
    if not paused:
        return
    since = label_changed_at(node, L.MIG_CONFIG_STATE)
    age = None if since is None else ctx.snapshot.now - since
    if age is not None and age < ctx.pending_threshold_s:
        return
    yield Finding(
        "mig-manager-wedged", name_of(node), "mig-manager is wedged in pending with the GPU clients paused",
        {L.MIG_CONFIG: labels.get(L.MIG_CONFIG), L.MIG_CONFIG_STATE: PENDING,
         "pending_since": rfc3339(since) if since is not None else "unknown (no managedFields)",
         "pending_s": round(age) if age is not None else None, "threshold_s": ctx.pending_threshold_s,
         "paused_labels": paused},
        (gh(OPERATOR, 2833),
         f"{PARTED} pkg/mig/reconfigure/reconfigure.go (waitForPodsToBeDeleted, restartValidatorPod)"),
        "mig-manager acts only on a change of nvidia.com/mig.config: restart the node's nvidia-mig-manager pod (it "
        "re-reads the label on start), or set the label to another value and back; then check that the "
        "nvidia.com/gpu.deploy.* labels return to true")


def never_runs(ctx: Context, node: Obj) -> Iterator[Finding]:
    """2: MIG-capable hardware without mig-manager: no mig.capable label (GFD not running, SELinux, a re-joined node),
    no deploy label, no pod, or no mig.config label."""
    if not ctx.mig_capable_hardware(node) or is_grace_cdmm(node):
        return
    if (ctx.policy_spec.get("migManager") or {}).get("enabled") is False:
        return
    labels = labels_of(node)
    missing: list[str] = []
    capable = labels.get(L.MIG_CAPABLE)
    if capable != "true":
        missing.append(f"{L.MIG_CAPABLE}={capable if capable is not None else '(missing)'}")
    deploy = labels.get(DEPLOY_PREFIX + "mig-manager")
    if deploy not in ("true", PAUSED):
        missing.append(f"{DEPLOY_PREFIX}mig-manager={deploy if deploy is not None else '(missing)'}")
    if ctx.snapshot.daemon_set(MIG_MANAGER_APP) is not None and not ctx.snapshot.pods_on(name_of(node),
                                                                                        MIG_MANAGER_APP):
        missing.append(f"no {MIG_MANAGER_APP} pod on the node")
    default = ((ctx.policy_spec.get("migManager") or {}).get("config") or {}).get("default", "all-disabled")
    if not labels.get(L.MIG_CONFIG) and default == "all-disabled":
        missing.append(f"{L.MIG_CONFIG} missing (the operator sets the ClusterPolicy's default, all-disabled, on "
                       "MIG-capable nodes)")
    if not missing:
        return
    product = labels.get(L.GPU_PRODUCT, "")
    notes: tuple[str, ...] = ()
    if capable is None and not any(p in product.lower() for p in PRODUCT_FALLBACK):
        notes = (f"without {L.MIG_CAPABLE} the operator falls back to {L.GPU_PRODUCT} containing "
                 f"{'/'.join(PRODUCT_FALLBACK)} only: '{product or '(no product label)'}' never gets mig-manager "
                 "(gpu-operator controllers/state_manager.go hasMIGCapableGPU)",)
    models = ctx.models(node) or []
    yield Finding(
        "mig-manager-absent", name_of(node), "a MIG-capable node where mig-manager never runs",
        {"gpus": sorted({m.key for m in models}), L.INSTANCE_TYPE: labels.get(L.INSTANCE_TYPE),
         L.GPU_PRODUCT: product or None, "missing": missing},
        (gh(OPERATOR, 287), gh(OPERATOR, 652), gh(OPERATOR, 873),
         f"{OPERATOR} controllers/state_manager.go hasMIGCapableGPU"),
        "make GPU Feature Discovery run on the node (it writes nvidia.com/mig.capable; check its pod, SELinux, "
        "and that the node was not re-joined with stale labels); the operator then labels "
        "nvidia.com/gpu.deploy.mig-manager=true and deploys mig-manager", notes=notes)


def _classify(ctx: Context, node: Obj) -> tuple[str, str] | None:
    """(reason, evidence) of a failed run; None when the name is unknown (finding 7 reports that)."""
    label = labels_of(node).get(L.MIG_CONFIG)
    effective = ctx.effective(node)
    if effective.spec is not None and label not in effective.names:
        return None
    projection = ctx.projection(node)
    if projection is not None and projection.state == FAILED and projection.reason:
        reason = projection.reason
        if "not found on this GPU" in reason:
            return "profile not on this GPU", reason
        if "non MIG-capable" in reason:
            return "a GPU of the config is not MIG capable", reason
        return "placement impossible", reason
    blocked = _reset_blocked(ctx, node)
    if blocked:
        return "GPU reset blocked", blocked
    return "unknown (the config applies on a fresh node of this hardware: read the mig-manager log)", (
        "projection: success" if projection is not None else "projection unavailable")


def _reset_blocked(ctx: Context, node: Obj) -> str | None:
    """'In use by another client' in an event about the node or its mig-manager pod (by name, or reported by the
    node's kubelet: source.host), or in that pod's container status."""
    name = name_of(node)
    pods = {name_of(p) for p in ctx.snapshot.pods_on(name, MIG_MANAGER_APP)}
    for event in ctx.snapshot.of("Event"):
        involved = event.get("involvedObject") or {}
        about = involved.get("name") in pods | {name} or (event.get("source") or {}).get("host") == name
        if about and RESET_BLOCKED in str(event.get("message", "")):
            return f"event {name_of(event)}: {event.get('message')}"
    for pod in ctx.snapshot.pods_on(name, MIG_MANAGER_APP):
        for status in (pod.get("status") or {}).get("containerStatuses") or ():
            for state in (status.get("state") or {}, status.get("lastState") or {}):
                for detail in state.values():
                    if RESET_BLOCKED in str((detail or {}).get("message", "")):
                        return f"pod {name_of(pod)}: {detail.get('message')}"
    return None


RECOVERY = {
    "profile not on this GPU": "use a config whose profiles this GPU has (mig-conformance gpus NAME lists them; the "
                               "generated <node>-mig-config holds only valid ones), then relabel the node",
    "a GPU of the config is not MIG capable": "limit the config's device filter to MIG-capable GPUs",
    "placement impossible": "the profiles do not fit the GPU together (mig-conformance fit shows a placement); "
                            "reduce the counts, then relabel the node",
    "GPU reset blocked": "stop the host clients that hold the GPU (nvidia-persistenced, DCGM, fabric manager, "
                         "nvidia_drm) or set WITH_SHUTDOWN_HOST_GPU_CLIENTS=true, then relabel the node",
}


def failed(ctx: Context, node: Obj) -> Iterator[Finding]:
    """6: state failed, classified by the reason the evidence allows."""
    labels = labels_of(node)
    if labels.get(L.MIG_CONFIG_STATE) != FAILED:
        return
    classified = _classify(ctx, node)
    if classified is None:
        return
    reason, detail = classified
    yield Finding(
        "mig-config-failed", name_of(node), f"mig-manager failed: {reason}",
        {L.MIG_CONFIG: labels.get(L.MIG_CONFIG), L.MIG_CONFIG_STATE: FAILED, "reason": reason, "detail": detail,
         "config_map": ctx.effective(node).config_map},
        (gh(PARTED, 181), gh(OPERATOR, 118), gh(PARTED, 357)),
        RECOVERY.get(reason, "read the node's nvidia-mig-manager log for the error, fix it, then set "
                             "nvidia.com/mig.config to another value and back (a failed node is not retried)"))


def unknown_config(ctx: Context, node: Obj) -> Iterator[Finding]:
    """7: the requested mig.config value is not in the node's effective config."""
    labels = labels_of(node)
    label = labels.get(L.MIG_CONFIG)
    if not label or not ctx.mig_capable_hardware(node):
        return
    effective = ctx.effective(node)
    if effective.spec is not None and label in effective.names:
        return
    yield Finding(
        "mig-config-unknown", name_of(node), f"nvidia.com/mig.config={label} is not in the node's effective config",
        {L.MIG_CONFIG: label, L.MIG_CONFIG_STATE: labels.get(L.MIG_CONFIG_STATE),
         "config_map": effective.config_map, "chosen": effective.why, "names": effective.names},
        (gh(OPERATOR, 2913), gh(PARTED, 312, "pull"), f"{PARTED} cmd/nvidia-mig-manager/main.go setupMigConfig"),
        "pick a name the effective ConfigMap holds (the generated <node>-mig-config names are all-disabled, "
        "all-enabled, all-<profile>, all-balanced), or set ClusterPolicy spec.migManager.config.name to a custom "
        "ConfigMap that has it; then relabel the node")


def not_ready(ctx: Context, node: Obj) -> Iterator[Finding]:
    """13: a node NotReady during or after a reconfiguration (mig-manager restarted kubelet: EKS AL2023)."""
    labels = labels_of(node)
    state = labels.get(L.MIG_CONFIG_STATE)
    ready = condition(node, "Ready")
    if state is None or ready is None or ready.get("status") == "True":
        return
    since, changed = timestamp(ready.get("lastTransitionTime")), label_changed_at(node, L.MIG_CONFIG_STATE)
    if state not in (PENDING, REBOOTING) and since is not None and changed is not None \
            and since < changed - RECONFIGURATION_WINDOW_S:
        return  # NotReady since long before mig-manager's last run: not this failure mode
    yield Finding(
        "node-not-ready-after-reconfiguration", name_of(node),
        f"the node is NotReady with nvidia.com/mig.config.state={state}",
        {"Ready": ready.get("status"), "reason": ready.get("reason"), "message": ready.get("message"),
         "since": ready.get("lastTransitionTime"), L.MIG_CONFIG: labels.get(L.MIG_CONFIG), L.MIG_CONFIG_STATE: state,
         "WITH_SHUTDOWN_HOST_GPU_CLIENTS": ctx.mig_manager_env("WITH_SHUTDOWN_HOST_GPU_CLIENTS"),
         "during": state in (PENDING, REBOOTING)},
        (gh(PARTED, 368), gh(PARTED, 392, "pull")),
        "on EKS AL2023 mig-manager can restart kubelet while the node bootstraps: set WITH_SHUTDOWN_HOST_GPU_CLIENTS="
        "false in ClusterPolicy spec.migManager.env (or apply MIG in the node's bootstrap), then check kubelet's "
        "journal on the node")
