"""What every diagnosis needs about the cluster and one node: strategy, versions, GPUs, effective config, and the
state the projection expects after `success` (computed once per node)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mig_conformance.common.errors import InputError
from mig_conformance.diagnose.effective import EffectiveConfig, effective_config
from mig_conformance.diagnose.snapshot import Obj, Snapshot, gpu_node, labels_of, name_of
from mig_conformance.gpus.catalog import GpuModel
from mig_conformance.gpus.instance_types import load_instance_types
from mig_conformance.k8s import labels as L
from mig_conformance.k8s import versions as V
from mig_conformance.k8s.node_hardware import node_gpu_models
from mig_conformance.k8s.projection import NodeProjection, project_node
from mig_conformance.k8s.stack import StackProfile

DEVICE_PLUGIN_APP = "nvidia-device-plugin-daemonset"
GFD_APP = "gpu-feature-discovery"
MIG_MANAGER_APP = "nvidia-mig-manager"
PAUSED = "paused-for-mig-change"
DEPLOY_PREFIX = "nvidia.com/gpu.deploy."
DRIVER_LABEL = "nvidia.com/cuda.driver-version.full"
#: mig-manager waits up to 5 minutes for each paused client pod to go (mig-parted reconfigure.go
#: waitForPodsToBeDeleted); a pending state older than this outlived every such wait.
PENDING_THRESHOLD_S = 900.0


def image_tag(obj: Mapping[str, Any] | None) -> str | None:
    """The tag of the first container image of a DaemonSet (`nvcr.io/nvidia/k8s-device-plugin:v0.17.4` -> v0.17.4)."""
    containers = (((obj or {}).get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or ()
    for c in containers:
        image = str(c.get("image") or "")
        tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
        try:
            V.release(tag)
        except ValueError:
            continue
        return tag
    return None


def container_env(obj: Mapping[str, Any] | None, name: str) -> str | None:
    containers = (((obj or {}).get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or ()
    for c in containers:
        for e in c.get("env") or ():
            if e.get("name") == name:
                return str(e.get("value", ""))
    return None


@dataclass
class Context:
    """One diagnose run over one snapshot."""

    snapshot: Snapshot
    stack: StackProfile
    pending_threshold_s: float = PENDING_THRESHOLD_S
    _projections: dict[str, NodeProjection | None] = field(default_factory=dict)
    _models: dict[str, list[GpuModel] | None] = field(default_factory=dict)
    _effective: dict[str, EffectiveConfig] = field(default_factory=dict)

    # ---- cluster-wide -----------------------------------------------------------------------------------
    @property
    def policy_spec(self) -> Mapping[str, Any]:
        return (self.snapshot.cluster_policy or {}).get("spec") or {}

    @property
    def strategy(self) -> str | None:
        """The ClusterPolicy's spec.mig.strategy (the operator's default is single); None without a ClusterPolicy."""
        if self.snapshot.cluster_policy is None:
            return None
        return str((self.policy_spec.get("mig") or {}).get("strategy") or "single")

    def mig_manager_env(self, name: str) -> str | None:
        for e in (self.policy_spec.get("migManager") or {}).get("env") or ():
            if e.get("name") == name:
                return str(e.get("value", ""))
        return container_env(self.snapshot.daemon_set(MIG_MANAGER_APP), name)

    @functools.cached_property
    def device_plugin_version(self) -> tuple[str, str]:
        """(version, where it was read): the DaemonSet's image tag, the ClusterPolicy, else the stack profile."""
        tag = image_tag(self.snapshot.daemon_set(DEVICE_PLUGIN_APP))
        if tag:
            return tag, f"DaemonSet {DEVICE_PLUGIN_APP} image"
        version = (self.policy_spec.get("devicePlugin") or {}).get("version")
        if isinstance(version, str):
            try:
                V.release(version)
                return version, "ClusterPolicy spec.devicePlugin.version"
            except ValueError:
                pass
        return self.stack.device_plugin_model, f"stack profile ({self.stack.device_plugin.source})"

    @functools.cached_property
    def _instance_types(self) -> frozenset[str]:
        return frozenset(load_instance_types())

    # ---- per node ---------------------------------------------------------------------------------------
    def models(self, node: Obj) -> list[GpuModel] | None:
        """The node's GPUs (instance type, else GFD's product and count); None when the catalog cannot tell."""
        labels = labels_of(node)
        key = "\0".join(labels.get(k, "") for k in (L.INSTANCE_TYPE, L.GPU_PRODUCT, L.GPU_COUNT))  # what decides
        if key not in self._models:
            try:
                self._models[key] = node_gpu_models(gpu_node(node))
            except (InputError, KeyError):
                self._models[key] = None
        return self._models[key]

    def mig_capable_hardware(self, node: Obj) -> bool:
        models = self.models(node)
        return bool(models) and any(m.mig_capable for m in models or ())

    def effective(self, node: Obj) -> EffectiveConfig:
        name = name_of(node)
        if name not in self._effective:
            self._effective[name] = effective_config(self.snapshot, name, self.stack)
        return self._effective[name]

    def driver(self, node: Obj) -> str | None:
        return labels_of(node).get(DRIVER_LABEL) or self.stack.driver_version

    def projection(self, node: Obj) -> NodeProjection | None:
        """What the node shows once its mig.config label's config is applied on a fresh node (None when the GPUs,
        the config or the strategy are unknown)."""
        name = name_of(node)
        if name not in self._projections:
            self._projections[name] = self._project(node)
        return self._projections[name]

    def _project(self, node: Obj) -> NodeProjection | None:
        """Only for nodes whose GPUs the instance type gives: GFD's product and count name one GPU model, so on a
        node of mixed boards they would miss GPUs (and every count would look wrong)."""
        if labels_of(node).get(L.INSTANCE_TYPE) not in self._instance_types:
            return None
        models, label, strategy = self.models(node), labels_of(node).get(L.MIG_CONFIG), self.strategy
        effective = self.effective(node)
        if not models or not label or strategy is None or effective.spec is None or label not in effective.names:
            return None
        try:
            return project_node(models, strategy, effective.spec, label, name_of(node),
                                device_plugin_version=self.device_plugin_version[0])
        except (InputError, ValueError):
            return None
