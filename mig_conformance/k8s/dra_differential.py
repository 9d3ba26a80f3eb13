"""Dynamic MIG differential: does a multiset of MIG profiles fit on one GPU, by the kit's placement engine
(`mig/placement.py`: NVML's placements and rules) and by DRA's counter arithmetic on the driver's partitionable
devices (`k8s/dra_dynamic.py`), allocated as one claim by kube-scheduler (the real one on `local`, or the kit's
model of its allocator, `k8s/dra_alloc.py`). The two must agree; benchmarks/dra_dynamic_differential.py runs it.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mig_conformance.gpus.catalog import GpuModel
from mig_conformance.k8s import dra
from mig_conformance.k8s import stack as S
from mig_conformance.k8s.dra_alloc import Claim, Inventory
from mig_conformance.mig.placement import fit
from mig_conformance.mig.state import GpuMigState

MAX_DEVICES = 8


def profiles(gpu: GpuModel) -> list[str]:
    """The profiles dynamic MIG advertises (every GI profile with its full compute instance)."""
    return [gi.name for gi in gpu.gi_profiles]


def random_case(gpu: GpuModel, rng: random.Random, max_devices: int = MAX_DEVICES) -> dict[str, int]:
    """A random multiset of 1..max_devices profiles: smaller profiles more often, so that both outcomes occur."""
    names = profiles(gpu)
    weights = [1.0 / max(1, gi.slices) for gi in gpu.gi_profiles]
    out: dict[str, int] = {}
    for name in rng.choices(names, weights, k=rng.randint(1, max_devices)):
        out[name] = out.get(name, 0) + 1
    return dict(sorted(out.items()))


def claim_object(name: str, case: Mapping[str, int]) -> dict[str, Any]:
    """One ResourceClaim: a request per profile with its count, all from class mig.nvidia.com."""
    requests = [{"name": f"r{i}", "exactly": {"deviceClassName": dra.MIG_CLASS, "count": n, "selectors": [
        {"cel": {"expression": dra.profile_selector(p)}}]}} for i, (p, n) in enumerate(sorted(case.items()))]
    return {"apiVersion": dra.API_VERSION, "kind": "ResourceClaim", "metadata": {"name": name},
            "spec": {"devices": {"requests": requests}}}


def placement_fits(gpu: GpuModel, case: Mapping[str, int]) -> bool:
    return fit(gpu, case).fits


@dataclass
class KitAllocator:
    """The kit's model of the scheduler on one GPU's partitionable devices (one inventory, reset per case)."""

    gpu: GpuModel
    node: str = "n"
    profile: S.StackProfile = field(default_factory=S.default)
    _inventory: Inventory | None = None

    def inventory(self) -> Inventory:
        if self._inventory is None:
            state = GpuMigState(self.gpu, self.gpu.architecture == "ampere", ())
            p = dra.project_states(self.node, [state], self.profile, dynamic=True)
            self._inventory = Inventory.build(p.slices, p.classes)
        inv = self._inventory
        inv.in_use.clear()
        inv.consumed.clear()
        return inv

    def allocates(self, case: Mapping[str, int]) -> bool:
        return self.inventory().allocate([Claim.from_api(claim_object("c", case))], self.node) is not None


@dataclass(frozen=True)
class Disagreement:
    gpu: str
    case: dict[str, int]
    placement: bool
    scheduler: bool
    reason: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"gpu": self.gpu, "case": self.case, "placement_fits": self.placement,
                "scheduler_allocates": self.scheduler, "placement_reason": self.reason}


def compare(gpu: GpuModel, case: Mapping[str, int], allocated: bool) -> Disagreement | None:
    result = fit(gpu, case)
    if result.fits == allocated:
        return None
    return Disagreement(gpu.key, dict(case), result.fits, allocated, result.reason)
