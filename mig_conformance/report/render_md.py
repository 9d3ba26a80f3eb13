"""report.md: GitHub-flavoured markdown with the verdict, target, settings, categories, nodes and failures.

Outcomes are words (failures in bold), never emoji: the file is read in editors and terminals too."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from mig_conformance.report import view
from mig_conformance.report.model import NodeSummary, RunSummary, TestResult

_SPECIAL = re.compile(r"([\\`*_\[\]<>|#~!])")


def md_text(text: str) -> str:
    """Inline text with markdown/HTML specials escaped and newlines as <br>."""
    escaped = _SPECIAL.sub(r"\\\1", str(text).replace("&", "&amp;"))
    return "<br>".join(escaped.splitlines()) if "\n" in escaped else escaped


def md_code(text: str, in_table: bool = True) -> str:
    """An inline code span; pipes are escaped for table cells (GFM unescapes them there)."""
    text = " ".join(str(text).splitlines())
    text = text.replace("|", "\\|") if in_table else text
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or longest else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def md_block(text: str) -> str:
    """A fenced code block whose fence is longer than any backtick run in `text`."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def md_table(headers: Sequence[str], rows: Sequence[Sequence[str]], raw_cols: Sequence[int] = ()) -> str:
    """A GFM table; cells are escaped except the columns in `raw_cols` (already markdown)."""
    out = ["| " + " | ".join(md_text(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        cells = [c if i in raw_cols else md_text(c) for i, c in enumerate(row)]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def md_outcome(outcome: str) -> str:
    """`passed`, `**failed**`: the word, in bold where a reader must notice it."""
    return f"**{md_text(outcome)}**" if view.is_bad(outcome) else md_text(outcome)


def md_outcome_line(line: str) -> str:
    """A cleanup line, in bold when it says the cluster was not put back."""
    return f"**{md_text(line)}**" if view.is_cleanup_problem(line) else md_text(line)


def render_md(summary: RunSummary, target: Mapping[str, Any] | None = None) -> str:
    """The whole report.md text."""
    parts = [f"# MIG conformance report: {summary.verdict}", ""]
    if summary.signoff:  # the vendor's page comes first
        from mig_conformance.report.render_signoff import signoff_md

        parts += signoff_md(summary)
    facts = [[name, md_code(value) if name in ("Run ID", "Command line") else md_text(value)]
             for name, value in view.facts(summary, target)]
    parts += [md_table(["Fact", "Value"], facts, raw_cols=(1,)), ""]

    parts += _config_verdicts(summary)
    parts += ["## Settings", ""]
    rows = view.settings_rows(summary)
    parts += [md_table(["Setting", "Value", "Source"], rows) if rows else "No settings recorded.", ""]

    parts += ["## Results by category", ""]
    rows = [[md_text(r[0]), md_outcome(r[1]), *r[2:]] for r in view.category_rows(summary)]
    parts += [md_table(["Category", "Result", *view.COUNT_HEADERS], rows, raw_cols=(0, 1)) if rows else "No tests ran.",
              ""]

    parts += ["## Nodes", ""]
    rows = [[*(md_text(c) for c in r[:3]), md_outcome(r[3]), *r[4:]] for r in view.node_rows(summary)]
    parts += [md_table(["Node", "Instance type", "GPU", "Result", *view.COUNT_HEADERS], rows, raw_cols=(0, 1, 2, 3))
              if rows else "No node results.", ""]
    for node in sorted(summary.nodes, key=lambda n: n.node):
        parts += [f"### {md_text(view.node_title(node))}", "", _tests_table(node.results, node), ""]
    others = view.unattached(summary)
    if others:
        parts += ["### Tests without a node", "", _tests_table(others), ""]

    parts += ["## Failures", ""]
    if not summary.failures:
        parts += ["None.", ""]
    for t in sorted(summary.failures, key=lambda t: t.nodeid):
        parts += [f"### {md_code(t.nodeid, in_table=False)}", "",
                  f"{md_outcome(t.outcome)}: {md_text(view.where(t))}", ""]
        if t.message:
            parts += [md_block(t.message), ""]
    if summary.cleanup:
        parts += ["## Cleanup", ""]
        for head, subs in view.cleanup_items(summary):
            parts += [f"- {md_outcome_line(head)}", *(f"  - {md_text(sub)}" for sub in subs)]
        parts.append("")
    skipped = view.skipped(summary)
    if skipped:
        parts += ["## Skipped", ""]
        rows = [[md_code(t.nodeid), md_text(view.skip_reason(t))] for t in skipped]
        parts += [md_table(["Test", "Reason"], rows, raw_cols=(0, 1)), ""]
    parts += ["---", "", f"Rendered from summary.json by mig-conformance {md_text(summary.kit_version or '')}; "
              f"re-render with {md_code('mig-conformance report DIR', in_table=False)}.", ""]
    return "\n".join(parts)


def _config_verdicts(summary: RunSummary) -> list[str]:
    """Does the user's config work: one row per config and node it targets, apart from the conformance results."""
    rows = view.config_verdict_rows(summary)
    if not rows and not view.config_file(summary):
        return []
    lines = ["## Config verdicts", "", f"{view.CONFIG_QUESTION[0].upper()}{view.CONFIG_QUESTION[1:]}? (apart from "
             f"conformance: {view.CONFORMANCE_QUESTION}, the results below)", ""]
    shown = [[*map(md_text, cells[:3]), md_text(cells[3]) if ok else f"**{md_text(cells[3])}**",
              *map(md_text, cells[4:])] for ok, cells in rows]
    lines += [md_table(view.CONFIG_VERDICT_HEADERS, shown, raw_cols=range(7)) if shown else
              "No config was tried: every custom test was skipped (see Skipped).", ""]
    return lines


def _tests_table(results: list[TestResult], node: NodeSummary | None = None) -> str:
    rows = [[md_code(r.name), md_text(r.result.category), md_text(r.result.config or "-"),
             md_text(r.result.strategy or "-"), md_outcome(r.result.outcome),
             md_text(r.comparison or "-")] for r in view.test_rows(results, node=node)]
    headers = ["Test", "Category", "Config", "Strategy", "Result", "Measured (≠ expected)"]
    return md_table(headers, rows, raw_cols=range(6))
