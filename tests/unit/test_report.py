"""Report bundle: collector, summary.json round trip, SVG geometry, markdown/HTML rendering, scrubbing, CLI. The
collector fed by a real pytest run: tests/plugin/test_report_collector.py."""

from __future__ import annotations

import dataclasses
import io
import json
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml

from mig_conformance.cli import main
from mig_conformance.common.scrub import REDACTED, scrub, scrub_text
from mig_conformance.gpus.catalog import Catalog, GpuModel
from mig_conformance.mig.placement import fit
from mig_conformance.report import ReportFormatError, ResultCollector, RunSummary, rerender, view, write_bundle
from mig_conformance.report.bundle import evidence_name
from mig_conformance.report.collector import short_message
from mig_conformance.report.records import CleanupOutcome
from mig_conformance.report.render_html import render_html
from mig_conformance.report.render_md import md_code, md_text, render_md
from mig_conformance.report.svg import CELL, gpu_svg, gpus_caption, group_gpus, slot_x
from mig_conformance.report.target import build_target, find_versions
from mig_conformance.report.terminal import StatusLine, summary_table
from mig_conformance.report.values import short_comparison
from mig_conformance.report.view import SAFE_EXTRA, undrawable

FAIL_TEXT = textwrap.dedent("""\
    def test_alloc(mig_cluster):
        node = mig_cluster.get_node("n")
    >   assert node.allocatable == expected
    E   AssertionError: allocatable differs on sim-p5-0
    E   assert {'nvidia.com/mig-1g.10gb': 0} == {'nvidia.com/mig-1g.10gb': 16}
    E     Differing items:
    E     {'nvidia.com/mig-1g.10gb': 0} != {'nvidia.com/mig-1g.10gb': 16}
    E     Use -v to get more diff

    suites/test_mixed.py:42: AssertionError
    """)


def layout_for(gpu: GpuModel, devices: dict[str, int], gpus: int = 1) -> list[dict[str, Any]]:
    """The suite record's `layout` for `devices` on every GPU of a node, placed by the placement engine."""
    result = fit(gpu, devices)
    assert result.fits, result.reason
    instances = [{"profile": p.profile, "start": p.start, "size": p.size, "slices": gpu.profile(p.profile).slices,
                  "devices": list(p.compute_instances)} for p in result.placement]
    return [{"gpu": i, "slots": gpu.memory_slots, "slices": gpu.compute_slices, "instances": instances}
            for i in range(gpus)]


def record(gpu: GpuModel, node: str, config: str, devices: dict[str, int], measured_scale: int = 1,
           category: str = "mixed", instance_type: str = "p5.48xlarge", gpus: int = 8) -> dict[str, Any]:
    """A realistic record: expected allocatable = devices x GPUs; measured scaled (0 = nothing appeared)."""
    expected = {f"nvidia.com/mig-{p}": n * gpus for p, n in devices.items()}
    return {"category": category, "node": node, "instance_type": instance_type, "gpu_model": gpu.key,
            "config": config, "strategy": "mixed",
            "expected": {"allocatable": expected, "state": "success"},
            "measured": {"allocatable": {k: v * measured_scale for k, v in expected.items()}, "state": "success"},
            "layout": layout_for(gpu, devices, gpus)}


@pytest.fixture
def h100(catalog: Catalog) -> GpuModel:
    return catalog.get("H100-80GB")


MIXED = {"3g.40gb": 1, "2g.20gb": 1, "1g.10gb": 2}


def feed(collector: ResultCollector, h100: GpuModel, reverse: bool = False) -> None:
    """A small run: one passing and one failing mixed test on two nodes, a catalog skip, a setup error."""
    ok = record(h100, "sim-p5-0", "custom-mixed", MIXED)
    bad = record(h100, "sim-p5-1", "custom-mixed", MIXED, measured_scale=0)
    balanced = record(h100, "sim-p5-0", "all-balanced", {"3g.40gb": 1, "2g.20gb": 1, "1g.10gb": 2},
                      category="all-balanced")
    reports = [
        ("suites/test_mixed.py::test_alloc[sim-p5-0]", [("setup", "passed", 0.5, None), ("call", "passed", 1.25, None),
                                                        ("teardown", "passed", 0.25, None)], ok),
        ("suites/test_mixed.py::test_alloc[sim-p5-1]", [("setup", "passed", 0.5, None), ("call", "failed", 2.0,
                                                        FAIL_TEXT), ("teardown", "passed", 0.1, None)], bad),
        ("suites/test_balanced.py::test_state[sim-p5-0]", [("call", "passed", 3.0, None)], balanced),
        ("suites/test_catalog.py::test_h200", [("setup", "skipped", 0.0, "Skipped: no H200-141GB nodes")], None),
        ("suites/test_sched.py::test_pending", [("setup", "failed", 0.1, "E   RuntimeError: namespace stuck")],
         None),
    ]
    for nodeid, phases, rec in (reversed(reports) if reverse else reports):
        props = [("wait_seconds", 1.0), ["mig_result", rec]] if rec else []  # xdist may turn tuples into lists
        for when, outcome, duration, text in phases:
            collector.add_report(nodeid, when, outcome, duration, props, text)


def make_summary(h100: GpuModel, reverse: bool = False, **kw: Any) -> RunSummary:
    c = ResultCollector(run_id="run-1")
    feed(c, h100, reverse)
    args = {"started": 1_750_000_000.0, "finished": 1_750_000_125.5, "cluster": "sim-p5", "backend": "sim",
            "command_line": "pytest --mig-cluster sim-p5 --mig-report out", "kit_version": "0.1.0",
            "settings": {"cluster": ("sim-p5", "option"), "timeout": {"value": 900.0, "source": "default"},
                         "kube_token": ("k8s-aws-v1.abcdef", "env")}}
    return c.summary(**{**args, **kw})


# ---- collector -------------------------------------------------------------------------------------------


def test_collector_outcomes_records_and_totals(h100: GpuModel) -> None:
    s = make_summary(h100)
    by_id = {t.nodeid: t for t in s.tests}
    assert s.totals == {"passed": 2, "failed": 1, "skipped": 1, "error": 1}
    assert s.verdict == "Failed"
    ok = by_id["suites/test_mixed.py::test_alloc[sim-p5-0]"]
    assert ok.outcome == "passed" and ok.duration_s == 2.0 and ok.node == "sim-p5-0" and ok.message is None
    assert ok.layout[0]["instances"][0] == {**ok.layout[0]["instances"][0], "profile": "2g.20gb", "start": 0}
    assert by_id["suites/test_catalog.py::test_h200"].message == "Skipped: no H200-141GB nodes"
    err = by_id["suites/test_sched.py::test_pending"]
    assert (err.outcome, err.category, err.node) == ("error", "other", None)
    assert err.message == "error in setup: RuntimeError: namespace stuck"
    assert s.categories["mixed"] == {"passed": 1, "failed": 1, "skipped": 0, "error": 0}
    assert [n.node for n in s.nodes] == ["sim-p5-0", "sim-p5-1"]
    assert [n.verdict for n in s.nodes] == ["Passed", "Failed"]
    assert s.nodes[0].instance_type == "p5.48xlarge" and len(s.nodes[0].results) == 2
    assert s.duration_s == 125.5 and s.started == "2025-06-15T15:06:40Z"


def test_short_message_keeps_assertion_lines_not_the_traceback() -> None:
    msg = short_message(FAIL_TEXT)
    assert msg is not None
    assert msg.splitlines()[0] == "AssertionError: allocatable differs on sim-p5-0"
    assert len(msg.splitlines()) == 4 and msg.endswith("…")
    assert "def test_alloc" not in msg and "suites/test_mixed.py:42" not in msg
    assert short_message("Traceback...\n  File x\nsuites/t.py:3: KeyError") == "suites/t.py:3: KeyError"
    assert short_message("") is None and short_message(None) is None


def test_teardown_failure_after_pass_is_an_error_and_incomplete_tests_are_errors() -> None:
    c = ResultCollector()
    c.add_report("t.py::a", "call", "passed", 1.0)
    c.add_report("t.py::a", "teardown", "failed", 0.1, (), "E   RuntimeError: restore failed")
    c.add_report("t.py::b", "setup", "passed", 0.1)  # interrupted before the call phase
    a, b = c.results()
    assert (a.outcome, a.message) == ("error", "error in teardown: RuntimeError: restore failed")
    assert b.outcome == "error" and "no result" in (b.message or "")


def test_exit_status_and_empty_runs_fail_the_verdict() -> None:
    c = ResultCollector()
    assert c.summary(started=0.0, finished=1.0).verdict == "Failed"  # nothing ran
    c.add_report("t.py::a", "call", "passed", 1.0)
    assert c.summary(started=0.0, finished=1.0, exitstatus=0).verdict == "Passed"
    interrupted = c.summary(started=0.0, finished=1.0, exitstatus=2)
    assert interrupted.verdict == "Failed" and "interrupted" in render_md(interrupted)


def test_a_cluster_not_put_back_fails_the_verdict_and_is_reported() -> None:
    c = ResultCollector()
    c.add_report("t.py::a", "call", "passed", 1.0)
    clean = CleanupOutcome("reconfigure", restored=["node n label a=b"])
    ok = c.summary(started=0.0, finished=1.0, exitstatus=0, cleanup=clean)
    assert ok.verdict == "Passed" and not ok.cleanup_failed and ok.cleanup[0].startswith("restored 1 change(s)")
    broken = c.summary(started=0.0, finished=1.0, exitstatus=0,
                       cleanup=dataclasses.replace(clean, restore_failures=["node n label x: denied"]))
    assert broken.verdict == "Failed" and broken.cleanup_failed
    assert any(line.startswith("NOT RESTORED") for line in broken.cleanup)
    again = RunSummary.from_json(broken.to_json())
    assert (again.verdict, again.cleanup, again.cleanup_failed) == ("Failed", broken.cleanup, True)
    md, html = render_md(broken), render_html(broken)
    assert "## Cleanup" in md and "NOT RESTORED" in md and "FAILED: the cluster was not put back" in md
    assert '<section id="cleanup">' in html and "NOT RESTORED" in html


# ---- summary.json ----------------------------------------------------------------------------------------


def test_summary_json_round_trip_and_key_order(h100: GpuModel) -> None:
    s = make_summary(h100)
    text = s.to_json()
    again = RunSummary.from_json(text)
    assert again.to_json() == text
    doc = json.loads(text)
    assert list(doc)[:6] == ["schema", "run_id", "verdict", "started", "finished", "duration_s"]
    assert [t["nodeid"] for t in doc["tests"]] == sorted(t["nodeid"] for t in doc["tests"])
    assert list(doc["tests"][0]) == ["nodeid", "outcome", "duration_s", "category", "node", "instance_type",
                                     "gpu_model", "config", "strategy", "expected", "measured", "layout", "message"]
    assert doc["settings"]["kube_token"] == {"source": "env", "value": REDACTED}
    assert doc["settings"]["timeout"] == {"source": "default", "value": 900.0}


def test_summary_is_independent_of_report_order(h100: GpuModel) -> None:
    assert make_summary(h100).to_json() == make_summary(h100, reverse=True).to_json()


@pytest.mark.parametrize(("text", "fragment"), [
    ("not json", "not valid JSON"),
    ("[]", "must be a JSON object"),
    ('{"verdict": "Maybe"}', "verdict"),
    ('{"verdict": "Passed", "started": "a", "finished": "b", "duration_s": 1}', "lacks 'run_id'"),
    ('{"verdict": "Passed", "run_id": 5, "started": "a", "finished": "b", "duration_s": 1}', "wrong type"),
    ('{"verdict": "Passed", "run_id": "r", "started": "a", "finished": "b", "duration_s": 1, "tests": [{}]}',
     "outcome"),
    ('{"verdict": "Passed", "run_id": "r", "started": "a", "finished": "b", "duration_s": 1, "totals": {"x": "y"}}',
     "whole numbers"),
    ('{"schema": "other/v1", "verdict": "Passed"}', "not a mig-conformance summary"),
])
def test_malformed_summaries_raise_report_format_error(text: str, fragment: str) -> None:
    with pytest.raises(ReportFormatError, match=fragment):
        RunSummary.from_json(text)


# ---- SVG -------------------------------------------------------------------------------------------------


def test_svg_draws_one_rect_per_gpu_instance_at_its_placement(h100: GpuModel) -> None:
    """3g@4:4 + 2g@0:2 + 2x 1g@2,3 on H100 (8 memory slots, 7 compute slices)."""
    entry = layout_for(h100, MIXED)[0]
    assert [(i["profile"], i["start"], i["size"]) for i in entry["instances"]] == [
        ("2g.20gb", 0, 2), ("1g.10gb", 2, 1), ("1g.10gb", 3, 1), ("3g.40gb", 4, 4)]
    root = ET.fromstring(gpu_svg(entry, "GPU 0"))
    ns = {"s": "http://www.w3.org/2000/svg"}
    mem = root.findall(".//s:rect[@class='gi-mem']", ns)
    cmp_ = root.findall(".//s:rect[@class='gi-compute']", ns)
    assert len(mem) == len(cmp_) == 4
    assert [(int(r.get("x")), int(r.get("width"))) for r in mem] == [
        (slot_x(0), 2 * CELL), (slot_x(2), CELL), (slot_x(3), CELL), (slot_x(4), 4 * CELL)]
    # compute slices sit under their memory; the 3g instance takes slices 4..6 and slot 7 has no slice
    assert [(int(r.get("x")), int(r.get("width"))) for r in cmp_] == [
        (slot_x(0), 2 * CELL), (slot_x(2), CELL), (slot_x(3), CELL), (slot_x(4), 3 * CELL)]
    assert len(root.findall(".//s:rect[@class='slot']", ns)) == 8
    assert len(root.findall(".//s:rect[@class='slice']", ns)) == 7
    assert len(root.findall(".//s:rect[@class='no-slice']", ns)) == 1
    labels = [t.text for t in root.findall(".//s:text[@class='gi-label']", ns)]
    assert labels == ["2g.20gb", "1g.10gb", "1g.10gb", "3g.40gb"]
    fills = {g.get("data-profile"): g.find("s:rect", ns).get("fill") for g in root.findall(".//s:g[@class='gi']", ns)}
    assert fills["1g.10gb"] != fills["2g.20gb"] != fills["3g.40gb"]


def test_svg_for_other_geometries(catalog: Catalog) -> None:
    """RTX PRO 6000: 12 memory slots, 4 compute slices (3 slots per slice); A30: 4 and 4."""
    rtx = catalog.get("RTXPRO6000-96GB")
    root = ET.fromstring(gpu_svg(layout_for(rtx, {"2g.48gb": 1, "1g.24gb": 2})[0]))
    ns = {"s": "http://www.w3.org/2000/svg"}
    spans = sorted((int(r.get("x")), int(r.get("width"))) for r in root.findall(".//s:rect[@class='gi-compute']", ns))
    assert spans == [(slot_x(0), 6 * CELL), (slot_x(6), 3 * CELL), (slot_x(9), 3 * CELL)]
    a30 = catalog.get("A30-24GB")
    root = ET.fromstring(gpu_svg(layout_for(a30, {"4g.24gb": 1})[0]))
    assert len(root.findall(".//s:rect[@class='gi-mem']", ns)) == 1
    assert not root.findall(".//s:rect[@class='no-slice']", ns)


def test_svg_is_deterministic_escaped_and_handles_empty_gpus(h100: GpuModel) -> None:
    entry = layout_for(h100, MIXED)[0]
    assert gpu_svg(entry) == gpu_svg(json.loads(json.dumps(entry)))
    evil = {"gpu": 0, "slots": 8, "slices": 7,
            "instances": [{"profile": "<b>&\"x'", "start": 0, "size": 8, "slices": 7}]}
    text = gpu_svg(evil, caption="<script>")
    assert "<b>" not in text and "<script>" not in text
    root = ET.fromstring(text)
    assert root.find(".//{http://www.w3.org/2000/svg}g").get("data-profile") == "<b>&\"x'"
    empty = ET.fromstring(gpu_svg({"gpu": 1, "slots": 8, "slices": 7, "instances": []}))
    assert any(t.text == "no GPU instances" for t in empty.iter("{http://www.w3.org/2000/svg}text"))


def test_identical_gpus_share_a_picture(h100: GpuModel) -> None:
    layout = layout_for(h100, MIXED, gpus=8)
    layout[5] = {**layout[5], "instances": []}
    groups = group_gpus(layout)
    assert [g[0] for g in groups] == [[0, 1, 2, 3, 4, 6, 7], [5]]
    assert gpus_caption(list(range(8))) == "GPUs 0–7" and gpus_caption([0, 2]) == "GPUs 0, 2"


# ---- markdown and HTML -----------------------------------------------------------------------------------


def test_markdown_report_content(h100: GpuModel) -> None:
    s = make_summary(h100)
    md = render_md(s, build_target(s, {"driver_version": "570.86.15"}))
    assert md.startswith("# MIG conformance report: Failed\n")
    for heading in ("## Settings", "## Results by category", "## Nodes", "### sim-p5-1 (p5.48xlarge, H100-80GB)",
                    "## Failures", "## Skipped", "### Tests without a node"):
        assert heading in md
    assert "| cluster | sim-p5 | option |" in md
    assert "| Driver version | 570.86.15 |" in md
    assert "| mixed | **Failed** | 1 | 1 | 0 | 0 |" in md
    assert "| sim-p5-0 | p5.48xlarge | H100-80GB | Passed | 2 | 0 | 0 | 0 |" in md
    assert "| no H200-141GB nodes |" in md  # the reason, without pytest's "Skipped: "
    assert not undrawable(md)  # words, not emoji: the file is read in editors and terminals
    assert "mig-1g.10gb=0≠16" in md  # measured vs expected, mismatches first
    assert "AssertionError: allocatable differs on sim-p5-0" in md
    assert "def test_alloc" not in md and "suites/test_mixed.py:42" not in md
    assert "k8s-aws-v1" not in md


def test_markdown_escaping() -> None:
    assert md_text("a|b <i>*x*</i>") == "a\\|b \\<i\\>\\*x\\*\\</i\\>"
    assert md_code("x`y|z") == "`` x`y\\|z ``"
    assert md_code("a|b", in_table=False) == "`a|b`"


class _Balance(HTMLParser):
    VOID = frozenset({"meta", "br", "hr", "img", "input", "link", "col", "wbr"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()


def test_html_report_is_well_formed_self_contained_and_escaped(h100: GpuModel) -> None:
    s = make_summary(h100)
    s.tests[0].message = "<script>alert(1)</script> & \"quotes\""
    s.failures[0].message = s.tests[0].message
    html = render_html(s, None)
    parser = _Balance()
    parser.feed(html)
    parser.close()
    assert parser.stack == []
    root = ET.fromstring(html.removeprefix("<!DOCTYPE html>"))  # also well-formed XML
    assert root.tag == "html"
    assert "script" not in parser.tags and "<script>" not in html and "&lt;script&gt;" in html
    assert "http://" not in html and "https://" not in html
    assert not [v for k, v in parser.attrs if k in ("src", "href") and v and not v.startswith("#")]
    svgs = root.findall(".//svg")
    # sim-p5-0 shows two configs of one layout (all GPUs alike): one picture; sim-p5-1 one config
    assert len(svgs) == 2
    assert all(len(svg.findall(".//rect[@class='gi-mem']")) == 4 for svg in svgs)
    assert root.find(".//details[@id='node-sim-p5-1']").get("open") == "open"
    assert root.find(".//details[@id='node-sim-p5-0']").get("open") is None
    assert "GPUs 0–7" in html and "sim-p5-1" in html


def _text_of(html: str) -> str:
    """Everything the page shows (text of the body, SVG labels and tooltips), without markup."""
    body = ET.fromstring(html.removeprefix("<!DOCTYPE html>")).find("body")
    assert body is not None
    return "".join(body.itertext())


def test_outcome_marks_are_css_shapes_and_every_character_is_drawable(h100: GpuModel) -> None:
    """Emoji render as empty boxes without an emoji font: outcomes are CSS shapes plus the word."""
    s = make_summary(h100)
    html = render_html(s, build_target(s, {"driver": "570.86.15"}))
    text = _text_of(html)
    assert undrawable(text) == [] and undrawable(html) == []
    root = ET.fromstring(html.removeprefix("<!DOCTYPE html>"))
    marks = [m.get("class") for m in root.iter("span") if (m.get("class") or "").startswith("mark ")]
    assert {"mark passed", "mark failed", "mark error", "mark skipped"} <= set(marks)
    assert all(not (m.text or "").strip() for m in root.iter("span") if (m.get("class") or "").startswith("mark "))
    badge = root.find(".//header/p/span[@class='badge Failed']")
    assert badge is not None and "".join(badge.itertext()) == "Failed"
    assert ".mark.passed::after" in html and ".mark.failed::before" in html  # drawn with CSS
    assert undrawable("ok ✅ ❌ ⏭️ 💥 ✓ ✗ é – ≠ …") == ["✅", "❌", "⏭", "\ufe0f", "💥", "✓", "✗"]
    assert all(0x2000 <= ord(c) < 0x2300 for c in SAFE_EXTRA)  # punctuation, arrows and math of WGL4 only


def test_cleanup_changes_are_list_items_of_their_own_and_problems_stand_out() -> None:
    c = ResultCollector()
    c.add_report("t.py::a", "call", "passed", 1.0)
    changes = ["ClusterPolicy MIG strategy=mixed", "node n1 label nvidia.com/mig.config=all-disabled (mig-manager "
               "re-applies it)", "namespace mig-conformance-1 (deleted)"]
    cleanup = CleanupOutcome("kit-owned", restored=changes, restore_failures=["node n2 label x: denied"])
    s = c.summary(started=0.0, finished=1.0, exitstatus=0, cleanup=cleanup)
    root = ET.fromstring(render_html(s).removeprefix("<!DOCTYPE html>"))
    section = root.find(".//section[@id='cleanup']")
    assert section is not None
    items = section.findall("./ul/li")
    assert items[0].text == "restored 3 change(s)"
    assert [li.text for li in items[0].findall("./ul/li")] == changes
    problem = next(li for li in items if (li.text or "").startswith("NOT RESTORED"))
    assert problem.get("class") == "problem" and items[0].get("class") is None
    md = render_md(s)
    assert "- restored 3 change(s)\n  - ClusterPolicy MIG strategy=mixed\n  - node n1 label" in md
    assert "- **NOT RESTORED: node n2 label x: denied**" in md
    again = RunSummary.from_json(s.to_json())  # summary.json keeps its shape: one string per cleanup line
    assert again.cleanup == s.cleanup and again.cleanup[0].count("\n") == 3


def test_a_layout_is_drawn_once_per_node_whatever_configs_and_strategies_made_it(h100: GpuModel) -> None:
    c = ResultCollector()
    one = {"3g.40gb": 2}
    for nodeid, config, strategy, devices in (("a.py::single", "all-3g.40gb", "single", one),
                                              ("a.py::mixed", "all-3g.40gb", "mixed", one),
                                              ("a.py::custom", "two-halves", "mixed", one),
                                              ("a.py::balanced", "all-balanced", "mixed", MIXED)):
        rec = {**record(h100, "n0", config, devices), "strategy": strategy}
        c.add_report(nodeid, "call", "passed", 1.0, [("mig_result", rec)])
    s = c.summary(started=0.0, finished=1.0)
    root = ET.fromstring(render_html(s).removeprefix("<!DOCTYPE html>"))
    captions = [f.findtext("figcaption") for f in root.iter("figure")]
    assert captions == ["configs all-3g.40gb, two-halves / strategies mixed, single (tests: mixed, single, custom)",
                        "config all-balanced / strategy mixed (tests: balanced)"]
    assert len(root.findall(".//svg")) == 2


@pytest.mark.parametrize(("nodeid", "short"), [
    ("s/t.py::test_all_balanced[n-0[p5.48xlarge]]", "test_all_balanced"),
    ("s/t.py::test_mixed_uniform[n-0[p5.48xlarge]-1g.2x]", "test_mixed_uniform[1g.2x]"),
    ("s/t.py::test_custom_config[n-0[p5.48xlarge]-no-config-file]", "test_custom_config[no-config-file]"),
    ("s/t.py::test_x[a-n-0[p5.48xlarge]]", "test_x[a]"),
    ("s/t.py::test_x[a-n-0[p5.48xlarge]-b]", "test_x[a-b]"),
    ("s/t.py::test_x[n-10[p5.48xlarge]]", "test_x[n-10[p5.48xlarge]]"),  # another node: kept
    ("s/t.py::test_plain", "test_plain"),
])
def test_under_a_node_heading_test_names_leave_out_the_node(nodeid: str, short: str) -> None:
    assert view.test_name(nodeid, "n-0", "p5.48xlarge") == short
    assert view.test_name(nodeid) == nodeid.split("::")[1]


def test_component_versions_keep_their_acronyms(h100: GpuModel) -> None:
    s = make_summary(h100)
    md = render_md(s, {"versions": {"gpu_operator": "v24.9.2", "kubernetes": "v1.31.2", "eks_platform": "eks.12"}})
    assert "| GPU operator version | v24.9.2 |" in md and "| Kubernetes version | v1.31.2 |" in md
    assert "| EKS platform version | eks.12 |" in md


def test_rendering_is_deterministic(h100: GpuModel) -> None:
    a, b = make_summary(h100), make_summary(h100, reverse=True)
    assert render_md(a) == render_md(b) and render_html(a) == render_html(b)


# ---- scrubbing, target, bundle ---------------------------------------------------------------------------


def test_scrub_keys_values_and_text() -> None:
    doc = {"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied": "x"}},
           "Authorization": "Bearer abc", "aws": {"SecretAccessKey": "s", "region": "us-west-2"},
           "users": [{"user": {"token": "t", "client-key-data": "k"}}, {"pass": "eyJhbGciOiJIUzI1NiJ9.e30.sig"}],
           "exec": "k8s-aws-v1.aHR0cHM6Ly9zdHM", "password": "", "note": "got Bearer abc.def from eyJ0eXAi.e30.x"}
    out = scrub(doc)
    assert out["Authorization"] == out["aws"]["SecretAccessKey"] == out["users"][0]["user"]["token"] == REDACTED
    assert out["users"][1]["pass"] == out["exec"] == REDACTED
    assert out["aws"]["region"] == "us-west-2" and out["password"] == ""
    assert out["metadata"] == doc["metadata"] and out["users"][0]["user"]["client-key-data"] == REDACTED
    assert out["note"] == f"got Bearer {REDACTED} from {REDACTED}"
    assert scrub_text("nothing here") == "nothing here"


def test_target_versions_and_document(h100: GpuModel) -> None:
    describe = {"kubernetes": {"gitVersion": "v1.31.2", "platform": "eks.12"}, "gpuOperatorVersion": "v24.9.2",
                "components": {"mig-manager": {"version": "v0.10.0", "image": "example.invalid/mig:x"}},
                "server": "https://api.example", "driver": "570.86.15", "bearer_token": "zzz"}
    assert find_versions(describe) == {"kubernetes": "v1.31.2", "platform": "eks.12", "driver": "570.86.15",
                                       "gpu_operator": "v24.9.2", "mig_manager": "v0.10.0"}
    s = make_summary(h100)
    doc = build_target(s, describe)
    assert doc["instance_types"] == ["p5.48xlarge"] and doc["gpu_models"] == ["H100-80GB"]
    assert doc["kit"] == {"name": "mig-conformance", "version": "0.1.0",
                          "command_line": "pytest --mig-cluster sim-p5 --mig-report out"}
    assert doc["python"].count(".") == 2 and doc["pytest"] and doc["date"] == s.started
    assert doc["cluster"]["facts"]["bearer_token"] == REDACTED


def test_write_bundle_and_rerender(tmp_path: Path, h100: GpuModel) -> None:
    s = make_summary(h100)
    evidence = {"nodes_before": [{"name": "sim-p5-0", "labels": {"nvidia.com/mig.config": "all-disabled"}}],
                "kubeconfig/user": {"users": [{"user": {"token": "abc"}}]}, "../../escape": {"x": 1}}
    out = write_bundle(tmp_path / "bundle", s, {"driver": "570.86.15", "token": "abc"}, evidence)
    names = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert names == ["TARGET.yaml", "evidence/_/_/escape.json", "evidence/kubeconfig/user.json",
                     "evidence/nodes_before.json", "report.html", "report.md", "summary.json"]
    assert json.loads((out / "evidence/kubeconfig/user.json").read_text())["users"][0]["user"]["token"] == REDACTED
    target = yaml.safe_load((out / "TARGET.yaml").read_text())
    assert target["versions"] == {"driver": "570.86.15"} and target["cluster"]["facts"]["token"] == REDACTED
    assert RunSummary.from_json((out / "summary.json").read_text()).to_json() == s.to_json()
    md, html = (out / "report.md").read_text(), (out / "report.html").read_text()
    (out / "report.md").unlink()
    (out / "report.html").write_text("stale")
    assert rerender(out) == [out / "report.md", out / "report.html"]
    assert (out / "report.md").read_text() == md and (out / "report.html").read_text() == html
    assert "Driver version" in md  # TARGET.yaml feeds the re-rendered facts too
    write_bundle(out, s, {}, {"nodes_after": []})  # the folder reused: no evidence of the earlier run is left
    assert sorted(str(p.relative_to(out / "evidence")) for p in (out / "evidence").rglob("*.json")) == \
        ["nodes_after.json"]


def test_evidence_names_stay_inside_the_folder() -> None:
    assert evidence_name("nodes/before") == "nodes/before.json"
    assert evidence_name("../../etc/passwd") == "_/_/etc/passwd.json"
    assert evidence_name("a b:c.json") == "a_b_c.json" and evidence_name("") == "_.json"


# ---- CLI -------------------------------------------------------------------------------------------------


def test_cli_report_rerenders(tmp_path: Path, h100: GpuModel, capsys: pytest.CaptureFixture[str]) -> None:
    out = write_bundle(tmp_path / "b", make_summary(h100), {}, {})
    (out / "report.md").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "report.md").is_file()
    assert f"wrote {out / 'report.md'}" in capsys.readouterr().out


@pytest.mark.parametrize(("setup", "fragment"), [
    ("missing", "no such folder"),
    ("empty", "no summary.json"),
    ("garbage", "not valid JSON"),
    ("shape", "'tests' must be a list"),
    ("target", "TARGET.yaml: expected a mapping"),
])
def test_cli_report_bad_bundles_exit_2(tmp_path: Path, h100: GpuModel, capsys: pytest.CaptureFixture[str],
                                       setup: str, fragment: str) -> None:
    d = tmp_path / "b"
    if setup != "missing":
        d.mkdir()
    if setup == "garbage":
        (d / "summary.json").write_text("{not json")
    elif setup == "shape":
        (d / "summary.json").write_text(json.dumps({**json.loads(make_summary(h100).to_json()), "tests": {}}))
    elif setup == "target":
        write_bundle(d, make_summary(h100))
        (d / "TARGET.yaml").write_text("- a list\n")
    assert main(["report", str(d)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and fragment in err and "Traceback" not in err


@pytest.mark.slow  # the CLI in a subprocess
def test_cli_report_in_a_subprocess_prints_no_traceback(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "mig_conformance", "report", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "no summary.json" in proc.stderr and "Traceback" not in proc.stderr


# ---- terminal --------------------------------------------------------------------------------------------


def test_summary_table(h100: GpuModel) -> None:
    table = summary_table(make_summary(h100), width=140)
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["node", "instance", "type"]
    bad = next(ln for ln in lines if "sim-p5-1" in ln)
    assert "FAILED" in bad and "mig-1g.10gb=0!=16" in bad
    assert lines[-1] == "verdict: Failed (2 passed, 1 failed, 1 skipped, 1 errors)"
    assert table.isascii()
    assert short_comparison({"a": 1}, {"a": 1, "b": 2}) == "a=1, b=2"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_status_line_rewrites_on_a_tty_and_is_silent_otherwise() -> None:
    tty = _Tty()
    with StatusLine(tty, width=40) as status:
        status.update("waiting for mig.config.state=success on sim-p5-0 (12s)")
        status.update("done")
    text = tty.getvalue()
    # saved cursor, text cut to the 39 columns left; back to the saved cursor and erase for each update and clear
    assert text == "\x1b7waiting for mig.config.state=success on\x1b8\x1b[Kdone\x1b8\x1b[K"
    narrow = _Tty()
    StatusLine(narrow, width=40).update("waiting", column=30)  # 9 columns left: no room, nothing shown
    assert narrow.getvalue() == ""
    plain = io.StringIO()
    quiet = StatusLine(plain)
    quiet.update("x")
    quiet.clear()
    assert plain.getvalue() == "" and not quiet.enabled


def test_count_progress_shows_a_line_per_tenth_of_large_work_only() -> None:
    from mig_conformance.report.terminal import CountProgress

    shown: list[str] = []
    now = [0.0]
    progress = CountProgress(shown.append, clock=lambda: now[0])
    for done in range(1, 1001):
        now[0] += 0.01
        progress("creating", done, 1000)
    assert [s.split(": ")[2] for s in shown] == [f"{n:,}/1,000 ({n // 10}%), {n / 100 - 0.01:.1f} s"
                                                 for n in range(100, 1001, 100)]
    shown.clear()
    for done in range(1, 1000):
        progress("restoring", done, 999)  # under the threshold: nothing
    for done in range(1, 2501):
        progress("settling", done, 2500)  # new work: its own tenths and clock
    assert len(shown) == 10 and shown[0].startswith("mig-conformance: settling: 250/2,500 (10%), 0.0 s")


def test_wait_log_prints_a_line_every_30s_of_a_long_wait_and_one_when_it_ends() -> None:
    """Where no status line can be drawn (CI logs): long waits say what is awaited, how long, and the state seen."""
    from mig_conformance.cluster.base import WaitProgress
    from mig_conformance.report.terminal import WaitLog

    log = WaitLog(every=30)
    polls = [WaitProgress("node n to apply MIG config c", f"state={s}", t, 600)
             for t, s in ((0, "-"), (12, "pending"), (31, "pending"), (45, "pending"), (61, "rebooting"), (70, "ok"))]
    lines = [line for line in map(log.update, [*polls, None]) if line]
    assert lines == ["mig-conformance: waiting for node n to apply MIG config c: 31s of 600s; state=pending",
                     "mig-conformance: waiting for node n to apply MIG config c: 61s of 600s; state=rebooting",
                     "mig-conformance: waited 70s for node n to apply MIG config c; last state: state=ok"]
    short = [log.update(WaitProgress("pod p", "Pending", t, 60)) for t in (0, 5, 29)] + [log.update(None)]
    assert short == [None] * 4  # a wait under 30 s prints nothing, and a new wait starts counting afresh
