"""One simulated GPU node: its NVML simulator and the GPU Operator agents that act on it.

* mig-manager (`mig_manager_run`, from `simulators/node_gpus.py`, shared with the `local` backend's agents):
  mig-parted's Reconfigure.Run, step by step, through the mig-parted simulator on this node's NVML simulator (assert
  --valid-config, assert, assert --mode-only, pending, apply --mode-only + assert --mode-only, rebooting with
  WITH_REBOOT, apply). It is a generator: it yields the seconds each step takes, so the cluster can run it on its
  simulated clock.
* device plugin + kubelet (`advertise`): the MIG devices NVML reports -> `GpuMigState` -> `device_plugin.advertise`.
  Resource names registered earlier and not now stay at 0, as kubelet keeps them.
* GFD (`advertise`): `gfd.labels` from the same states; labels GFD set before and not now are removed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from mig_conformance.cluster.sim.fleet import BOTTLEROCKET, REGION, NodeSpec
from mig_conformance.k8s import bottlerocket, gfd
from mig_conformance.k8s import device_plugin as dp
from mig_conformance.k8s import labels as L
from mig_conformance.k8s.mig_config import EffectiveConfig
from mig_conformance.k8s.model import GpuNode, Taint
from mig_conformance.simulators import nvml as nv
from mig_conformance.simulators.command_cache import CommandCache
from mig_conformance.simulators.node_gpus import ActiveRun as ActiveRun  # re-exported: sim.py imports them from here
from mig_conformance.simulators.node_gpus import NodeGpus
from mig_conformance.simulators.node_gpus import RunRecord as RunRecord

DEFAULT_PODS = 110  # kubelet's default maxPods


class SimNode(NodeGpus):
    """A node's API-server view (labels, taints, capacity/allocatable) kept in step with its NVML simulator
    (NVML reads and the mig-manager run come from `simulators.node_gpus.NodeGpus`, shared with the local agents)."""

    def __init__(self, spec: NodeSpec, driver: str, taint: bool, clock: Callable[[], float],
                 gpu_reset_works: bool = True, cache: CommandCache | None = None) -> None:
        super().__init__(nv.NvmlSimulator(list(spec.gpus), spec.name, driver_version=driver), clock, gpu_reset_works,
                         cache)
        self.spec = spec
        self.name = spec.name
        self.labels: dict[str, str] = {"kubernetes.io/hostname": spec.name, "kubernetes.io/os": "linux",
                                       "kubernetes.io/arch": "amd64", L.ZONE: spec.zone,
                                       "topology.kubernetes.io/region": REGION, L.GPU_PRESENT: "true"}
        if spec.instance_type:
            self.labels[L.INSTANCE_TYPE] = spec.instance_type
        self.taints = (Taint(L.GPU_TAINT_KEY, "true", "NoSchedule"),) if taint else ()
        self.base: dict[str, int] = {"pods": DEFAULT_PODS}
        if spec.vcpus:
            self.base["cpu"] = spec.vcpus
        if spec.memory_mib:
            self.base["memory"] = spec.memory_mib * 2**20
        self.resources: dict[str, int] = {}
        self.registered: set[str] = set()
        self.plugin_error: str | None = None
        self._gfd_keys: frozenset[str] = frozenset()
        self.applied: str | None = None  # the label value mig-manager last picked up
        self.effective: EffectiveConfig | None = None  # the file mig-manager reads (set when it starts)
        self.runs: list[RunRecord] = []
        self.bottlerocket = spec.os == BOTTLEROCKET
        self.os_image = bottlerocket.SIMULATED_OS_IMAGE if self.bottlerocket else None
        self.boot_plan: bottlerocket.Plan | None = None
        self.boot_settings: bottlerocket.Settings | None = None
        self.state_since = 0.0  # simulated time of mig-manager's last nvidia.com/mig.config.state write

    # ---- Bottlerocket ----------------------------------------------------------------------------------
    def boot_bottlerocket(self, settings: bottlerocket.Settings) -> bottlerocket.Plan:
        """Boot as Bottlerocket does: its migmanager applies the settings' MIG layout (mig-parted's apply on this
        node's NVML stands in for `nvidia-smi mig -cgi`; a mode change that needs it gets a reboot)."""
        self.boot_settings = settings
        self.boot_plan = p = bottlerocket.plan(settings, bottlerocket.Board.of(self.spec.gpus[0]),
                                               len(self.spec.gpus))
        if not self.mig_capable:
            return p
        spec = bottlerocket.spec_of(p)
        if self.parted.apply(spec, bottlerocket.CONFIG_NAME).error is not None:
            self.reboot()
            self.parted.apply(spec, bottlerocket.CONFIG_NAME)
        return p

    # ---- API-server view ------------------------------------------------------------------------------
    def view(self) -> GpuNode:
        capacity = {**self.base, **self.resources}
        return GpuNode(self.name, dict(self.labels), capacity, dict(capacity), self.taints, os_image=self.os_image)

    # ---- device plugin, kubelet and GFD -----------------------------------------------------------------
    def advertise(self, strategy: str, driver: str, plugin_version: str, device_plugin: bool = True) -> bool:
        """Restart the device plugin and GFD on this node; True when allocatable changed. A Bottlerocket node runs
        its own device plugin with the single strategy and no GFD, whatever the ClusterPolicy says.
        `device_plugin=False`: the node runs NVIDIA's DRA driver instead, so no nvidia.com resource is registered
        (GFD still labels)."""
        if self.bottlerocket:
            strategy = bottlerocket.STRATEGY
        states = self.gpu_states()
        result = dp.advertise(strategy, states, version=plugin_version)
        if not device_plugin:
            result = replace(result, resources={}, error=None)
        resources, self.plugin_error = result.resources, result.error
        if self.boot_settings is not None and self.boot_plan is not None:
            resources, self.plugin_error, _ = bottlerocket.advertised(self.boot_settings, self.boot_plan, resources,
                                                                      result.error)
        before = self.resources
        now = dict.fromkeys(self.registered, 0)
        now.update(resources)
        self.registered.update(resources)
        self.resources = dict(sorted(now.items()))
        labels = {} if self.bottlerocket else gfd.labels(strategy, states, driver, self.gpu_names(),
                                                         version=plugin_version)
        for key in self._gfd_keys - labels.keys():
            self.labels.pop(key, None)
        self.labels.update(labels)
        self._gfd_keys = frozenset(labels)
        if self.mig_capable and not self.bottlerocket:
            self.labels["nvidia.com/gpu.deploy.mig-manager"] = "true"
        return before != self.resources
