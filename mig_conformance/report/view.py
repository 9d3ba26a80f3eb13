"""What report.md and report.html show, as plain rows; the two renderers only format them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mig_conformance.report.model import OUTCOMES, NodeSummary, RunSummary, TestResult
from mig_conformance.report.records import CLEANUP_PROBLEMS
from mig_conformance.report.values import short_comparison

#: What the reports may show besides printable Latin-1: punctuation of WGL4, the set every default font covers
#: (DejaVu, Liberation, Arial, Helvetica). Emoji and dingbats are not in it: they are empty boxes without an emoji font.
SAFE_EXTRA = frozenset("\u2013\u2014\u2018\u2019\u201c\u201d\u2022\u2026\u2190\u2192\u2260\u2264\u2265")
COUNT_HEADERS = ["Passed", "Failed", "Skipped", "Errors"]
EXIT_MEANING = {2: "interrupted", 3: "internal error", 4: "usage error", 5: "no tests collected"}


def outcome_class(outcome: str) -> str:
    """The lower-case outcome (`passed`, `failed`, `error`, `skipped`) of an outcome or verdict word; the HTML
    report draws its mark with CSS, never with a font's glyph (emoji are empty boxes without an emoji font)."""
    return outcome.lower() if outcome.lower() in OUTCOMES else "unknown"


def undrawable(text: str) -> list[str]:
    """The characters of `text` a reader's default fonts may lack: outside printable Latin-1 and SAFE_EXTRA
    (line breaks and tabs allowed), in order of appearance."""
    seen: dict[str, None] = {}
    for c in text:
        code = ord(c)
        if not (c in "\n\t" or 0x20 <= code < 0x7F or 0xA0 <= code <= 0xFF or c in SAFE_EXTRA):
            seen.setdefault(c)
    return list(seen)


def is_bad(outcome: str) -> bool:
    """An outcome or verdict a reader must notice: failed, error, Failed."""
    return outcome_class(outcome) in ("failed", "error")


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


def test_name(nodeid: str, node: str | None = None, instance_type: str | None = None) -> str:
    """The part of a nodeid after the file: `test_allocatable[p5-all-balanced]`. Under a node's heading, without
    the node's own parameter (`NODE[TYPE]`): `test_mixed_strategy_uniform_profile[1g]`, `test_all_balanced`."""
    name = nodeid.split("::", 1)[1] if "::" in nodeid else nodeid
    if node is None or "[" not in name:
        return name
    param = f"{node}[{instance_type or '?'}]"
    function, _, params = name.partition("[")
    params = params[:-1] if params.endswith("]") else params
    if params == param:
        params = ""
    elif params.startswith(f"{param}-"):
        params = params.removeprefix(f"{param}-")
    elif params.endswith(f"-{param}"):
        params = params.removesuffix(f"-{param}")
    else:
        params = params.replace(f"-{param}-", "-", 1)
    return f"{function}[{params}]" if params else function


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
    return [(_label(k) + " version", value_text(v)) for k, v in found.items() if v not in (None, "")]


_ACRONYMS = {"gpu": "GPU", "eks": "EKS", "ami": "AMI", "mig": "MIG", "cuda": "CUDA", "os": "OS", "nvml": "NVML"}


def _label(key: str) -> str:
    """`gpu_operator` -> `GPU operator`, `kubernetes` -> `Kubernetes`."""
    words = [_ACRONYMS.get(w.lower(), w) for w in str(key).split("_") if w]
    if not words:
        return str(key)
    return " ".join([words[0][:1].upper() + words[0][1:], *words[1:]])


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


def test_rows(results: list[TestResult], limit: int = 120, node: NodeSummary | None = None) -> list[TestRow]:
    """The rows of a node's table (names without the node's parameter) or of the tests without a node."""
    ordered = sorted(results, key=lambda t: (t.category, t.config or "", t.nodeid))
    return [TestRow(t, _short_name(t, node), short_comparison(t.expected, t.measured, limit)) for t in ordered]


def _short_name(t: TestResult, node: NodeSummary | None) -> str:
    return test_name(t.nodeid, node.node, node.instance_type) if node is not None else test_name(t.nodeid)


def skipped(summary: RunSummary) -> list[TestResult]:
    return sorted((t for t in summary.tests if t.outcome == "skipped"), key=lambda t: t.nodeid)


def skip_reason(t: TestResult) -> str:
    """The reason of a skip without pytest's `Skipped: ` prefix (the section says so already)."""
    return (t.message or "").removeprefix("Skipped: ").strip() or "-"


def cleanup_items(summary: RunSummary) -> list[tuple[str, list[str]]]:
    """The cleanup lines as list items with their sub-items: `restored 9 change(s)` holds the changes, one per
    line (summary.json keeps them in one string, indented, as the terminal shows them)."""
    items: list[tuple[str, list[str]]] = []
    for line in summary.cleanup:
        head, *rest = str(line).splitlines() or [""]
        items.append((head, [r.strip() for r in rest if r.strip()]))
    return items


def is_cleanup_problem(line: str) -> bool:
    """A cleanup line that says the cluster was not put back (shown in red)."""
    return line.startswith(CLEANUP_PROBLEMS)


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


def layouts(results: list[TestResult],
            node: NodeSummary | None = None) -> list[tuple[str, list[dict[str, Any]], list[str]]]:
    """Distinct GPU layouts of a node: (label, layout, test names), ordered by config. A layout is drawn once
    however many tests, configs or strategies produced it (all-1g.10gb under single and under mixed is one
    picture); its label names them all."""
    seen: dict[str, tuple[list[str], list[str], list[dict[str, Any]], list[str]]] = {}
    for t in sorted(results, key=lambda t: (t.config or "", t.nodeid)):
        if not t.layout:
            continue
        configs, strategies, _, names = seen.setdefault(json.dumps(t.layout, sort_keys=True), ([], [], t.layout, []))
        for value, found in ((t.config, configs), (t.strategy, strategies)):
            if value and value not in found:
                found.append(value)
        names.append(_short_name(t, node))
    return [(_layout_label(configs, sorted(strategies)), layout, names)
            for configs, strategies, layout, names in seen.values()]


def _layout_label(configs: list[str], strategies: list[str]) -> str:
    """`config all-1g.10gb / strategies mixed, single`."""
    parts = [f"{one if len(values) == 1 else many} {', '.join(values)}"
             for one, many, values in (("config", "configs", configs), ("strategy", "strategies", strategies))
             if values]
    return " / ".join(parts) or "layout"
