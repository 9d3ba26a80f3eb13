"""Report bundle: the result collector fed by a real pytest run (a subprocess). The rest of the report bundle
(summary.json, SVG, markdown/HTML, scrubbing, CLI): tests/unit/test_report.py."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mig_conformance.report import RunSummary

pytestmark = pytest.mark.slow  # pytest in a subprocess


def test_collector_with_real_pytest_reports(tmp_path: Path) -> None:
    """Feed the collector from a real pytest run (skip tuples, xfail, failures, records via record_property)."""
    (tmp_path / "conftest.py").write_text(textwrap.dedent("""
        import json
        from mig_conformance.report import ResultCollector

        collector = ResultCollector(run_id="x")

        def pytest_runtest_logreport(report):
            collector.add_pytest_report(report)

        def pytest_sessionfinish(session, exitstatus):
            s = collector.summary(started=0.0, finished=1.0, exitstatus=int(exitstatus))
            (session.config.rootpath / "summary.json").write_text(s.to_json())
    """))
    (tmp_path / "test_x.py").write_text(textwrap.dedent("""
        import pytest

        def test_ok(record_property):
            record_property("mig_result", {"category": "single", "node": "n1", "expected": {"a": 1},
                                           "measured": {"a": 1}})

        def test_bad(record_property):
            record_property("mig_result", {"category": "single", "node": "n1", "expected": {"a": 1},
                                           "measured": {"a": 2}})
            assert 2 == 1, "allocatable differs"

        @pytest.mark.skip(reason="no such node")
        def test_skipped():
            pass

        @pytest.mark.xfail(reason="known gap", strict=True)
        def test_xfail():
            assert False
    """))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:mig_conformance",
                           str(tmp_path)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    s = RunSummary.from_json((tmp_path / "summary.json").read_text())
    by_name = {t.nodeid.split("::")[1]: t for t in s.tests}
    assert {k: t.outcome for k, t in by_name.items()} == {
        "test_ok": "passed", "test_bad": "failed", "test_skipped": "skipped", "test_xfail": "skipped"}
    assert by_name["test_bad"].message.startswith("AssertionError: allocatable differs")
    assert by_name["test_skipped"].message == "Skipped: no such node"
    assert by_name["test_bad"].measured == {"a": 2} and s.nodes[0].node == "n1"
