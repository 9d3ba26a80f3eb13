"""Instance types whose GPUs could run MIG but whose platform does not let them (p6e-gb200 with the EKS AMI: driver
580 enables CDMM on Grace systems). Every prediction for a MIG config there is "not applicable", with the reason the
instance-type table gives (fixtures/instance-types.yaml `mig_available`, `mig_reason`)."""

from __future__ import annotations

from mig_conformance.common.errors import Problem
from mig_conformance.gpus.instance_types import get_instance_type
from mig_conformance.validation.report import ValidationReport

NOT_APPLICABLE = "not applicable"


def mig_unavailable(instance_type: str | None) -> str | None:
    """Why MIG is not available on this instance type, or None (no type given, or MIG is available)."""
    return get_instance_type(instance_type).mig_unavailable if instance_type else None


def mark_not_applicable(report: ValidationReport, reason: str) -> ValidationReport:
    """A report for a config that enables MIG on a type without MIG: invalid, with the type's reason."""
    enabled = [g.index for g in report.gpus if g.mig_enabled]
    if enabled or not report.gpus:
        gpus = ", ".join(map(str, enabled)) or "-"
        report.errors.insert(0, Problem(f"{NOT_APPLICABLE}: {reason}; config '{report.config}' enables MIG on "
                                        f"GPU {gpus}"))
    return report
