"""What nvidia-mig-manager does on a node when its `nvidia.com/mig.config` label changes: the projection's answer.

The run itself is `mig.reconfigure.reconfigure` (shared with the simulators); mig-parted's commands are computed in
closed form by `mig.apply_model.ModelledParted`. mig-manager acts only on a change of the label's value (its
informer's update handler compares old and new values; NVIDIA/mig-parted v0.15.0
`cmd/nvidia-mig-manager/main.go`), so relabelling a node with the value it has runs nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mig_conformance.common.identity import ByIdentity
from mig_conformance.gpus.catalog import GpuModel
from mig_conformance.mig.apply_model import ModelledParted
from mig_conformance.mig.default_config import default_spec
from mig_conformance.mig.reconfigure import reconfigure
from mig_conformance.mig.spec import Spec
from mig_conformance.mig.state import GpuMigState, initial_states, same_models


@dataclass(frozen=True)
class MigManagerOutcome:
    """One mig-manager run: label values in order, the final one, why it failed, and the GPUs afterwards."""

    states: tuple[str, ...]
    state: str | None  # success | failed; None when the node has no nvidia.com/mig.config label
    reason: str | None
    gpus: tuple[GpuMigState, ...]
    mode_change: bool
    notes: tuple[str, ...] = ()  # real mig-parted behaviour worth knowing even on success

    def as_dict(self) -> dict[str, Any]:
        return {"states": list(self.states), "state": self.state, "reason": self.reason,
                "mode_change": self.mode_change, "notes": list(self.notes),
                "gpus": [g.as_dict() for g in self.gpus]}


@functools.lru_cache(maxsize=4096)
def _reconcile(spec_key: ByIdentity[Spec], models_key: tuple[ByIdentity[GpuModel], ...], selected: str,
               before: tuple[GpuMigState, ...], with_reboot: bool, reset_works: bool) -> MigManagerOutcome:
    spec: Spec = spec_key.obj
    models: tuple[GpuModel, ...] = tuple(m.obj for m in models_key)
    parted = ModelledParted(spec, selected, models, before, reset_works)
    transitions = list(reconfigure(parted, with_reboot))
    last = transitions[-1]
    return MigManagerOutcome(tuple(t.state for t in transitions), last.state, last.reason, parted.states(),
                             last.mode_change, parted.notes)


def reconcile(gpus: Sequence[GpuModel], spec: Spec | None, selected: str | None,
              current: Sequence[GpuMigState] | None = None, with_reboot: bool = False,
              gpu_reset_works: bool = True) -> MigManagerOutcome:
    """One mig-manager run on a node whose GPUs are in `current` state, for the label value `selected`.

    `spec` None = the shipped default ConfigMap; `current` None = a fresh node (MIG disabled everywhere); `selected`
    None = no label (nothing runs). Memoized on (spec identity, GPU model identities, selection, current state,
    with_reboot): treat specs as immutable.
    """
    models = tuple(gpus)
    before = tuple(current) if current is not None else initial_states(models)
    if not same_models(before, models):
        raise ValueError("current GPU states must list the same GPU models as gpus, in the same order")
    if selected is None:
        return MigManagerOutcome((), None, None, before, False)
    return _reconcile(ByIdentity(spec if spec is not None else default_spec()),
                      tuple(ByIdentity(m) for m in models), selected, before, with_reboot, gpu_reset_works)
