"""NVIDIA's DRA driver kubelet plugin (`gpu.nvidia.com`) on a simulated node, through the API server only.

When it starts it reads NVML (`NodeGpus.dra_inventory`) and publishes its node's pool as `k8s/dra.py` projects it:
ResourceSlices named `<node>-gpu.nvidia.com-<i>`, `spec.nodeName` the node, owned by the Node object, the pool's
generation one more than what it finds. It does not watch NVML afterwards: partitions changed later are published
only when it restarts (`restart`), which mig-manager (v0.15.0+) causes after a run that changed the GPUs, as it
bounces GPU clients whose DaemonSet selects `nvidia.com/gpu.deploy.client` (docs/dra.md). With this driver the node
runs no device plugin: its status never gets `nvidia.com/*` resources from the agents.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import replace
from typing import Any

from mig_conformance.k8s import dra as D
from mig_conformance.k8s import stack as S
from mig_conformance.simulators.agents.api import NotFound
from mig_conformance.simulators.agents.context import Context
from mig_conformance.simulators.agents.node import NodeAgent

log = logging.getLogger("mig_conformance.agents")


def enabled(ctx: Context) -> bool:
    return ctx.options.gpu_allocation == S.DRA


def profile(ctx: Context) -> S.StackProfile:
    base = S.default()
    kube = S.Sourced(ctx.options.kubernetes, "API server /version") if ctx.options.kubernetes else base.kubernetes
    return replace(base, kubernetes=kube, driver=S.Sourced(ctx.options.driver, "agents --driver"))


def desired(ctx: Context, node: NodeAgent) -> list[dict[str, Any]]:
    """The slices the plugin publishes for what NVML shows now."""
    assert node.gpus is not None
    models = [g.model for g in node.gpus.nvml.gpus]
    gpus = [D.DraGpu(r.minor, models[r.minor], r.mig_enabled,
                     tuple(D.MigInstance(p, pid, s, z, u) for p, pid, s, z, u in r.migs), r.uuid, r.name)
            for r in node.gpus.dra_inventory()]
    return list(D.project(node.name, gpus, profile(ctx), dynamic=ctx.options.dynamic_mig).slices)


def restart(ctx: Context, node: NodeAgent) -> None:
    """The kubelet plugin (re)starts on `node`: publish its pool with a new generation, drop stale slices."""
    assert node.obj is not None
    selector = f"spec.nodeName={node.name},spec.driver={D.DRIVER}"
    existing = {o["metadata"]["name"]: o for o in ctx.call("list resourceslices", ctx.api.list_resource_slices,
                                                          selector)}
    generation = 1 + max((int(o["spec"]["pool"].get("generation") or 0) for o in existing.values()), default=0)
    owner = {"apiVersion": "v1", "kind": "Node", "name": node.name, "uid": node.obj["metadata"].get("uid"),
             "controller": True}
    want = desired(ctx, node)
    for body in want:
        body["spec"]["pool"]["generation"] = generation
        body["metadata"]["ownerReferences"] = [owner]
        name = body["metadata"]["name"]
        if name in existing:
            body["metadata"]["resourceVersion"] = existing[name]["metadata"]["resourceVersion"]
            ctx.call(f"update resourceslice {name}", ctx.api.replace_resource_slice, name, body)
        else:
            ctx.call(f"create resourceslice {name}", ctx.api.create_resource_slice, body)
    for name in set(existing) - {b["metadata"]["name"] for b in want}:
        with contextlib.suppress(NotFound):
            ctx.call(f"delete resourceslice {name}", ctx.api.delete_resource_slice, name)
    node.dra_generation = generation
    devices = sum(len(b["spec"].get("devices") or []) for b in want)
    log.info("node %s: DRA driver published %d device(s) in %d slice(s), generation %d", node.name, devices,
             len(want), generation)


def started(node: NodeAgent) -> bool:
    return node.dra_generation is not None
