"""The simulated node `validate` runs mig-parted on: a fresh node of the given GPUs (MIG disabled, no MIG devices),
with each GPU's board (PCI device and subsystem IDs), and nvidia-mig-parted's apply then assert on it.

This is why validation sits above the simulators: its `mig_parted` verdict is not predicted but observed on the
simulator, so it agrees with mig-parted's own behaviour in its corner cases."""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import replace
from typing import Any

from mig_conformance.common.identity import ByIdentity
from mig_conformance.gpus.catalog import GpuModel, GpuVariant
from mig_conformance.gpus.device_ids import DeviceID
from mig_conformance.mig.spec import Spec
from mig_conformance.simulators import nvml as nv
from mig_conformance.simulators.mig_parted import MigParted, MigPartedResult

FRESH_NODE = "every GPU MIG-disabled, without MIG devices"


@functools.lru_cache(maxsize=256)
def _board_with_pci_id(model: ByIdentity[GpuModel], device: int) -> GpuVariant:
    """The board of `model` that reports PCI ID `device`: the catalog's variant, else (an ID the catalog does not
    know, given by the caller) the primary board with that ID, unconfirmed. One object per (model, ID)."""
    gpu: GpuModel = model.obj
    known = next((v for v in gpu.variants if v.pci_device_id_int == device), None)
    if known is not None:
        return known
    return replace(gpu.primary_variant, key=f"{gpu.key}@0x{device:08X}", pci_device_id=f"0x{device:08X}",
                   primary=False, confirmed=False, reason="a PCI device ID the catalog does not list for this GPU")


def simulated_node(gpus: list[GpuModel], name: str = "", device_ids: list[DeviceID] | None = None
                   ) -> nv.NvmlSimulator:
    """A fresh simulated node of `gpus` (PCI order), with `device_ids` as their PCI IDs where given."""
    boards: list[GpuModel | GpuVariant] = list(gpus)
    for i, did in enumerate(device_ids or ()):
        packed = did.device << 16 | did.vendor
        if packed != gpus[i].pci_device_id:
            boards[i] = _board_with_pci_id(ByIdentity(gpus[i]), packed)
    node = nv.NvmlSimulator(boards, name or "validate")
    for i, did in enumerate(device_ids or ()):
        if did.subsystem_device is not None and did.subsystem_vendor is not None:
            node.gpus[i].subsystem_id = did.subsystem_device << 16 | did.subsystem_vendor
    return node


def node_device_ids(node: nv.NvmlSimulator) -> list[DeviceID]:
    """The IDs mig-parted matches device filters against (device, vendor, subsystem), in PCI order."""
    return [DeviceID(g.variant.pci_device_id_int >> 16, g.variant.pci_device_id_int & 0xFFFF, g.subsystem_id >> 16,
                     g.subsystem_id & 0xFFFF) for g in sorted(node.gpus, key=lambda g: g.bus_id)]


def after_apply(node: nv.NvmlSimulator, i: int) -> dict[str, Any]:
    gpu = node.gpus[i]
    if not gpu.model.mig_capable:
        return {"mig_enabled": None, "devices": {}}
    names = Counter(ci for gi in node.mig_layout(i) for ci in gi["compute_instances"])
    return {"mig_enabled": gpu.mig_current == nv.NVML_DEVICE_MIG_ENABLE, "devices": dict(sorted(names.items()))}


def _summary(result: MigPartedResult) -> dict[str, Any]:
    return {"exit_code": result.exit_code, "message": result.error or (result.stdout[-1] if result.stdout else None),
            "reason": result.detail}


def run_mig_parted(spec: Spec, config: str | None, node: nv.NvmlSimulator) -> dict[str, Any]:
    """`nvidia-mig-parted apply` then `assert` of the config on `node`, as the report's `mig_parted` fields."""
    parted = MigParted(node, gpu_outcomes=False)
    parted.debug_log = False  # the report keeps results and the assert's reason, not the debug log
    applied = parted.apply(spec, config)
    asserted = parted.assert_config(spec, config)
    return {"node": FRESH_NODE, "apply": "success" if applied.ok else "failure",
            "assert_after_apply": "success" if asserted.ok else "failure",
            "apply_result": _summary(applied), "assert_result": _summary(asserted)}
