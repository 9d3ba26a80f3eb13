"""Device plugin + kubelet: `nvidia.com/gpu` / `nvidia.com/mig-*` capacity and allocatable in the node status.

The resources are what `k8s.device_plugin.advertise` registers for the ClusterPolicy strategy and the MIG devices
NVML reports. Names registered before and not now stay with 0, as kubelet keeps a resource once registered (and a
plugin that fails registers nothing, so all drop to 0). The status is patched through the `status` subresource,
only when it differs, so the same reconcile also repairs a status that someone else overwrote.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mig_conformance.k8s import device_plugin as dp
from mig_conformance.k8s.labels import GPU_RESOURCE, MIG_RESOURCE_PREFIX
from mig_conformance.mig.state import GpuMigState
from mig_conformance.simulators.agents.api import Obj
from mig_conformance.simulators.agents.context import Context
from mig_conformance.simulators.agents.node import NodeAgent

log = logging.getLogger("mig_conformance.agents")


def plugin_resource(name: str) -> bool:
    """A resource name the NVIDIA device plugin registers."""
    return name == GPU_RESOURCE or name.startswith(MIG_RESOURCE_PREFIX)


Adjust = Callable[[dict[str, int], str | None], tuple[dict[str, int], str | None]]


def desired(strategy: str, gpus: Sequence[GpuMigState], capacity: Mapping[str, Any],
            version: str = dp.DEFAULT_VERSION, adjust: Adjust | None = None) -> tuple[dict[str, int], str | None]:
    """(resource -> count for every plugin resource the node should show, the plugin's error or None); `adjust`
    turns NVIDIA's plugin's answer into another plugin's (Bottlerocket's sharing settings)."""
    result = dp.advertise(strategy, gpus, version=version)
    resources, error = adjust(dict(result.resources), result.error) if adjust else (result.resources, result.error)
    want = {name: 0 for name in capacity if plugin_resource(name)}
    want.update(resources)
    return dict(sorted(want.items())), error


def _same(current: Any, count: int) -> bool:
    return current is not None and str(current).strip() == str(count)


def status_patch(obj: Obj, want: Mapping[str, int]) -> dict[str, Any] | None:
    """The status patch that makes capacity and allocatable show `want`, or None when they already do."""
    status = obj.get("status") or {}
    capacity, allocatable = status.get("capacity") or {}, status.get("allocatable") or {}
    if all(_same(capacity.get(k), v) and _same(allocatable.get(k), v) for k, v in want.items()):
        return None
    values = {k: str(v) for k, v in want.items()}
    return {"capacity": values, "allocatable": dict(values)}


def publish(ctx: Context, node: NodeAgent, gpus: Sequence[GpuMigState], strategy: str | None = None,
            adjust: Adjust | None = None) -> None:
    """Patch the node status when its plugin resources differ from what the plugin would register now (under the
    ClusterPolicy's strategy unless the node's plugin has its own)."""
    assert node.obj is not None
    if ctx.options.gpu_allocation == "dra":  # the node runs NVIDIA's DRA driver instead (agents/dra_driver.py)
        return
    capacity = (node.obj.get("status") or {}).get("capacity") or {}
    strategy = strategy or ctx.policy.strategy
    want, error = desired(strategy, gpus, capacity, ctx.options.device_plugin_version, adjust)
    patch = status_patch(node.obj, want)
    if patch is None:
        return
    if error:
        log.warning("node %s: device plugin (strategy %s) fails: %s", node.name, strategy, error)
    node.patch_status(ctx, patch)
    log.info("node %s: allocatable %s", node.name, {k: v for k, v in want.items() if v} or "no GPUs")
