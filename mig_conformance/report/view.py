"""What report.md and report.html show, as plain rows; the two renderers only format them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mig_conformance.report.model import OUTCOMES, NodeSummary, RunSummary, TestResult
from mig_conformance.report.values import short_comparison

OUTCOME_MARK = {"passed": "✅", "failed": "❌", "error": "💥", "skipped": "⏭️",
                "Passed": "✅", "Failed": "❌", "Skipped": "⏭️"}
COUNT_HEADERS = ["Passed", "Failed", "Skipped", "Errors"]
EXIT_MEANING = {2: "interrupted", 3: "internal error", 4: "usage error", 5: "no tests collected"}


def outcome_text(outcome: str) -> str:
    """`✅ passed` — the mark keeps tables scannable, the word keeps them greppable."""
    mark = OUTCOME_MARK.get(outcome)
    return f"{mark} {outcome}" if mark else outcome


def counts(totals: Mapping[str, int]) -> list[str]:
    return [str(int(totals.get(k, 0))) for k in OUTCOMES]


def totals_text(totals: Mapping[str, int]) -> str:
    return ", ".join(f"{int(totals.get(k, 0))} {'errors' if k == 'error' else k}" for k in OUTCOMES)


def duration_text(seconds: float) -> str:
    """`0.42 s`, `12.3 s`, `4m 05s`, `1h 02m 03s`."""
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    m, s = divmod(round(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h {m:02d}m {s:02d}s" if h else f"{m}m {s:02d}s"


def value_text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def test_name(nodeid: str) -> str:
    """The part of a nodeid after the file: `test_allocatable[p5-all-balanced]`."""
    return nodeid.split("::", 1)[1] if "::" in nodeid else nodeid


CONFORMANCE_QUESTION = "did the cluster do what the kit predicted"
CONFIG_QUESTION = "does each config of the user's file work on the nodes it targets"


def questions(summary: RunSummary) -> list[tuple[str, str, str]]:
    """The two questions a run answers, apart: (name, verdict, what that says). No config question without
    --mig-config-file; summaries written before it was asked have no conformance verdict either."""
    out = []
    if summary.conformance_verdict == "Passed":
        out.append(("Conformance", "Passed", "the cluster did what the kit predicted"))
    elif summary.conformance_verdict:
        out.append(("Conformance", summary.conformance_verdict, "the cluster did not do what the kit predicted, "
                    "nothing was checked, or it was not put back (see Failures and Cleanup)"))
    counts = config_counts_text(summary.config_verdict_counts)
    if summary.config_verdict == "Passed":
        out.append(("Config verdicts", "Passed", f"each config of the user's file does what it should on every node it "
                    f"targets: {counts}"))
    elif summary.config_verdict:
        out.append(("Config verdicts", summary.config_verdict, f"{counts}, counted per config and node it targets"))
    return out


def config_counts_text(counts: Mapping[str, int]) -> str:
    """`1 applies, 2 do not apply` (kinds with none left out)."""
    words = {"applies": ("applies", "apply"), "does-not-apply": ("does not apply", "do not apply"),
             "expected-failure": ("expected failure confirmed", "expected failures confirmed"),
             "unexpectedly-applied": ("UNEXPECTEDLY applied", "UNEXPECTEDLY applied")}
    parts = [f"{n} {words.get(k, (k, k))[n != 1]}" for k, n in counts.items() if n]
    return ", ".join(parts) or "none tried"


def config_file(summary: RunSummary) -> str | None:
    """The --mig-config-file of the run, if one was given."""
    value = (summary.settings.get("config_file") or {}).get("value")
    return str(value) if value else None


CONFIG_VERDICT_HEADERS = ["Config", "Node", "GPUs", "Verdict", "Cluster as predicted", "Why", "Reported"]


def config_verdict_rows(summary: RunSummary) -> list[tuple[bool, list[str]]]:
    """(ok, [config, node, GPUs, verdict, whether the cluster did as predicted there, why, what was reported])."""
    rows = []
    for v in summary.config_verdicts:
        node = str(v.get("node") or "-") + (f" ({v['instance_type']})" if v.get("instance_type") else "")
        as_predicted = v.get("as_predicted")
        predicted = "yes" if as_predicted is True else "NO" if as_predicted is False else "-"
        reasons = v.get("reasons")
        why = "\n".join(str(r) for r in reasons) if isinstance(reasons, list) and reasons else "-"
        reported = f"mig-manager: {v.get('mig_manager') or '-'}\nmig-parted on a fresh node: " \
                   f"{v.get('mig_parted') or '-'}"
        cells = [str(v.get("config", "-")), node, str(v.get("gpus") or "-"), str(v.get("label") or "-"), predicted]
        rows.append((v.get("ok") is True, [*cells, why, reported]))
    return rows


def facts(summary: RunSummary, target: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """Run and target facts, in reading order."""
    rows = [("Verdict", f"{summary.verdict} ({totals_text(summary.totals)})")]
    rows += [(name, f"{verdict}: {meaning}") for name, verdict, meaning in questions(summary)]
    if summary.exitstatus not in (None, 0, 1):
        meaning = EXIT_MEANING.get(summary.exitstatus, "abnormal end")
        rows.append(("pytest exit status", f"{summary.exitstatus} ({meaning})"))
    rows += [("Run ID", summary.run_id),
             ("Started", summary.started),
             ("Finished", f"{summary.finished} ({duration_text(summary.duration_s)})"),
             ("Cluster", f"{summary.cluster or '-'} (backend: {summary.backend or '-'})"),
             ("Instance types", ", ".join(summary.instance_types) or "-"),
             ("GPU models", ", ".join(summary.gpu_models) or "-"),
             ("Nodes", str(len(summary.nodes)))]
    for name, version in versions(target):
        rows.append((name, version))
    if summary.cleanup:
        rows.append(("Cleanup", "FAILED: the cluster was not put back (see Cleanup)" if summary.cleanup_failed
                     else "the cluster was put back"))
    rows.append(("Kit", f"mig-conformance {summary.kit_version or '-'}"))
    rows.append(("Command line", summary.command_line or "-"))
    return rows


def versions(target: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """Component versions recorded in TARGET.yaml (`versions:`), labelled for people."""
    found = (target or {}).get("versions")
    if not isinstance(found, Mapping):
        return []
    return [(k.replace("_", " ").capitalize() + " version", value_text(v)) for k, v in found.items()
            if v not in (None, "")]


def settings_rows(summary: RunSummary) -> list[list[str]]:
    return [[name, value_text(s.get("value")), str(s.get("source") or "-")] for name, s in summary.settings.items()]


def category_rows(summary: RunSummary) -> list[list[str]]:
    rows = []
    for name, c in sorted(summary.categories.items()):
        bad = c.get("failed", 0) or c.get("error", 0)
        result = "Failed" if bad else "Passed" if c.get("passed", 0) else "Skipped"
        rows.append([name, result, *counts(c)])
    return rows


def node_rows(summary: RunSummary) -> list[list[str]]:
    return [[n.node, n.instance_type or "-", n.gpu_model or "-", n.verdict, *counts(n.totals)]
            for n in sorted(summary.nodes, key=lambda n: n.node)]


@dataclass(frozen=True)
class TestRow:
    """One line of a per-node table."""

    __test__ = False

    result: TestResult
    name: str
    comparison: str


def test_rows(results: list[TestResult], limit: int = 120) -> list[TestRow]:
    ordered = sorted(results, key=lambda t: (t.category, t.config or "", t.nodeid))
    return [TestRow(t, test_name(t.nodeid), short_comparison(t.expected, t.measured, limit)) for t in ordered]


def skipped(summary: RunSummary) -> list[TestResult]:
    return sorted((t for t in summary.tests if t.outcome == "skipped"), key=lambda t: t.nodeid)


def unattached(summary: RunSummary) -> list[TestResult]:
    """Tests without a node (catalog checks, tests without a record)."""
    return [t for t in summary.tests if t.node is None]


def node_title(node: NodeSummary) -> str:
    extra = ", ".join(x for x in (node.instance_type, node.gpu_model) if x)
    return f"{node.node} ({extra})" if extra else node.node


def where(t: TestResult) -> str:
    """`node n, config c, strategy s` for a failure heading."""
    parts = [f"{k} {v}" for k, v in (("node", t.node), ("instance type", t.instance_type), ("config", t.config),
                                       ("strategy", t.strategy)) if v]
    return ", ".join(parts) or f"category {t.category}"


def layouts(results: list[TestResult]) -> list[tuple[str, list[dict[str, Any]], list[str]]]:
    """Distinct GPU layouts of a node: (config label, layout, test names), ordered by config."""
    seen: dict[str, tuple[str, list[dict[str, Any]], list[str]]] = {}
    for t in sorted(results, key=lambda t: (t.config or "", t.nodeid)):
        if not t.layout:
            continue
        label = " / ".join(x for x in (t.config and f"config {t.config}", t.strategy and f"strategy {t.strategy}")
                           if x) or "layout"
        key = label + json.dumps(t.layout, sort_keys=True)
        seen.setdefault(key, (label, t.layout, []))[2].append(test_name(t.nodeid))
    return list(seen.values())
