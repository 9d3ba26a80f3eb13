"""The GPUs of one simulated node as the on-node GPU Operator agents see them (shared by `sim` and `local`).

* `gpu_states()`: the MIG mode and MIG device names NVML reports, read the way the device plugin and GFD do.
* `mig_manager_run()`: mig-parted's Reconfigure.Run, step by step, through the mig-parted simulator on this node's
  NVML simulator (assert --valid-config, assert, assert --mode-only, pending, apply --mode-only + assert
  --mode-only, rebooting with WITH_REBOOT, apply). It is a generator that yields the seconds each step takes, so the
  `sim` backend runs it on its simulated clock and the `local` agents on the wall clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from mig_conformance.mig import generate as G
from mig_conformance.mig.config import creation_order
from mig_conformance.mig.reconfigure import PENDING, REBOOTING, reconfigure
from mig_conformance.mig.spec import Spec
from mig_conformance.mig.state import GpuMigState
from mig_conformance.simulators import nvml as nv
from mig_conformance.simulators.command_cache import CommandCache
from mig_conformance.simulators.mig_parted import MigParted, new_mig_profile


class NodeGpuError(RuntimeError):
    """NVML reports something the GPU Operator agents cannot interpret (a simulator bug)."""


@dataclass(frozen=True)
class RunRecord:
    """One mig-manager run: the label value, the states it wrote (with their times) and why it failed."""

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


@dataclass(frozen=True)
class DraGpuRead:
    """One GPU as the DRA kubelet plugin reads it: MIG devices are (profile, GI profile ID, start, size, UUID)."""

    minor: int
    model: str
    uuid: str
    name: str
    mig_enabled: bool
    migs: tuple[tuple[str, int, int, int, str], ...]


class NodeGpus:
    """A node's NVML simulator and the mig-parted simulator on it; `current` is the mig-manager run under way."""

    def __init__(self, nvml: nv.NvmlSimulator, clock: Callable[[], float], gpu_reset_works: bool = True,
                 cache: CommandCache | None = None) -> None:
        """`gpu_reset_works=False`: the node exposes no GPU reset (pass-through VMs); it is set on the NVML simulator,
        whose SetMigMode and reset model it (an Ampere mode change then needs a reboot, Hopper and later none)."""
        self.nvml = nvml
        self.clock = clock
        self.cache = cache
        nvml.gpu_reset_works = gpu_reset_works
        self.parted = MigParted(nvml, gpu_outcomes=False, cache=cache)
        self.current: ActiveRun | None = None

    @property
    def mig_capable(self) -> bool:
        return any(g.model.mig_capable for g in self.nvml.gpus)

    # ---- NVML --------------------------------------------------------------------------------------------
    def gpu_states(self) -> tuple[GpuMigState, ...]:
        """Per GPU: MIG mode and MIG device names, read through NVML the way the device plugin does (go-nvlib
        VisitMigDevices, then each device's GetProfile). Read-only, so cached on the NVML state like commands."""
        if self.cache is None or self.nvml.faults.active:
            return self._read_gpu_states()
        return self.cache.get_or_run(("gpu_states", self.nvml.state_key()), self._read_gpu_states)

    def gpu_names(self) -> tuple[str, ...]:
        """Each GPU's NVML device name (what GFD names products after: a board variant reports its own). A board's
        name never changes, so it is read once (again while NVML faults are injected: they may fail the read)."""
        names: tuple[str, ...] | None = getattr(self, "_gpu_names", None)
        if names is None or self.nvml.faults.active:
            names = self._read_gpu_names()
            if not self.nvml.faults.active:
                self._gpu_names = names
        return names

    def _read_gpu_names(self) -> tuple[str, ...]:
        nvml = self.nvml
        nvml.nvmlInit()
        try:
            return tuple(nvml.nvmlDeviceGetName(nvml.nvmlDeviceGetHandleByIndex(i)) for i in range(len(nvml.gpus)))
        finally:
            nvml.nvmlShutdown()

    def _read_gpu_states(self) -> tuple[GpuMigState, ...]:
        nvml = self.nvml
        out = []
        nvml.nvmlInit()
        try:
            for i, gpu in enumerate(nvml.gpus):
                handle = nvml.nvmlDeviceGetHandleByIndex(i)
                enabled, migs, total = self._mig_devices(handle)
                names = [self._mig_device_name(handle, mig, total) for mig in migs]
                out.append(GpuMigState(gpu.model, enabled, creation_order(names)))
        finally:
            nvml.nvmlShutdown()
        return tuple(out)

    def _mig_devices(self, handle: nv.DeviceHandle) -> tuple[bool, list[nv.MigDeviceHandle], int]:
        """(MIG enabled, its MIG device handles in index order, the GPU's memory): go-nvlib VisitMigDevices, the walk
        the device plugin and the DRA kubelet plugin both make (NVML is initialised by the caller)."""
        nvml = self.nvml
        try:
            enabled = nvml.nvmlDeviceGetMigMode(handle)[0] == nv.NVML_DEVICE_MIG_ENABLE
        except nv.NVMLError_NotSupported:
            return False, [], 0
        if not enabled:
            return False, [], 0
        total = nvml.nvmlDeviceGetMemoryInfo(handle).total
        migs: list[nv.MigDeviceHandle] = []
        for j in range(nvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
            try:
                migs.append(nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, j))
            except nv.NVMLError_NotFound:
                continue
        return True, migs, total

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
        raise NodeGpuError(f"{nvml.name}: MIG device {mig} matches no GPU/compute instance profile")

    def discover_profiles(self) -> list[list[G.Discovered]]:
        """mig-parted's discovery.DiscoverMIGProfiles on this node's NVML: per MIG-capable GPU, go-nvlib's profile
        list without compute-instance profiles, with the GI profile's InstanceCount (the A30's fixed list instead).
        Raises NoMigCapableDevices / NoProfilesDiscovered as it does (docs/reference/mig-parted.md#generated-config);
        an R535 driver lists no profiles while MIG is disabled, so a fresh node with one gets the latter."""
        nvml, parted = self.nvml, self.parted
        found: list[list[G.Discovered]] = []
        capable = 0
        nvml.nvmlInit()
        try:
            for i in range(len(nvml.gpus)):
                if not parted.is_mig_capable(i):
                    continue
                capable += 1
                handle = nvml.nvmlDeviceGetHandleByIndex(i)
                device_id = f"0x{nvml.nvmlDeviceGetPciInfo(handle).pciDeviceId:08X}"
                if device_id == G.A30_DEVICE_ID:
                    found.append(G.device_profiles(nvml.gpus[i].model, device_id))
                    continue
                profiles: list[G.Discovered] = []
                for p in parted._read_device_profiles(i):
                    if p.name.is_compute_instance:
                        continue
                    try:
                        count = nvml.nvmlDeviceGetGpuInstanceProfileInfo(handle, p.gi_index).instanceCount
                    except nv.NVMLError:
                        continue  # discovery logs a warning and skips the profile
                    if all(q.name != str(p) for q in profiles):
                        profiles.append(G.Discovered(str(p), count, device_id, p.name.g, not p.name.attributes))
                if profiles:
                    found.append(profiles)
        finally:
            nvml.nvmlShutdown()
        return G.checked(found, capable)

    def generated_configs(self) -> G.Configs:
        """What mig-manager >= v0.14.0 generates on this node (raises like `discover_profiles`)."""
        return G.build(self.discover_profiles())

    def dra_inventory(self) -> tuple[DraGpuRead, ...]:
        """What NVIDIA's DRA kubelet plugin reads when it starts (nvlib.go enumerateAllPossibleDevices): per GPU its
        minor (= index here), UUID, NVML name, MIG mode, and each MIG device's profile (go-nvlib name), GI profile
        ID, GI placement and UUID."""
        nvml = self.nvml
        out: list[DraGpuRead] = []
        nvml.nvmlInit()
        try:
            for i, gpu in enumerate(nvml.gpus):
                handle = nvml.nvmlDeviceGetHandleByIndex(i)
                enabled, handles, total = self._mig_devices(handle)
                migs: list[tuple[str, int, int, int, str]] = []
                for mig in handles:
                    gi = nvml.nvmlDeviceGetGpuInstanceById(handle, nvml.nvmlDeviceGetGpuInstanceId(mig))
                    info = nvml.nvmlGpuInstanceGetInfo(gi)
                    migs.append((self._mig_device_name(handle, mig, total), info.profileId, info.placement.start,
                                 info.placement.size, nvml.nvmlDeviceGetUUID(mig)))
                out.append(DraGpuRead(i, gpu.model.key, nvml.nvmlDeviceGetUUID(handle),
                                      nvml.nvmlDeviceGetName(handle), enabled, tuple(migs)))
        finally:
            nvml.nvmlShutdown()
        return tuple(out)

    def reboot(self) -> None:
        """Pending MIG modes take effect; GPU and compute instances do not survive a reboot."""
        self.nvml.reboot()

    # ---- mig-manager ------------------------------------------------------------------------------------
    def mig_manager_run(self, spec: Spec, selected: str, with_reboot: bool, step: float,
                        set_state: Callable[[str], None]) -> Iterator[float]:
        """Reconfigure.Run on this node (`mig.reconfigure.reconfigure` over the mig-parted simulator); yields the
        seconds each step takes (see module doc): `pending` and `rebooting` each last `step` seconds."""
        run = self.current
        assert run is not None
        for transition in reconfigure(_SimulatedCommands(self, spec, selected), with_reboot):
            run.states.append((self.clock(), transition.state))
            run.mode_change = transition.mode_change
            if transition.reason:
                run.reason = transition.reason
            set_state(transition.state)
            if transition.state in (PENDING, REBOOTING):
                yield step


class _SimulatedCommands:
    """mig-parted's commands for one selected config, run by the mig-parted simulator on the node's NVML
    (`mig.reconfigure.MigPartedCommands`)."""

    def __init__(self, node: NodeGpus, spec: Spec, selected: str) -> None:
        self.node, self.spec, self.selected = node, spec, selected

    def assert_valid(self) -> str | None:
        return self.node.parted.assert_config(self.spec, self.selected, valid_config=True).error

    def assert_applied(self) -> bool:
        return self.node.parted.assert_config(self.spec, self.selected).ok

    def assert_mode(self) -> str | None:
        return self.node.parted.assert_config(self.spec, self.selected, mode_only=True).error

    def apply_mode(self) -> str | None:
        return self.node.parted.apply(self.spec, self.selected, mode_only=True).error

    def apply(self) -> str | None:
        return self.node.parted.apply(self.spec, self.selected).error

    def reboot(self) -> None:
        self.node.reboot()
