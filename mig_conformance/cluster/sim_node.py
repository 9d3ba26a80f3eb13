"""One simulated GPU node: its NVML simulator and the GPU Operator agents that act on it.

* mig-manager (`mig_manager_run`): mig-parted's Reconfigure.Run, step by step, through the mig-parted simulator on
  this node's NVML simulator (assert --valid-config, assert, assert --mode-only, pending, apply --mode-only + assert
  --mode-only, rebooting with WITH_REBOOT, apply). It is a generator: it yields the seconds each step takes, so the
  cluster can run it on its simulated clock.
* device plugin + kubelet (`advertise`): the MIG devices NVML reports -> `GpuMigState` -> `device_plugin.advertise`.
  Resource names registered earlier and not now stay at 0, as kubelet keeps them.
* GFD (`advertise`): `gfd.labels` from the same states; labels GFD set before and not now are removed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ..k8s import device_plugin, gfd
from ..k8s import labels as L
from ..k8s.mig_manager import FAILED, PENDING, REBOOT_DID_NOT_HELP, REBOOTING, RESET_ARCHITECTURES, SUCCESS
from ..k8s.state import GpuMigState, creation_order
from ..mig.spec import Spec
from ..simulators import nvml as nv
from ..simulators.mig_parted import MigParted, new_mig_profile
from .base import ClusterError
from .model import GpuNode, Taint
from .sim_fleet import REGION, NodeSpec

DEFAULT_PODS = 110  # kubelet's default maxPods


@dataclass(frozen=True)
class RunRecord:
    """One mig-manager run: the label value, the states it wrote (with simulated times) and why it failed."""

    config: str
    started: float
    states: tuple[tuple[float, str], ...] = ()
    reason: str | None = None
    mode_change: bool = False


@dataclass
class ActiveRun:
    config: str
    started: float
    states: list[tuple[float, str]] = field(default_factory=list)
    reason: str | None = None
    mode_change: bool = False

    def record(self) -> RunRecord:
        return RunRecord(self.config, self.started, tuple(self.states), self.reason, self.mode_change)


class SimNode:
    """A node's API-server view (labels, taints, capacity/allocatable) kept in step with its NVML simulator."""

    def __init__(self, spec: NodeSpec, driver: str, taint: bool, clock: Callable[[], float],
                 gpu_reset_works: bool = True) -> None:
        self.spec = spec
        self.clock = clock
        self.name = spec.name
        self.nvml = nv.NvmlSimulator(list(spec.gpus), spec.name, driver_version=driver)
        reset_all = None if gpu_reset_works else self._reset_that_needs_a_reboot
        self.parted = MigParted(self.nvml, reset_all, gpu_outcomes=False)
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
        self.runs: list[RunRecord] = []
        self.current: ActiveRun | None = None

    # ---- API-server view ------------------------------------------------------------------------------
    @property
    def mig_capable(self) -> bool:
        return any(g.mig_capable for g in self.spec.gpus)

    def view(self) -> GpuNode:
        capacity = {**self.base, **self.resources}
        return GpuNode(self.name, dict(self.labels), capacity, dict(capacity), self.taints)

    # ---- NVML --------------------------------------------------------------------------------------------
    def gpu_states(self) -> tuple[GpuMigState, ...]:
        """Per GPU: MIG mode and MIG device names, read through NVML the way the device plugin does (go-nvlib
        VisitMigDevices, then each device's GetProfile)."""
        nvml = self.nvml
        out = []
        nvml.nvmlInit()
        try:
            for i, gpu in enumerate(nvml.gpus):
                handle = nvml.nvmlDeviceGetHandleByIndex(i)
                try:
                    enabled = nvml.nvmlDeviceGetMigMode(handle)[0] == nv.NVML_DEVICE_MIG_ENABLE
                except nv.NVMLError_NotSupported:
                    enabled = False
                names: list[str] = []
                if enabled:
                    total = nvml.nvmlDeviceGetMemoryInfo(handle).total
                    for j in range(nvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
                        try:
                            mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, j)
                        except nv.NVMLError_NotFound:
                            continue
                        names.append(self._mig_device_name(handle, mig, total))
                out.append(GpuMigState(gpu.model, enabled, creation_order(names)))
        finally:
            nvml.nvmlShutdown()
        return tuple(out)

    def _mig_device_name(self, parent: nv.DeviceHandle, mig: nv.MigDeviceHandle, total: int) -> str:
        """go-nvlib migDevice.GetProfile: find the GI and CI profile indices of the device, then NewMigProfile."""
        nvml = self.nvml
        memory = nvml.nvmlDeviceGetAttributes(mig).memorySizeMB
        gi = nvml.nvmlDeviceGetGpuInstanceById(parent, nvml.nvmlDeviceGetGpuInstanceId(mig))
        gi_profile_id = nvml.nvmlGpuInstanceGetInfo(gi).profileId
        ci_id = nvml.nvmlDeviceGetComputeInstanceId(mig)
        for i in range(nv.NVML_GPU_INSTANCE_PROFILE_COUNT):
            try:
                if nvml.nvmlDeviceGetGpuInstanceProfileInfo(parent, i).id != gi_profile_id:
                    continue
            except (nv.NVMLError_NotSupported, nv.NVMLError_InvalidArgument):
                continue
            for j in range(nv.NVML_COMPUTE_INSTANCE_PROFILE_COUNT):
                try:
                    info = nvml.nvmlGpuInstanceGetComputeInstanceProfileInfo(gi, j, 0)
                except (nv.NVMLError_NotSupported, nv.NVMLError_InvalidArgument):
                    continue
                if any(nvml.nvmlComputeInstanceGetInfo(ci).id == ci_id
                       for ci in nvml.nvmlGpuInstanceGetComputeInstances(gi, info.id)):
                    return str(new_mig_profile(i, j, 0, memory, total))
        raise ClusterError(f"{self.name}: MIG device {mig} matches no GPU/compute instance profile")

    def reboot(self) -> None:
        """Pending MIG modes take effect; GPU and compute instances do not survive a reboot."""
        for gpu in self.nvml.gpus:
            if gpu.model.mig_capable:
                gpu.mig_current = gpu.mig_pending
            gpu.gis.clear()

    def _reset_that_needs_a_reboot(self) -> None:
        """`nvidia-smi -r` where a reset cannot complete a mode change (some VMs): only GPUs that switch MIG mode
        without a reset (Hopper and later) take the new mode; a pending change on the others needs a reboot."""
        pending = [i for i, g in enumerate(self.nvml.gpus) if g.model.mig_capable and g.mig_current != g.mig_pending]
        stuck = [i for i in pending if self.nvml.gpus[i].model.architecture in RESET_ARCHITECTURES]
        self.nvml.reset([i for i in pending if i not in stuck])
        if stuck:
            raise nv.NVMLError_ResetRequired()

    # ---- device plugin, kubelet and GFD -----------------------------------------------------------------
    def advertise(self, strategy: str, driver: str, plugin_version: str) -> bool:
        """Restart the device plugin and GFD on this node; True when allocatable changed."""
        states = self.gpu_states()
        result = device_plugin.advertise(strategy, states, version=plugin_version)
        self.plugin_error = result.error
        before = self.resources
        now = dict.fromkeys(self.registered, 0)
        now.update(result.resources)
        self.registered.update(result.resources)
        self.resources = dict(sorted(now.items()))
        labels = gfd.labels(strategy, states, driver)
        for key in self._gfd_keys - labels.keys():
            self.labels.pop(key, None)
        self.labels.update(labels)
        self._gfd_keys = frozenset(labels)
        if self.mig_capable:
            self.labels["nvidia.com/gpu.deploy.mig-manager"] = "true"
        return before != self.resources

    # ---- mig-manager ------------------------------------------------------------------------------------
    def mig_manager_run(self, spec: Spec, selected: str, with_reboot: bool, step: float,
                        set_state: Callable[[str], None]) -> Iterator[float]:
        """Reconfigure.Run on this node; yields the simulated seconds each step takes (see module doc).

        `pending` and `rebooting` each last `step` seconds; the final state follows at once otherwise.
        """
        run = self.current
        assert run is not None
        parted = self.parted

        def state(value: str, reason: str | None = None) -> None:
            run.states.append((self.clock(), value))
            if reason:
                run.reason = reason
            set_state(value)

        rebooted = False
        while True:
            valid = parted.assert_config(spec, selected, valid_config=True)
            if not valid.ok:
                state(FAILED, valid.error)
                return
            if parted.assert_config(spec, selected).ok:
                state(SUCCESS)
                return
            mode_change = not parted.assert_config(spec, selected, mode_only=True).ok
            run.mode_change = run.mode_change or mode_change
            if mode_change and rebooted:
                state(FAILED, REBOOT_DID_NOT_HELP)
                return
            state(PENDING)
            yield step
            error = parted.apply(spec, selected, mode_only=True).error
            if error is None:
                error = parted.assert_config(spec, selected, mode_only=True).error
            if error and with_reboot:
                state(REBOOTING, error)
                yield step
                self.reboot()
                rebooted = True
                continue
            applied = parted.apply(spec, selected)  # a failed mode change without WITH_REBOOT is ignored
            state(FAILED if applied.error else SUCCESS, applied.error)
            return
