"""Which named configs exercise which behaviour on a node, and the layout pictures for reports."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from mig_conformance.gpus.catalog import GpuModel
from mig_conformance.mig.config import uniform_config_name
from mig_conformance.mig.placement import fit
from mig_conformance.mig.profile_indices import BASE_GI_INDICES
from mig_conformance.mig.spec import Spec


def uniform_configs(gpu: GpuModel, spec: Spec) -> dict[str, str]:
    """{short size name (1g, 2g, ...): config name} for `all-<profile>` configs in `spec` for this GPU's
    base profiles."""
    out = {}
    for short, index in BASE_GI_INDICES.items():
        p = gpu.profile_by_index(index)
        if p is not None and uniform_config_name(p.name) in spec.configs:
            out[short] = uniform_config_name(p.name)
    return out


def single_strategy_config(gpu: GpuModel, spec: Spec) -> str | None:
    """The uniform config with the most instances (all-1g.*): what single strategy is made for."""
    configs = uniform_configs(gpu, spec)
    if not configs:
        return None
    return configs.get("1g") or next(iter(configs.values()))


def configs_for_node(gpus: Sequence[GpuModel], spec: Spec) -> list[str]:
    """Named configs of `spec` whose entries select at least one of the node's GPUs with MIG enabled."""
    from mig_conformance.gpus.device_ids import DeviceID

    names = []
    for name, entries in spec.configs.items():
        for i, gpu in enumerate(gpus):
            device = DeviceID.from_int(gpu.pci_device_id)
            if any(e.selects(i, device) for e in entries):
                names.append(name)
                break
    return names


def layout_pictures(gpus: Sequence[Any]) -> list[dict[str, Any]]:
    """Per-GPU placement of MIG devices, for the report's SVG pictures (from GpuMigState-like objects)."""
    pictures = []
    for i, state in enumerate(gpus):
        model = state.model
        entry: dict[str, Any] = {"gpu": i, "model": model.key, "slots": model.memory_slots,
                                 "slices": model.compute_slices, "instances": []}
        if state.mig_enabled and state.devices:
            result = fit(model, dict(Counter(state.devices)))
            for gi in result.placement:
                profile = model.profile(gi.profile)
                entry["instances"].append({"profile": gi.profile, "start": gi.start, "size": gi.size,
                                           "slices": profile.slices if profile else 0,
                                           "devices": list(gi.compute_instances)})
        pictures.append(entry)
    return pictures
