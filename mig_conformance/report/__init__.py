"""Report bundle: summary.json, report.md, report.html (with GPU pictures), TARGET.yaml and evidence.

Pure Python, no pytest import: the plugin feeds `ResultCollector` on the controller and calls `write_bundle`.
"""

from __future__ import annotations

from mig_conformance.report.bundle import rerender, write_bundle
from mig_conformance.report.collector import ResultCollector
from mig_conformance.report.model import ReportFormatError, RunSummary, TestResult

__all__ = ["ReportFormatError", "ResultCollector", "RunSummary", "TestResult", "rerender", "write_bundle"]
