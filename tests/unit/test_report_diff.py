"""`mig-conformance report diff A B` (report/diff.py): nodes paired by category, node names and timings normalised,
verdicts, values and versions compared; text, JSON and a self-contained HTML page; exit 0/1/2."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from mig_conformance.cli import main
from mig_conformance.report.bundle import write_bundle
from mig_conformance.report.model import NodeSummary, RunSummary, TestResult

BALANCED = {"allocatable": {"nvidia.com/mig-1g.10gb": 16}, "labels": {"mig-3g.40gb.memory": "40448"}}


def _test(node: str, name: str, outcome: str = "passed", measured: dict[str, Any] | None = None,
          instance_type: str = "p5.48xlarge", gpu: str = "H100-80GB", duration: float = 0.1) -> TestResult:
    return TestResult(f"suites/test_strategies.py::{name}[{node}[{instance_type}]]", outcome, duration, "mixed",
                      node, instance_type, gpu, "all-balanced", "mixed",
                      expected=dict(BALANCED), measured=measured if measured is not None else dict(BALANCED),
                      message=None if outcome == "passed" else f"{node}: took 3.2 s")


def bundle(tmp_path: Path, name: str, nodes: list[tuple[str, str, str]], backend: str = "sim",
           driver: str = "580.159.04 (simulated)", change: dict[str, Any] | None = None,
           outcome: dict[str, str] | None = None) -> str:
    """A bundle with one node per (name, instance type, GPU) and two tests each; `change`/`outcome` by test name."""
    tests = []
    for node, it, gpu in nodes:
        for t in ("test_all_balanced", "test_single_strategy"):
            tests.append(_test(node, t, (outcome or {}).get(t, "passed"), (change or {}).get(t), it, gpu,
                               duration=len(name) / 10))
    summary = RunSummary(run_id=f"run-{name}", verdict="Failed" if outcome else "Passed",
                         started="2026-12-06T10:00:00Z", finished="2026-12-06T10:01:00Z", duration_s=len(name),
                         cluster=f"{backend}:{name}",
                         backend=backend, command_line=f"pytest --mig-report={name}",
                         nodes=[NodeSummary(n, it, gpu, [t for t in tests if t.node == n]) for n, it, gpu in nodes],
                         tests=tests, conformance_verdict="Failed" if outcome else "Passed")
    folder = tmp_path / name
    write_bundle(folder, summary, {"backend": backend, "kubernetes_version": "sim" if backend == "sim" else "v1.37.2",
                                   "driver": driver})
    return str(folder)


def diff(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["report", "diff", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def diff_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code, out, _ = diff(capsys, *argv, "--json")
    return code, json.loads(out)


P5 = ("p5.48xlarge", "H100-80GB")


def test_sim_and_local_of_one_fleet_differ_in_nothing_compared(capsys, tmp_path: Path) -> None:
    a = bundle(tmp_path, "sim", [("sim-p5-48xlarge-0", *P5), ("sim-p5-48xlarge-1", *P5)])
    b = bundle(tmp_path, "local", [("ip-10-0-0-10.us-west-2.compute.internal", *P5),
                                   ("ip-10-0-32-10.us-west-2.compute.internal", *P5)],
               backend="local", driver="580.159.04")
    code, doc = diff_json(capsys, a, b)
    assert code == 0 and doc["differences"] == 0 and not doc["verdicts_differ"], doc
    assert doc["a"]["versions"] == {"driver": "580.159.04"}  # ' (simulated)' dropped; Kubernetes 'sim' unknown
    assert any("node names" in line for line in doc["normalised"])
    code, out, _ = diff(capsys, a, b)
    assert code == 0 and "no differences" in out


def test_one_label_value_and_the_driver_differ(capsys, tmp_path: Path) -> None:
    a = bundle(tmp_path, "d550", [("n0", *P5)], driver="550.54.15",
               change={"test_all_balanced": {"allocatable": {"nvidia.com/mig-1g.10gb": 16},
                                             "labels": {"mig-3g.40gb.memory": "40320"}}})
    b = bundle(tmp_path, "d580", [("n0", *P5)])
    code, doc = diff_json(capsys, a, b)
    assert code == 0 and not doc["verdicts_differ"]  # values differ, verdicts do not
    assert doc["versions"] == [{"path": ["driver"], "a": "550.54.15", "b": "580.159.04"}]
    [node] = doc["nodes"]
    [t] = node["tests"]
    assert t["test"] == "suites/test_strategies.py::test_all_balanced[<p5.48xlarge#1>]"
    assert t["values"] == [{"path": ["measured", "labels", "mig-3g.40gb.memory"], "a": "40320", "b": "40448"}]
    assert doc["differences"] == 2 and node["same_tests"] == 1


def test_a_changed_outcome_exits_1_and_shows_both_messages(capsys, tmp_path: Path) -> None:
    a = bundle(tmp_path, "before", [("n0", *P5)])
    b = bundle(tmp_path, "after", [("n0", *P5)], outcome={"test_single_strategy": "failed"})
    code, out, _ = diff(capsys, a, b)
    assert code == 1
    assert "test_single_strategy[<p5.48xlarge#1>]: passed -> failed" in out and "verdict: Passed -> Failed" in out
    code, doc = diff_json(capsys, a, b)
    t = doc["nodes"][0]["tests"][0]
    assert t["verdict_changed"] and t["messages"] == {"a": None, "b": "<p5.48xlarge#1>: took 3.2 s"}


def test_two_instance_types_of_one_gpu_pair_by_gpu_model(capsys, tmp_path: Path) -> None:
    a = bundle(tmp_path, "big", [("n-big", *P5)])
    b = bundle(tmp_path, "small", [("n-small", "p5.4xlarge", "H100-80GB")])
    code, doc = diff_json(capsys, a, b)
    [node] = doc["nodes"]
    assert node["category"] == "p5.48xlarge|p5.4xlarge#1" and node["a_node"] == "n-big"
    assert node["fields"] == [{"path": ["instance_type"], "a": "p5.48xlarge", "b": "p5.4xlarge"}]
    assert node["tests"] == [] and code == 0  # the same tests, values and verdicts on both


def test_a_node_in_one_bundle_only_is_a_verdict_difference(capsys, tmp_path: Path) -> None:
    a = bundle(tmp_path, "one", [("n0", *P5)])
    b = bundle(tmp_path, "two", [("n0", *P5), ("m0", "p4d.24xlarge", "A100-40GB")])
    code, doc = diff_json(capsys, a, b)
    assert code == 1
    only = [n for n in doc["nodes"] if n["a_node"] is None]
    assert [n["category"] for n in only] == ["p4d.24xlarge#1"] and len(only[0]["tests"]) == 2
    assert all(t["a"] is None and t["b"] == "passed" for t in only[0]["tests"])


def test_the_html_page_is_self_contained_and_well_formed(capsys, tmp_path: Path) -> None:
    a = bundle(tmp_path, "x", [("n0", *P5)], driver="550.54.15")
    b = bundle(tmp_path, "y", [("n0", *P5)], outcome={"test_all_balanced": "error"})
    page = tmp_path / "diff.html"
    code, out, _ = diff(capsys, a, b, "--html", str(page))
    assert code == 1 and f"wrote {page}" in out
    text = page.read_text(encoding="utf-8")
    ET.fromstring(text.split("\n", 1)[1])  # well-formed XML after the doctype
    assert "<script" not in text and "http" not in text.replace("http-equiv", "")
    assert all(ord(c) < 256 for c in text)
    assert 'class="mark error"' in text and "550.54.15" in text and "verdicts differ" in text


@pytest.mark.parametrize("bad", ["missing", "empty", "not-json"])
def test_a_missing_or_invalid_bundle_is_a_usage_error_naming_it(capsys, tmp_path: Path, bad: str) -> None:
    good = bundle(tmp_path, "good", [("n0", *P5)])
    folder = tmp_path / bad
    if bad != "missing":
        folder.mkdir()
    if bad == "not-json":
        (folder / "summary.json").write_text("{nope")
    code, out, err = diff(capsys, good, str(folder))
    assert code == 2 and out == "" and str(folder) in err


def test_usage(capsys, tmp_path: Path) -> None:
    good = bundle(tmp_path, "good", [("n0", *P5)])
    with pytest.raises(SystemExit) as exc:
        main(["report", "diff", good])
    assert exc.value.code == 2 and "two bundle folders" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["report", good, "--json"])
    assert exc.value.code == 2
    assert main(["report", good]) == 0  # re-rendering a bundle still works
