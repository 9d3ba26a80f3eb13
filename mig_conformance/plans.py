"""Which named configs exercise which behaviour on a node, and the layout pictures for reports."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from .catalog import GpuModel
from .mig.spec import Spec
from .placement import fit

# NVML profile indices of the base (attribute-free) GI profiles, small to large, with short names.
BASE_INDICES = {"1g": 0, "1g.2x": 9, "2g": 1, "3g": 2, "4g": 3, "7g": 4}


def config_name_for(profile: str) -> str:
    """The default ConfigMap's naming: all-<profile> with '+' written as '.'."""
    return "all-" + profile.replace("+", ".")


def uniform_configs(gpu: GpuModel, spec: Spec) -> dict[str, str]:
    """{short size name (1g, 2g, ...): config name} for `all-<profile>` configs in `spec` for this GPU's
    base profiles."""
    out = {}
    for short, index in BASE_INDICES.items():
        p = gpu.profile_by_index(index)
        if p is not None and config_name_for(p.name) in spec.configs:
            out[short] = config_name_for(p.name)
    return out


def single_strategy_config(gpu: GpuModel, spec: Spec) -> str | None:
    """The uniform config with the most instances (all-1g.*): what single strategy is made for."""
    configs = uniform_configs(gpu, spec)
    if not configs:
        return None
    return configs.get("1g") or next(iter(configs.values()))


def configs_for_node(gpus: Sequence[GpuModel], spec: Spec) -> list[str]:
    """Named configs of `spec` whose entries select at least one of the node's GPUs with MIG enabled."""
    from .mig.device import DeviceID

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
