"""A simulated Bottlerocket node among the agents' nodes: no GPU Operator labels, no mig-manager, no GFD; at its
first reconcile the node "boots": Bottlerocket's migmanager applies its settings (the user data the local backend
put in the annotation `k8s.bottlerocket.SETTINGS_ANNOTATION`), and its own device plugin publishes under the single
strategy (k8s/bottlerocket.py; the sim backend does the same in cluster/sim/node.py)."""

from __future__ import annotations

import logging
from typing import Any

from mig_conformance.common.errors import InputError
from mig_conformance.k8s import bottlerocket
from mig_conformance.simulators.agents import device_plugin
from mig_conformance.simulators.agents.api import Obj
from mig_conformance.simulators.agents.context import Context
from mig_conformance.simulators.agents.node import NodeAgent, annotations_of

log = logging.getLogger("mig_conformance.agents")


def settings_of(obj: Obj) -> bottlerocket.Settings | None:
    """The node's Bottlerocket settings, or None for a node that is not Bottlerocket (by its osImage)."""
    info: Any = (obj.get("status") or {}).get("nodeInfo") or {}
    if not bottlerocket.is_bottlerocket(info.get("osImage")):
        return None
    text = annotations_of(obj).get(bottlerocket.SETTINGS_ANNOTATION) or ""
    if not text.strip():
        return bottlerocket.DEFAULT_SETTINGS
    name = obj["metadata"]["name"]
    try:
        return bottlerocket.parse_settings(text, f"node {name} annotation {bottlerocket.SETTINGS_ANNOTATION}")
    except InputError as exc:  # Bottlerocket's API would refuse such user data: the node boots with the defaults
        log.warning("node %s: %s; booting with the default settings", name, exc)
        return bottlerocket.DEFAULT_SETTINGS


def reconcile(ctx: Context, node: NodeAgent, settings: bottlerocket.Settings) -> None:
    """Boot once (apply the settings' MIG layout), then publish the device plugin's resources."""
    gpus = node.gpus
    assert gpus is not None
    if node.boot is None:
        models = [g.model for g in gpus.gpu_states()]
        node.boot = bottlerocket.plan(settings, bottlerocket.Board.of(models[0]), len(models))
        if gpus.mig_capable:
            spec = bottlerocket.spec_of(node.boot)
            if gpus.parted.apply(spec, bottlerocket.CONFIG_NAME).error is not None:
                gpus.reboot()
                gpus.parted.apply(spec, bottlerocket.CONFIG_NAME)
            node.save(ctx)
        log.info("node %s: Bottlerocket boot: %s x%d per GPU", node.name, node.boot.profile, node.boot.count)
    plan = node.boot

    def adjust(resources: dict[str, int], error: str | None) -> tuple[dict[str, int], str | None]:
        out, why, _ = bottlerocket.advertised(settings, plan, resources, error)
        return out, why

    device_plugin.publish(ctx, node, gpus.gpu_states(), strategy=bottlerocket.STRATEGY, adjust=adjust)
