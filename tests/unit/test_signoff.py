"""The vendor sign-off page (issue 13 item 4): built from the catalog and the run's tests, kept in summary.json,
rendered first in report.md and report.html."""

from __future__ import annotations

from mig_conformance.report.model import RunSummary, TestResult
from mig_conformance.report.render_html import render_html
from mig_conformance.report.render_md import render_md
from mig_conformance.report.signoff import build_signoff


def _summary() -> RunSummary:
    common = {"node": "n1", "instance_type": "p5.48xlarge", "gpu_model": "H100-80GB"}
    tests = [
        TestResult("suites/test_x.py::test_every_slice_is_schedulable[n1]", "passed", category="scheduling",
                   config="all-balanced", strategy="mixed", measured={"mig-1g.10gb": 16}, **common),
        TestResult("suites/test_x.py::test_all_balanced[n1]", "failed", category="all-balanced",
                   config="all-balanced", strategy="mixed", expected={"mig-3g.40gb": 8},
                   measured={"mig-3g.40gb": 7}, message="one GPU kept its old layout", **common),
    ]
    return RunSummary(run_id="r", verdict="Failed", started="s", finished="f", duration_s=1.0, tests=tests)


def test_signoff_of_a_shipped_type_shows_predictions_and_mismatches() -> None:
    summary = _summary()
    (entry,) = build_signoff(summary)
    assert entry["instance_type"]["origin"] == "shipped" and entry["gpu"]["origin"] == "shipped"
    assert entry["gpu"]["how"] == "captured on driver 580.159.04" and len(entry["gpu"]["captured_rows"]) == 7
    assert entry["layouts"] == {"count": 127, "maximal": 44}
    balanced = {r["strategy"]: r for r in entry["configs"] if r["config"] == "all-balanced"}
    assert balanced["mixed"]["verdict"] == "applies" and balanced["mixed"]["run"] == "failed"
    assert balanced["single"]["verdict"] == "device plugin fails" and balanced["single"]["run"] is None
    assert [r["outcome"] for r in entry["scheduling"]] == ["passed"]
    (mismatch,) = entry["mismatches"]
    assert mismatch["expected"] == {"mig-3g.40gb": 8} and mismatch["measured"] == {"mig-3g.40gb": 7}
    assert "8" in mismatch["comparison"] and "7" in mismatch["comparison"]
    summary.signoff = build_signoff(summary)
    again = RunSummary.from_json(summary.to_json())  # `report DIR` re-renders it as it was
    assert again.signoff == summary.to_dict()["signoff"]
    md = render_md(again)
    assert md.index("## Sign-off: p5.48xlarge: 8 x H100-80GB") < md.index("| Run ID |")
    assert "### Mismatches: simulated expectation beside the measured value" in md
    html = render_html(again)
    assert html.count('class="gi"') == sum(len(p["instances"]) for p in entry["pictures"])


def test_no_signoff_without_instance_types() -> None:
    summary = RunSummary(run_id="r", verdict="Passed", started="s", finished="f", duration_s=1.0,
                         tests=[TestResult("t.py::test", "passed")])
    assert build_signoff(summary) == []
    assert "Sign-off" not in render_md(summary)


def test_a_fleet_run_gets_a_note_instead_of_pages() -> None:
    types = ["p4d.24xlarge", "p5.48xlarge", "p5e.48xlarge", "g7e.2xlarge"]
    summary = RunSummary(run_id="r", verdict="Passed", started="s", finished="f", duration_s=1.0,
                         tests=[TestResult(f"t.py::test[{t}]", "passed", instance_type=t) for t in types])
    summary.signoff = build_signoff(summary)
    (note,) = summary.signoff
    assert "4 instance types" in note["note"] and "sim:TYPE" in note["note"]
    assert [r["instance_type"] for r in note["catalog"]] == sorted(types)
    assert note["catalog"][0]["gpu_origin"] == "shipped" and note["catalog"][0]["captured"] == "from public sources"
    md = render_md(summary)
    assert "No sign-off pages: this run covers 4 instance types" in md and "## Sign-off" not in md
    assert "| p5.48xlarge | shipped " in md and "captured on driver 580.159.04 | 7 captured |" in md
    assert "No sign-off pages" in render_html(summary)
