"""`validate`: a named mig-parted config on a node's GPUs — the plan per GPU, located problems, and what
nvidia-mig-parted's apply and assert do with it on a simulated node (see validate.py)."""

from mig_conformance.validation.report import GpuPlan, ValidationReport
from mig_conformance.validation.validate import validate_node

__all__ = ["GpuPlan", "ValidationReport", "validate_node"]
