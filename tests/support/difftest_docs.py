"""The case table of docs/differential.md: one row per node and layout, one column per strategy, each cell the
case's result. The differential test checks the table against its run; MIG_DIFFTEST_UPDATE_DOCS=1 rewrites it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from mig_conformance.k8s.labels import STRATEGIES

DOC = Path(__file__).resolve().parents[2] / "docs" / "differential.md"
BEGIN, END = "<!-- cases:begin -->", "<!-- cases:end -->"
UPDATE_ENV = "MIG_DIFFTEST_UPDATE_DOCS"


def table(cells: Mapping[str, str]) -> str:
    """Markdown rows for case IDs `node/layout/strategy` -> cell (`Comparison.cell`), in the order given."""
    rows: dict[tuple[str, str], dict[str, str]] = {}
    for case_id, text in cells.items():
        node, layout, strategy = case_id.rsplit("/", 2)
        rows.setdefault((node, layout), {})[strategy] = text
    lines = ["| node | layout | " + " | ".join(STRATEGIES) + " |", "|---|---|" + "---|" * len(STRATEGIES)]
    for (node, layout), by_strategy in rows.items():
        lines.append(f"| {node} | {layout} | " + " | ".join(by_strategy.get(s, "") for s in STRATEGIES) + " |")
    return "\n".join(lines)


def documented() -> str:
    """The table between the markers of docs/differential.md."""
    text = DOC.read_text()
    m = re.search(re.escape(BEGIN) + r"\n(.*?)\n" + re.escape(END), text, re.S)
    if not m:
        raise AssertionError(f"{DOC} has no {BEGIN} ... {END} section")
    return m[1].strip()


def documented_rows() -> list[tuple[str, str]]:
    """(node, layout) of each documented row."""
    return [(c[0], c[1]) for line in documented().splitlines()[2:]
            if len(c := [x.strip() for x in line.strip().strip("|").split("|")]) >= 2]


def rewrite(new_table: str) -> None:
    text = DOC.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    DOC.write_text(text[:start] + "\n" + new_table + "\n" + text[end:])
