"""nvidia-mig-manager: reacts to a node's `nvidia.com/mig.config` label and reconfigures its GPUs.

Each run re-reads the mig-parted file from the ConfigMap the ClusterPolicy names (`spec.migManager.config.name`,
key `config.yaml`, in the operator namespace), as the real one reads its mounted file at every run, then follows
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
from mig_conformance.mig.reconfigure import FAILED, PENDING, SUCCESS
from mig_conformance.mig.spec import Spec, parse_installed_config
from mig_conformance.simulators.agents import device_plugin, dra_driver, gfd
from mig_conformance.simulators.agents.api import NotFound
from mig_conformance.simulators.agents.context import Context
from mig_conformance.simulators.agents.node import NodeAgent, labels
from mig_conformance.simulators.node_gpus import ActiveRun

log = logging.getLogger("mig_conformance.agents")
CONFIG_KEY = "config.yaml"


def read_config(ctx: Context) -> tuple[Spec | None, str]:
    """(the mig-parted spec, where it came from), or (None, why not)."""
    namespace, name = ctx.options.namespace, ctx.policy.config_map
    where = f"ConfigMap {namespace}/{name}"
    try:
        cm = ctx.call(f"read {where}", ctx.api.read_config_map, namespace, name)
    except NotFound:
        return None, f"{where} not found"
    text = (cm.get("data") or {}).get(CONFIG_KEY)
    if text is None:
        return None, f"{where} has no key {CONFIG_KEY}"
    return parse_installed_config(text, where), where


def reconcile(ctx: Context, node: NodeAgent) -> None:
    """Start, continue or finish this node's run (call with the node's work-queue key held)."""
    gpus = node.gpus
    if gpus is None or node.obj is None or not gpus.mig_capable:
        return
    if node.run is not None:
        if ctx.clock() >= node.due:
            _step(ctx, node)
        return
    selected = labels(node.obj).get(L.MIG_CONFIG) or None
    if selected is None:
        node.applied = None  # setting the old value again runs mig-manager again
    elif selected != node.applied:
        _start(ctx, node, selected)


def _start(ctx: Context, node: NodeAgent, selected: str) -> None:
    assert node.gpus is not None
    spec, where = read_config(ctx)
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
