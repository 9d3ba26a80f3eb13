"""The config verdict (does the user's config work on a node it targets) and how the report keeps it apart from the
conformance question (did the cluster do what the kit predicted). The plugin runs: tests/plugin/test_config_verdicts.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from mig_conformance.gpus.instance_types import load_instance_types
from mig_conformance.mig.spec import read_config_source
from mig_conformance.report import ReportFormatError, ResultCollector, RunSummary
from mig_conformance.report.records import RECORD_PROPERTY
from mig_conformance.report.render_html import render_html
from mig_conformance.report.render_md import render_md
from mig_conformance.report.terminal import summary_table
from mig_conformance.validation.verdict import (
    APPLIES,
    DOES_NOT_APPLY,
    EXPECTED_FAILURE,
    UNEXPECTEDLY_APPLIED,
    gpus_text,
    grouped,
    judge,
)

MY_YAML = """version: v1
mig-configs:
  training:
    - devices: [0, 1, 2, 3]
      mig-enabled: false
    - devices: [4, 5, 6, 7]
      mig-enabled: true
      mig-devices:
        "3g.40gb": 2
        "1g.10gb": 1
  inference:
    - devices: all
      mig-enabled: true
      mig-devices:
        "1g.10gb": 7
"""
SPEC = read_config_source(MY_YAML, "my.yaml").spec


def gpus(instance_type: str) -> list[Any]:
    return load_instance_types()[instance_type].gpus()


def test_a_config_that_does_not_fit_does_not_apply_and_says_why_and_what_mig_parted_did() -> None:
    v = judge(SPEC, "training", gpus("p5.48xlarge"), "sim-p5-0", "p5.48xlarge", ["pending", "failed"], False)
    assert (v.verdict, v.ok, v.gpus) == (DOES_NOT_APPLY, False, "8x H100-80GB")
    assert v.reasons == ("GPUs 4-7: does not fit on H100-80GB: no non-overlapping placement of these GPU instances "
                         "exists on H100-80GB's 8 memory slots; mig-parted fails with 'all orderings failed' and "
                         "leaves the GPU empty (my.yaml:8, entry 1, key 'mig-devices')",)
    lines = v.lines()
    assert lines[0] == "config 'training' of my.yaml does not apply on node sim-p5-0 (p5.48xlarge, 8x H100-80GB)"
    assert lines[1].startswith("why: GPUs 4-7: does not fit on H100-80GB")
    assert lines[2].startswith("mig-manager: pending -> failed; mig-parted on a fresh node of these GPUs: apply: "
                               "failure (Error applying MIG configuration with hooks: ") and "all orderings failed" in \
        lines[2]
    assert lines[-1] == "if the config is meant to fail here, list it with --mig-expect-config-failure"


def test_mig_manager_success_is_not_enough_when_the_gpus_do_not_get_what_the_config_asks() -> None:
    """3g.40gb does not exist on A100-40GB: mig-parted's apply clears those GPUs and reports success."""
    v = judge(SPEC, "training", gpus("p4d.24xlarge"), "n", "p4d.24xlarge", ["pending", "success"], False)
    assert v.verdict == DOES_NOT_APPLY and v.mig_manager == "pending -> success"
    assert v.mig_parted == "apply: success; assert after apply: failure (Not all GPUs match the specified config)"
    assert "GPUs 4-7: profile 3g.40gb exists on no GPU of this node" in v.reasons[0]


@pytest.mark.parametrize(("config", "states", "expected", "verdict"), [
    ("inference", ["pending", "success"], False, APPLIES),
    ("inference", ["success"], False, APPLIES),  # labelled so already: mig-manager's earlier verdict
    ("training", ["pending", "failed"], True, EXPECTED_FAILURE),
    ("inference", ["pending", "success"], True, UNEXPECTEDLY_APPLIED),
    ("inference", ["pending", "failed"], False, DOES_NOT_APPLY),  # the cluster failed a config the kit finds fine
    ("inference", ["pending", "failed"], True, EXPECTED_FAILURE),
])
def test_verdicts(config: str, states: list[str], expected: bool, verdict: str) -> None:
    v = judge(SPEC, config, gpus("p5.48xlarge"), "n", "p5.48xlarge", states, expected)
    assert v.verdict == verdict and v.ok == (verdict in (APPLIES, EXPECTED_FAILURE))
    if verdict == APPLIES:
        assert v.reasons == () and v.lines()[0] == "config 'inference' of my.yaml applies on node n (p5.48xlarge, 8x " \
                                                   "H100-80GB)"
    if config == "inference" and states[-1] == "failed":
        assert v.reasons == ("mig-manager ended failed, though the kit's validation finds nothing wrong with the "
                             "config on these GPUs (look at mig-manager's log on the node)",)
    if verdict == UNEXPECTEDLY_APPLIED:
        assert v.lines("env MIG_EXPECTED_CONFIG_FAILURES")[0] == (
            "config 'inference' of my.yaml was expected to fail (listed by env MIG_EXPECTED_CONFIG_FAILURES) but "
            "applies on node n (p5.48xlarge, 8x H100-80GB)")


def test_problems_are_grouped_by_message_and_place_with_gpu_ranges() -> None:
    from mig_conformance.common.errors import Location, Problem

    where = Location("f.yaml", 3, "c", 0, "mig-devices")
    problems = [Problem("too big", where, i) for i in (0, 1, 2, 5, 7)] + [Problem("odd", where, 3),
                                                                          Problem("file-wide", Location("f.yaml"))]
    assert grouped(problems) == ["GPUs 0-2, 5, 7: too big (f.yaml:3, entry 0, key 'mig-devices')",
                                 "GPU 3: odd (f.yaml:3, entry 0, key 'mig-devices')", "file-wide (f.yaml)"]
    assert gpus_text([*gpus("p5.48xlarge")[:2], *gpus("g5.xlarge")]) == "2x H100-80GB + 1x A10G-24GB"


# ---- the summary: two questions apart ---------------------------------------------------------------------------


def _feed(c: ResultCollector, nodeid: str, outcome: str, verdict: dict[str, Any] | None, category: str = "custom",
          message: str = "") -> None:
    props = [(RECORD_PROPERTY, {"category": category, "node": "n", "config": "training",
                                **({"config_verdict": verdict} if verdict else {})})]
    c.add_report(nodeid, "setup", "passed", 0.1)
    c.add_report(nodeid, "call", outcome, 0.1, props, message)
    c.add_report(nodeid, "teardown", "passed", 0.1)


def _verdict(config: str, node: str, states: list[str], expected: bool = False, as_predicted: bool = True
             ) -> dict[str, Any]:
    v = judge(SPEC, config, gpus("p5.48xlarge"), node, "p5.48xlarge", states, expected)
    return {**v.as_dict(), "as_predicted": as_predicted}


def _summary(c: ResultCollector, **kw: Any) -> RunSummary:
    return c.summary(started=0.0, finished=1.0, settings={"config_file": ("/x/my.yaml", "option")}, **kw)


def test_a_config_that_does_not_apply_fails_the_run_but_not_conformance() -> None:
    c = ResultCollector("r")
    _feed(c, "suites/test_strategies.py::test_all_balanced[n]", "passed", None, "all-balanced")
    _feed(c, "suites/test_custom.py::test_custom_config[n-training]", "failed",
          _verdict("training", "n", ["pending", "failed"]), message="E   Failed: config 'training' ...")
    _feed(c, "suites/test_custom.py::test_custom_config[n-inference]", "passed",
          _verdict("inference", "n", ["pending", "success"]))
    s = _summary(c)
    assert (s.verdict, s.conformance_verdict, s.config_verdict) == ("Failed", "Passed", "Failed")
    assert s.config_verdict_counts == {APPLIES: 1, DOES_NOT_APPLY: 1, EXPECTED_FAILURE: 0, UNEXPECTEDLY_APPLIED: 0}
    assert [(v["config"], v["verdict"], v["outcome"]) for v in s.config_verdicts] == [
        ("inference", APPLIES, "passed"), ("training", DOES_NOT_APPLY, "failed")]
    assert s.config_verdicts[1]["nodeid"] == "suites/test_custom.py::test_custom_config[n-training]"
    # summary.json keeps both answers and reads back the same
    again = RunSummary.from_json(s.to_json())
    assert again.to_dict() == s.to_dict()
    table = summary_table(s, width=200)
    assert "  training on n (8x H100-80GB): DOES NOT APPLY: GPUs 4-7: does not fit on H100-80GB" in table
    assert "| mig-manager: pending -> failed; mig-parted: apply: failure" in table
    assert "  inference on n (8x H100-80GB): applies" in table
    assert table.splitlines()[-3:] == [
        "conformance: Passed: the cluster did what the kit predicted",
        "config verdicts: Failed: 1 applies, 1 does not apply, counted per config and node it targets",
        "verdict: Failed (2 passed, 1 failed, 0 skipped, 0 errors)"]
    md = render_md(s)
    assert "| Conformance | Passed: the cluster did what the kit predicted |" in md
    assert md.index("## Config verdicts") < md.index("## Results by category")
    assert "| training | n (p5.48xlarge) | 8x H100-80GB | **does not apply** | yes | GPUs 4-7: does not fit" in md
    html = render_html(s)
    assert '<p class="question"><span class="Failed">Config verdicts: Failed</span>' in html
    assert '<section id="config-verdicts"><h2>Config verdicts</h2>' in html and 'href="#config-verdicts"' in html


def test_a_conformance_failure_is_not_hidden_by_the_config_verdict() -> None:
    c = ResultCollector("r")
    _feed(c, "suites/test_custom.py::test_custom_config[n-training]", "failed",
          _verdict("training", "n", ["pending", "success"], as_predicted=False))
    s = _summary(c)
    assert (s.verdict, s.conformance_verdict, s.config_verdict) == ("Failed", "Failed", "Failed")
    assert "| training | n (p5.48xlarge) | 8x H100-80GB | **does not apply** | NO |" in render_md(s)


def test_expected_failures_keep_the_run_green_and_an_unexpected_success_fails_it() -> None:
    c = ResultCollector("r")
    _feed(c, "suites/test_custom.py::test_custom_config[n-training]", "passed",
          _verdict("training", "n", ["pending", "failed"], expected=True))
    s = _summary(c)
    assert (s.verdict, s.conformance_verdict, s.config_verdict) == ("Passed", "Passed", "Passed")
    assert s.config_verdict_counts[EXPECTED_FAILURE] == 1
    _feed(c, "suites/test_custom.py::test_custom_config[n-inference]", "failed",
          _verdict("inference", "n", ["pending", "success"], expected=True))
    s = _summary(c)
    assert (s.verdict, s.conformance_verdict, s.config_verdict) == ("Failed", "Passed", "Failed")
    assert "inference on n (8x H100-80GB): UNEXPECTEDLY APPLIED" in summary_table(s, width=200)


def test_a_run_without_a_config_file_has_no_config_question_and_old_summaries_still_load() -> None:
    c = ResultCollector("r")
    _feed(c, "suites/test_strategies.py::test_all_balanced[n]", "passed", None, "all-balanced")
    s = c.summary(started=0.0, finished=1.0)
    assert (s.conformance_verdict, s.config_verdict, s.config_verdicts, s.config_verdict_counts) == (
        "Passed", None, [], {})
    assert "Config verdicts" not in render_md(s) and "config-verdicts" not in render_html(s)
    old = {k: v for k, v in s.to_dict().items() if not k.startswith(("config_verdict", "conformance"))}
    assert RunSummary.from_dict(old).config_verdicts == []


@pytest.mark.parametrize(("key", "value", "message"), [
    ("config_verdicts", {"a": 1}, "'config_verdicts' must be a list"),
    ("config_verdicts", ["x"], "'config_verdicts' must be a list of mappings"),
    ("config_verdict", "Green", "'config_verdict' must be Passed, Failed or null"),
    ("config_verdict_counts", {"applies": "2"}, "must hold whole numbers"),
])
def test_a_malformed_verdict_in_summary_json_is_a_format_error(key: str, value: Any, message: str) -> None:
    c = ResultCollector("r")
    _feed(c, "t::a", "passed", None)
    doc = json.loads(c.summary(started=0.0, finished=1.0).to_json())
    doc[key] = value
    with pytest.raises(ReportFormatError, match=message):
        RunSummary.from_dict(doc)
