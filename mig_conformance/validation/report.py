"""What `validate` answers for one config on one node: per-GPU plans, located errors and warnings, and what the
simulated mig-parted did with the config."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mig_conformance.common.errors import Problem
from mig_conformance.mig.placement import FitResult


@dataclass
class GpuPlan:
    """What the selected config asks of one GPU, what the kit's placement yields, and what the simulated
    mig-parted apply left on it (`after_apply`)."""

    index: int
    model: str
    device_id: str
    entry: int | None
    mig_enabled: bool | None
    devices: dict[str, int] = field(default_factory=dict)
    fit: FitResult | None = None
    after_apply: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "model": self.model, "device_id": self.device_id, "entry": self.entry,
                "mig_enabled": self.mig_enabled, "devices": self.devices,
                "placement": [p.as_dict() for p in self.fit.placement] if self.fit and self.fit.fits else [],
                "after_apply": self.after_apply}


@dataclass
class ValidationReport:
    """Errors make a config invalid; warnings are facts the user should know (e.g. assert behaviour).

    `input_error` marks a report whose input could not be used at all (the text is not YAML, or the named
    config cannot be selected): the CLI exits 2 for those, 1 for other invalid configs.
    """

    file: str
    config: str | None
    node: str
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    gpus: list[GpuPlan] = field(default_factory=list)
    mig_parted: dict[str, Any] = field(default_factory=dict)
    input_error: bool = False

    @property
    def valid(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {"valid": self.valid, "file": self.file, "config": self.config, "node": self.node,
                "errors": [e.as_dict() for e in self.errors], "warnings": [w.as_dict() for w in self.warnings],
                "gpus": [g.as_dict() for g in self.gpus], "mig_parted": self.mig_parted}


def mig_parted_text(mig_parted: dict[str, Any]) -> str:
    """`apply: failure (why); assert after apply: failure (why)`: what the simulated mig-parted did with a config on a
    fresh node (a report's `mig_parted` fields), in one line."""
    parts = []
    for label, key, result_key in (("apply", "apply", "apply_result"),
                                   ("assert after apply", "assert_after_apply", "assert_result")):
        result = mig_parted.get(result_key) or {}
        detail = result.get("reason") or (result.get("message") if mig_parted.get(key) == "failure" else None)
        parts.append(f"{label}: {mig_parted.get(key)}" + (f" ({detail})" if detail else ""))
    return "; ".join(parts)
