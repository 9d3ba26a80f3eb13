"""Findings about what the device plugin and GFD advertise: single strategy on a heterogeneous layout (3), a MIG
GPU without MIG devices (4), `success` with counts the config does not imply (5), stale resources after a strategy
change (8), a per-node device-plugin config whose migStrategy the operator overrides (9)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import yaml

from mig_conformance.diagnose.context import DEVICE_PLUGIN_APP, GFD_APP, Context, container_env
from mig_conformance.diagnose.finding import CLUSTER, Finding, gh
from mig_conformance.diagnose.snapshot import Obj, gpu_node, labels_of, name_of
from mig_conformance.k8s import labels as L
from mig_conformance.k8s import versions as V
from mig_conformance.mig.reconfigure import SUCCESS

OPERATOR, PLUGIN, PARTED = "NVIDIA/gpu-operator", "NVIDIA/k8s-device-plugin", "NVIDIA/mig-parted"
INVALID = "-MIG-INVALID"
DEVICE_PLUGIN_CONFIG = "nvidia.com/device-plugin.config"


def _pod_states(ctx: Context, node: str, app: str) -> list[str]:
    out = []
    for pod in ctx.snapshot.pods_on(node, app):
        status = pod.get("status") or {}
        waiting = [str(((c.get("state") or {}).get("waiting") or {}).get("reason"))
                   for c in status.get("containerStatuses") or () if (c.get("state") or {}).get("waiting")]
        restarts = sum(int(c.get("restartCount") or 0) for c in status.get("containerStatuses") or ())
        out.append(f"{name_of(pod)}: {status.get('phase')}{' ' + ','.join(waiting) if waiting else ''}"
                   f"{f' ({restarts} restarts)' if restarts else ''}")
    return out


def invalid_layout(node: Obj) -> bool:
    return labels_of(node).get(L.GPU_PRODUCT, "").endswith(INVALID)


def plugin_down(ctx: Context, node: Obj) -> bool:
    """The node's device-plugin pod exists and is not ready (crash-looping): kubelet shows what it last had."""
    pods = ctx.snapshot.pods_on(name_of(node), DEVICE_PLUGIN_APP)
    return any(not c.get("ready", True) for p in pods for c in (p.get("status") or {}).get("containerStatuses") or ())


def shared(node: Obj) -> bool:
    """GFD says a resource is shared (`*.replicas` above 1, or a sharing strategy other than none)."""
    return any((k.endswith(".replicas") and v not in ("0", "1")) or (k.endswith(".sharing-strategy") and v != "none")
               for k, v in labels_of(node).items() if k.startswith("nvidia.com/"))


def single_heterogeneous(ctx: Context, node: Obj) -> Iterator[Finding]:
    """3: under single, GFD names a non-uniform layout `<product>-MIG-INVALID` and the device plugin exits. GFD
    writes the suffix only under single, so the label is the evidence even where the ClusterPolicy says otherwise
    (a node whose GFD has not restarted since a strategy change is reported here, once, with both strategies)."""
    labels = labels_of(node)
    if not invalid_layout(node):
        return
    yield Finding(
        "single-strategy-heterogeneous", name_of(node), "single strategy with a heterogeneous MIG layout",
        {L.GPU_PRODUCT: labels.get(L.GPU_PRODUCT), L.MIG_CONFIG: labels.get(L.MIG_CONFIG),
         L.MIG_STRATEGY: labels.get(L.MIG_STRATEGY), "cluster_policy_strategy": ctx.strategy,
         "device_plugin_pods": _pod_states(ctx, name_of(node), DEVICE_PLUGIN_APP)},
        (gh(OPERATOR, 460), gh(OPERATOR, 479), gh(PLUGIN, 253)),
        "under single every GPU of a node must hold one MIG profile: relabel the node to a uniform config "
        "(all-1g.10gb, ...), or switch ClusterPolicy spec.mig.strategy to mixed")


def empty_mig_gpu(ctx: Context, node: Obj) -> Iterator[Finding]:
    """4: the applied config leaves a GPU in MIG mode with no MIG devices (all-enabled, a partial config)."""
    labels = labels_of(node)
    projection = ctx.projection(node)
    if labels.get(L.MIG_CONFIG_STATE) != SUCCESS or projection is None or projection.state != SUCCESS:
        return
    empty = [i for i, g in enumerate(projection.gpus) if g.mig_enabled and not g.devices]
    if not empty:
        return
    version, where = ctx.device_plugin_version
    rule = V.rule("device-plugin.empty-mig-gpu")
    warning = ctx.strategy == "mixed" and rule.applies(version)
    yield Finding(
        "mig-enabled-without-devices", name_of(node), f"MIG mode enabled with no MIG devices on GPU(s) "
        f"{', '.join(map(str, empty))}",
        {L.MIG_CONFIG: labels.get(L.MIG_CONFIG), "gpus": empty, "strategy": ctx.strategy,
         "device_plugin": f"{version} ({where})",
         "device_plugin_behaviour": rule.after if rule.applies(version) else rule.before},
        (gh(OPERATOR, 2670), gh(PLUGIN, 767), gh(PLUGIN, 806, "pull"), rule.source),
        "relabel the node to a config that creates MIG devices on every MIG-enabled GPU (all-balanced, "
        "all-<profile>), or disable MIG on the GPUs that need none", severity="warning" if warning else "error")


def _gpu_total(resources: Mapping[str, int]) -> dict[str, int]:
    return {k: v for k, v in sorted(resources.items())
            if v and (k == L.GPU_RESOURCE or k.startswith(L.MIG_RESOURCE_PREFIX))}


def counts_mismatch(ctx: Context, node: Obj) -> Iterator[Finding]:
    """5: `success`, but the node advertises other GPU/MIG counts than the config implies (a mode change that did
    not take: Ampere without WITH_REBOOT, a cloud VM; a partial apply)."""
    labels = labels_of(node)
    projection = ctx.projection(node)
    if labels.get(L.MIG_CONFIG_STATE) != SUCCESS or projection is None or projection.state != SUCCESS:
        return
    if projection.plugin_error or invalid_layout(node) or plugin_down(ctx, node):  # findings 3 and 4 say why
        return
    if shared(node):  # time-slicing or MPS multiplies the counts: the projection does not model sharing
        return
    expected, measured = _gpu_total(projection.allocatable), _gpu_total(gpu_node(node).allocatable)
    if sum(expected.values()) == sum(measured.values()) and set(expected) == set(measured):
        return
    models = ctx.models(node) or []
    ampere = any(m.architecture.lower() == "ampere" and m.mig_capable for m in models)
    reboot = ctx.mig_manager_env("WITH_REBOOT")
    notes: tuple[str, ...] = ()
    if ampere and reboot != "true":
        notes = ("Ampere GPUs need a GPU reset or reboot for a MIG mode change; WITH_REBOOT is "
                 f"{reboot or 'unset'} (mig-parted#9, #18)",)
    yield Finding(
        "success-counts-mismatch", name_of(node), "mig-manager reported success but the advertised GPUs do not "
        "match the config", {L.MIG_CONFIG: labels.get(L.MIG_CONFIG), "expected": expected, "measured": measured,
                             "strategy": ctx.strategy, "WITH_REBOOT": reboot},
        (gh(OPERATOR, 603), gh(OPERATOR, 646), gh(OPERATOR, 1606), gh(PARTED, 9), gh(PARTED, 18)),
        "check the GPUs with nvidia-smi mig -lgi on the node; on A100/A30 set WITH_REBOOT=true in ClusterPolicy "
        "spec.migManager.env (or reboot the node), then relabel; restart the device plugin if the GPUs are right",
        notes=notes)


def stale_strategy(ctx: Context, node: Obj) -> Iterator[Finding]:
    """8 (per node): GFD's nvidia.com/mig.strategy differs from the ClusterPolicy, or MIG names left at 0 under
    single."""
    strategy, labels = ctx.strategy, labels_of(node)
    if strategy is None or strategy == "none" or not ctx.mig_capable_hardware(node) or invalid_layout(node):
        return  # an invalid single layout is finding 3, whose evidence holds both strategies
    label = labels.get(L.MIG_STRATEGY)
    allocatable = gpu_node(node).allocatable
    stale = sorted(k for k, v in allocatable.items() if k.startswith(L.MIG_RESOURCE_PREFIX) and v == 0) \
        if strategy == "single" else []
    wrong_label = label is not None and label != strategy
    if not wrong_label and not stale:
        return
    yield Finding(
        "stale-after-strategy-change", name_of(node), "resources or labels of another MIG strategy remain",
        {"strategy": strategy, L.MIG_STRATEGY: label, "stale_resources_at_0": stale},
        (gh(OPERATOR, 460), "docs/k8s-semantics.md (kubelet keeps a registered resource at 0)"),
        "restart the node's device plugin and GFD pods so they pick up the strategy (the operator's DaemonSets "
        "carry MIG_STRATEGY); resources kubelet keeps at 0 go away when kubelet restarts")


def stale_daemonsets(ctx: Context) -> Iterator[Finding]:
    """8 (cluster): MIG_STRATEGY of the device plugin and GFD DaemonSets differs from the ClusterPolicy."""
    strategy = ctx.strategy
    if strategy is None:
        return
    wrong = {}
    for app in (DEVICE_PLUGIN_APP, GFD_APP):
        value = container_env(ctx.snapshot.daemon_set(app), "MIG_STRATEGY")
        if value is not None and value != strategy:
            wrong[app] = value
    if not wrong:
        return
    yield Finding(
        "stale-daemonset-strategy", CLUSTER, "DaemonSets run with another MIG_STRATEGY than the ClusterPolicy",
        {"strategy": strategy, "MIG_STRATEGY": wrong},
        (gh(OPERATOR, 460), f"{OPERATOR} controllers/object_controls.go applyMIGConfiguration"),
        "the operator rewrites MIG_STRATEGY when it reconciles the ClusterPolicy: check the operator pod's log and "
        "that it runs; then the DaemonSets roll out the device plugin and GFD again")


def _plugin_config(ctx: Context, key: str) -> tuple[str | None, str]:
    """(flags.migStrategy of the device-plugin config `key`, where it was read or why not)."""
    name = ((ctx.policy_spec.get("devicePlugin") or {}).get("config") or {}).get("name")
    if not name:
        return None, "ClusterPolicy spec.devicePlugin.config.name is not set"
    cm = ctx.snapshot.config_map(str(name))
    if cm is None:
        return None, f"ConfigMap {name} not found"
    text = (cm.get("data") or {}).get(key)
    if not isinstance(text, str):
        return None, f"ConfigMap {name} has no key {key}"
    try:
        doc: Any = yaml.safe_load(text[:1_000_000])
    except yaml.YAMLError:
        return None, f"ConfigMap {name} key {key} is not YAML"
    flags = doc.get("flags") if isinstance(doc, dict) else None
    value = flags.get("migStrategy") if isinstance(flags, dict) else None
    return (str(value) if value is not None else None), f"ConfigMap {name} key {key}"


def overridden_plugin_strategy(ctx: Context, node: Obj) -> Iterator[Finding]:
    """9: the node selects a device-plugin config whose flags.migStrategy the operator's MIG_STRATEGY env
    overrides (env beats the config file)."""
    key = labels_of(node).get(DEVICE_PLUGIN_CONFIG)
    strategy = ctx.strategy
    if not key or not strategy:
        return
    value, where = _plugin_config(ctx, key)
    if value is None or value == strategy:
        return
    yield Finding(
        "device-plugin-strategy-overridden", name_of(node),
        f"the node's device-plugin config asks for migStrategy {value}, the operator runs {strategy}",
        {DEVICE_PLUGIN_CONFIG: key, "flags.migStrategy": value, "read_from": where, "MIG_STRATEGY": strategy},
        (f"{OPERATOR} controllers/object_controls.go applyMIGConfiguration (sets MIG_STRATEGY)",
         f"{PLUGIN} cmd/nvidia-device-plugin/main.go (an env var beats the config file)"),
        "set the strategy in ClusterPolicy spec.mig.strategy (it applies to every node), or remove migStrategy from "
        "the per-node config", severity="warning")
