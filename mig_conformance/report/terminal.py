"""Terminal output: the per-node/config summary table and a one-line status for long waits."""

from __future__ import annotations

import shutil
import sys
from typing import TextIO

from .model import RunSummary
from .values import short_comparison
from .view import totals_text

HEADERS = ("node", "instance type", "category", "config", "strategy", "result", "measured (!= expected)")


def summary_table(summary: RunSummary, width: int | None = None) -> str:
    """Plain-text table, one row per test with a record, then the verdict line. ASCII only."""
    width = width or shutil.get_terminal_size((120, 24)).columns
    tests = sorted(summary.tests, key=lambda t: (t.node or "", t.category, t.config or "", t.nodeid))
    rows = [[t.node or "-", t.instance_type or "-", t.category, t.config or "-", t.strategy or "-",
             t.outcome.upper() if t.outcome in ("failed", "error") else t.outcome, ""] for t in tests]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(HEADERS[:-1])]
    room = max(20, width - sum(widths) - 2 * len(widths))
    for row, t in zip(rows, tests, strict=True):
        row[-1] = short_comparison(t.expected, t.measured, room, ascii_only=True) or "-"
    widths.append(max([len(HEADERS[-1])] + [len(r[-1]) for r in rows]))
    lines = ["  ".join(c.ljust(w) for c, w in zip(HEADERS, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.append(f"verdict: {summary.verdict} ({totals_text(summary.totals)})")
    return "\n".join(lines)


class StatusLine:
    """Rewrites one line in place (`\\r`) while waiting, when `stream` is a TTY; writes nothing otherwise.

    Under pytest, update it inside `capturemanager.global_and_fixture_disabled()` so it reaches the terminal.
    """

    def __init__(self, stream: TextIO | None = None, width: int | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self._shown = 0
        try:
            self.enabled = bool(self.stream.isatty())
        except (AttributeError, ValueError, OSError):
            self.enabled = False

    def update(self, text: str) -> None:
        """Show `text` (one line, cut to the terminal width) in place of the previous status."""
        if not self.enabled:
            return
        width = self.width or shutil.get_terminal_size((80, 24)).columns
        line = " ".join(text.split())[: max(1, width - 1)]
        pad = " " * max(0, self._shown - len(line))
        self.stream.write(f"\r{line}{pad}")
        self.stream.flush()
        self._shown = len(line)

    def clear(self) -> None:
        """Erase the status so normal output continues on a clean line."""
        if self.enabled and self._shown:
            self.stream.write("\r" + " " * self._shown + "\r")
            self.stream.flush()
        self._shown = 0

    def __enter__(self) -> StatusLine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.clear()
