"""nvidia-mig-manager: reacts to a node's `nvidia.com/mig.config` label and reconfigures its GPUs.

At its start (first sight of the node, and whenever the ClusterPolicy's `spec.migManager.config.name` changes: the
operator rolls it out again) mig-manager settles which file it reads (k8s/mig_config.py, keyed by the stack): a
custom or static ConfigMap (key `config.yaml`, re-read at every run as the real one reads its mounted file), or,
from v0.14.0 with no name set, the config it generates from the node's GPUs (stored in `<node>-mig-config`). It then
runs once for the node's current label (the informer's AddFunc). Each run follows
mig-parted's Reconfigure.Run on the node's simulated GPUs (`NodeGpus.mig_manager_run`): `assert --valid-config`
(an unknown config name -> `failed`), `assert` (already applied -> `success` at once), else `pending`, `apply
--mode-only` + `assert --mode-only` (-> `rebooting` with WITH_REBOOT when the mode change did not take), `apply`,
then `success` or `failed`. `pending` and `rebooting` last `--mig-manager-delay` seconds each, on timers, so one
process runs many nodes' reconfigurations at once.

Before it writes the final state the run publishes the device plugin's resources and GFD's labels (mig-manager
restarts those GPU clients before it reports), so a reader that sees `success` also sees the new allocatable.
A label value that changes during a run is picked up when the run ends; an empty or removed label is ignored.
"""

from __future__ import annotations

import logging
from typing import Any

from mig_conformance.k8s import labels as L
from mig_conformance.k8s import mig_config as MC
from mig_conformance.mig.reconfigure import FAILED, PENDING, SUCCESS
from mig_conformance.mig.spec import Spec, parse_installed_config
from mig_conformance.simulators.agents import device_plugin, dra_driver, gfd
from mig_conformance.simulators.agents.api import AlreadyExists, ApiError, NotFound
from mig_conformance.simulators.agents.context import Context
from mig_conformance.simulators.agents.node import NodeAgent, labels
from mig_conformance.simulators.node_gpus import ActiveRun

log = logging.getLogger("mig_conformance.agents")
CONFIG_KEY = "config.yaml"
#: which file mig-manager started with, `<kind>:<ConfigMap>` (the local backend's stand-in for a restarted
#: mig-manager pod: the kit waits on it after changing spec.migManager.config.name)
MIG_MANAGER_ANNOTATION = "mig-conformance.io/mig-manager-config"


def _read_text(ctx: Context, name: str) -> tuple[str | None, str]:
    namespace = ctx.options.namespace
    where = f"ConfigMap {namespace}/{name}"
    try:
        cm = ctx.call(f"read {where}", ctx.api.read_config_map, namespace, name)
    except NotFound:
        return None, f"{where} not found"
    text = (cm.get("data") or {}).get(CONFIG_KEY)
    return text, where if text is not None else f"{where} has no key {CONFIG_KEY}"


def start(ctx: Context, node: NodeAgent) -> None:
    """mig-manager starts on the node (setupMigConfig): the file it reads from now on (k8s/mig_config.py); a
    generated one is stored in `<node>-mig-config` like the real one's (its owner reference is left out: the local
    backend runs no mig-manager pods). Then, as its informer's AddFunc does, it runs for the current label."""
    assert node.gpus is not None
    node.effective = MC.effective_config(node.name, ctx.options.stack, ctx.policy.config_map,
                                         lambda name: _read_text(ctx, name)[0], node.gpus.generated_configs)
    node.started_with, node.applied = ctx.policy.config_map, None
    log.info("node %s: mig-manager started: %s", node.name, node.effective.line())
    if node.effective.kind == MC.GENERATED:
        _store_generated(ctx, node.name, node.effective.text)
    node.patch_metadata(ctx, {"annotations": {
        MIG_MANAGER_ANNOTATION: f"{node.effective.kind}:{node.effective.config_map}"}})


def _store_generated(ctx: Context, node: str, text: str) -> None:
    """Create or update `<node>-mig-config` (createNodeConfigMap); a failure is only a warning, as upstream."""
    name, namespace = MC.node_config_map(node), ctx.options.namespace
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": name, "namespace": namespace,
                                         "labels": MC.node_config_labels(node)},
                            "data": {CONFIG_KEY: text}}
    try:
        try:
            ctx.call(f"create ConfigMap {namespace}/{name}", ctx.api.create_config_map, namespace, body)
        except AlreadyExists:
            existing = ctx.call(f"read ConfigMap {namespace}/{name}", ctx.api.read_config_map, namespace, name)
            body["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
            ctx.call(f"update ConfigMap {namespace}/{name}", ctx.api.replace_config_map, namespace, name, body)
    except (ApiError, KeyError) as exc:
        log.warning("node %s: Failed to create node ConfigMap: %s", node, exc)


def read_config(ctx: Context, node: NodeAgent) -> tuple[Spec | None, str]:
    """(the mig-parted spec, where it came from), or (None, why not): a generated file as mig-manager wrote it at
    its start, a mounted ConfigMap (custom, static, fallback) re-read at every run as the real one reads its file."""
    effective = node.effective
    assert effective is not None
    if effective.kind == MC.GENERATED:
        return effective.spec, f"generated {MC.node_config_map(node.name)}"
    text, where = _read_text(ctx, effective.config_map)
    if text is None:
        return None, where
    return parse_installed_config(text, where), f"{effective.kind} {where}"


def reconcile(ctx: Context, node: NodeAgent) -> None:
    """Start, continue or finish this node's run (call with the node's work-queue key held)."""
    gpus = node.gpus
    if gpus is None or node.obj is None or not gpus.mig_capable:
        return
    if node.run is not None:
        if ctx.clock() >= node.due:
            _step(ctx, node)
        return
    if node.effective is None or node.started_with != ctx.policy.config_map:
        start(ctx, node)  # first sight, or the operator rolled mig-manager out with another config name
    selected = labels(node.obj).get(L.MIG_CONFIG) or None
    if selected is None:
        node.applied = None  # setting the old value again runs mig-manager again
    elif selected != node.applied:
        _start(ctx, node, selected)


def _start(ctx: Context, node: NodeAgent, selected: str) -> None:
    assert node.gpus is not None
    spec, where = read_config(ctx, node)
    node.applied = selected
    node.gpus.current = ActiveRun(selected, ctx.clock())
    log.info("node %s: mig-manager run for %s=%s (%s)", node.name, L.MIG_CONFIG, selected, where)
    if spec is None:  # the real pod would not start without its config volume; failing says why
        node.gpus.current.reason = where
        node.gpus.current.states.append((ctx.clock(), FAILED))
        _set_state(ctx, node, FAILED)
        _finish(ctx, node)
        return
    with_reboot = ctx.options.with_reboot or ctx.policy.with_reboot
    node.run = node.gpus.mig_manager_run(spec, selected, with_reboot, ctx.options.mig_manager_delay,
                                         lambda value: _set_state(ctx, node, value))
    _step(ctx, node)


def _step(ctx: Context, node: NodeAgent) -> None:
    assert node.run is not None
    try:
        wait = next(node.run)
    except StopIteration:
        _finish(ctx, node)
        return
    finally:
        node.save(ctx)
    node.due = ctx.clock() + wait
    ctx.queue.add_after(node.name, wait)


def _finish(ctx: Context, node: NodeAgent) -> None:
    assert node.gpus is not None and node.gpus.current is not None
    record = node.gpus.current.record()
    node.runs.append(record)
    node.gpus.current = None
    node.run = None
    final = record.states[-1][1] if record.states else "?"
    log.info("node %s: run for %s ended %s%s", node.name, record.config, final,
             f": {record.reason}" if record.reason else "")
    ctx.queue.add(node.name)  # the label may have changed meanwhile


def _set_state(ctx: Context, node: NodeAgent, value: str) -> None:
    """Write `nvidia.com/mig.config.state`; before a final state, publish resources and GFD labels."""
    assert node.gpus is not None and node.obj is not None
    patch: dict[str, Any] = {"labels": {L.MIG_CONFIG_STATE: value}}
    if value in (SUCCESS, FAILED):
        states = node.gpus.gpu_states()
        device_plugin.publish(ctx, node, states)
        run = node.gpus.current
        if dra_driver.enabled(ctx) and run is not None and any(s == PENDING for _, s in run.states):
            dra_driver.restart(ctx, node)  # mig-manager bounced the GPU clients: the plugin reads NVML again
        meta = gfd.metadata_patch(node.obj, gfd.gfd_labels(ctx.policy.strategy, states, ctx.options.driver,
                                                             node.gpus.gpu_names()))
        patch = {**meta, "labels": {**meta.get("labels", {}), L.MIG_CONFIG_STATE: value}}
    node.patch_metadata(ctx, patch)
    log.info("node %s: %s=%s", node.name, L.MIG_CONFIG_STATE, value)
