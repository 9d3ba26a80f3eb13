"""One node as the agents keep it: the latest API object, its simulated GPUs, and mig-manager's bookkeeping.

A node's GPUs come from the annotation `mig-conformance.io/gpus` (a catalog GPU list such as `H100-80GBx8` or
`H100-80GBx2+A10G-24GB`, for nodes that are no EC2 instance type) or else from the label
`node.kubernetes.io/instance-type`. With a state folder, each node's NVML state is saved after every change and
loaded at start, so GPUs keep their MIG configuration across an agent restart, as real GPUs do.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mig_conformance.common.errors import InputError
from mig_conformance.gpus.catalog import GpuModel
from mig_conformance.gpus.gpu_list import parse_gpu_list
from mig_conformance.gpus.instance_types import load_instance_types
from mig_conformance.k8s import labels as L
from mig_conformance.k8s.mig_config import EffectiveConfig
from mig_conformance.simulators import nvml as nv
from mig_conformance.simulators.agents.api import Obj
from mig_conformance.simulators.agents.context import Context
from mig_conformance.simulators.node_gpus import NodeGpus, RunRecord

log = logging.getLogger("mig_conformance.agents")
GPUS_ANNOTATION = "mig-conformance.io/gpus"
UID_KEY = "node_uid"  # saved with the NVML state: a node re-created under the same name gets fresh GPUs


def labels(obj: Obj) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def annotations_of(obj: Obj) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("annotations") or {}


def newer(a: Obj, b: Obj | None) -> bool:
    """Whether object `a` is at least as new as `b` (resourceVersions compared as numbers where they are)."""
    if b is None:
        return True
    ra, rb = (o.get("metadata", {}).get("resourceVersion", "") for o in (a, b))
    if ra.isdigit() and rb.isdigit():
        return int(ra) >= int(rb)
    return True


def gpu_models(obj: Obj) -> list[GpuModel] | None:
    """The node's GPUs in PCI order, or None when neither the annotation nor the instance type names them."""
    listed = annotations_of(obj).get(GPUS_ANNOTATION)
    if listed:
        try:
            return parse_gpu_list(listed.split("+"))
        except InputError as exc:
            log.warning("node %s: annotation %s=%r: %s", obj["metadata"]["name"], GPUS_ANNOTATION, listed, exc)
            return None
    it = load_instance_types().get(labels(obj).get(L.INSTANCE_TYPE, ""))
    return it.gpus() if it else None


def _state_file(folder: Path, name: str) -> Path:
    return folder / f"{name}.nvml.json"


def load_nvml(folder: Path | None, name: str, uid: str | None, models: list[GpuModel],
              driver: str) -> nv.NvmlSimulator:
    """The node's saved NVML state when it is this node object's and matches its GPUs, else fresh GPUs."""
    path = _state_file(folder, name) if folder is not None else None
    if path is not None and path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            sim = nv.NvmlSimulator.from_snapshot(data)
        except (OSError, ValueError, InputError) as exc:
            log.warning("node %s: ignoring saved GPU state %s: %s", name, path, exc)
        else:
            if data.get(UID_KEY) != uid:
                log.info("node %s: saved GPU state is of an earlier node of that name; starting fresh", name)
            elif [g.model.key for g in sim.gpus] != [m.key for m in models]:
                log.warning("node %s: saved GPU state is for other GPUs; starting fresh", name)
            else:
                log.info("node %s: GPU state restored from %s", name, path)
                return sim
    return nv.NvmlSimulator(models, name, driver_version=driver)


def save_nvml(folder: Path | None, sim: nv.NvmlSimulator, uid: str | None) -> None:
    """Write the state atomically (a reader never sees half a file)."""
    if folder is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    path = _state_file(folder, sim.name)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({**sim.snapshot(), UID_KEY: uid}, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def forget_nvml(folder: Path | None, name: str) -> None:
    """A deleted node is a terminated instance: its GPUs are gone."""
    if folder is not None:
        _state_file(folder, name).unlink(missing_ok=True)


@dataclass
class NodeAgent:
    """Per-node state; only the work-queue worker that holds the node's key changes it (the watch sets `obj`)."""

    name: str
    obj: Obj | None = None
    gpus: NodeGpus | None = None
    applied: str | None = None  # the mig.config value mig-manager last picked up
    run: Iterator[float] | None = None
    due: float = 0.0
    runs: list[RunRecord] = field(default_factory=list)
    defaulted: bool = False  # the GPU Operator's default mig.config label was considered
    boot: Any = None  # a Bottlerocket node: the k8s.bottlerocket.Plan its migmanager applied at boot
    effective: EffectiveConfig | None = None  # the file mig-manager reads (set when it starts)
    started_with: str | None = None  # the ClusterPolicy's config name mig-manager last started with
    dra_generation: int | None = None  # the pool generation the DRA driver last published (None: not started)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def seen(self, obj: Obj) -> None:
        """Keep `obj` unless a newer version is already known (watch events may lag behind patch responses)."""
        with self._lock:
            if newer(obj, self.obj):
                self.obj = obj

    def ensure_gpus(self, ctx: Context) -> NodeGpus | None:
        if self.gpus is None and self.obj is not None:
            models = gpu_models(self.obj)
            if models:
                uid = self.obj.get("metadata", {}).get("uid")
                sim = load_nvml(ctx.options.state_dir, self.name, uid, models, ctx.options.driver)
                self.gpus = NodeGpus(sim, ctx.clock, ctx.options.gpu_reset_works, ctx.command_cache)
        return self.gpus

    def save(self, ctx: Context) -> None:
        if self.gpus is not None:
            save_nvml(ctx.options.state_dir, self.gpus.nvml, (self.obj or {}).get("metadata", {}).get("uid"))

    # ---- writes (retried while the API server is away; the response is the newest object) -----------------
    def patch_metadata(self, ctx: Context, metadata: dict[str, Any]) -> None:
        self.seen(ctx.call(f"patch node {self.name}", ctx.api.patch_node, self.name, {"metadata": metadata}))

    def patch_status(self, ctx: Context, status: dict[str, Any]) -> None:
        self.seen(ctx.call(f"patch node {self.name} status", ctx.api.patch_node_status, self.name,
                           {"status": status}))
