"""Terminal output: the per-node/config summary table, and long waits: a one-line status on a TTY, a line now and
then elsewhere (CI logs)."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from mig_conformance.report.model import RunSummary
from mig_conformance.report.values import short_comparison
from mig_conformance.report.view import questions, totals_text

if TYPE_CHECKING:
    from mig_conformance.cluster.base import WaitProgress

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
    lines += verdict_lines(summary)
    return "\n".join(lines)


def verdict_lines(summary: RunSummary) -> list[str]:
    """The config verdicts (one line each, why first), the two questions apart, then the overall verdict."""
    lines = []
    if summary.config_verdicts:
        lines.append("config verdicts (config on node: verdict: why | what mig-manager and mig-parted reported):")
    for v in summary.config_verdicts:
        reasons = "; ".join(str(r) for r in v.get("reasons") or []) if isinstance(v.get("reasons"), list) else ""
        reported = f"mig-manager: {v.get('mig_manager') or '-'}; mig-parted: {v.get('mig_parted') or '-'}"
        label = str(v.get("label") or v.get("verdict"))
        lines.append(f"  {v.get('config')} on {v.get('node')} ({v.get('gpus')}): "
                     f"{label if v.get('ok') else label.upper()}" + (f": {reasons}" if reasons else "")
                     + ("" if v.get("ok") else f" | {reported}"))
    lines += [f"{name.lower()}: {verdict}: {meaning}" for name, verdict, meaning in questions(summary)]
    lines.append(f"verdict: {summary.verdict} ({totals_text(summary.totals)})")
    return lines


class StatusLine:
    """A status shown while waiting, on a TTY only, after whatever the current line already holds: the cursor is
    saved where the status starts (ESC 7) and every update and the final clear go back there (ESC 8) and erase to
    the end of the line (ESC [K), so pytest's progress line is left exactly as pytest wrote it.

    `column` is where the current line's text ends (pytest's `width_of_current_line`): the status is cut to the
    room left on the line, and not shown at all when fewer than `MIN_ROOM` columns are left.
    Under pytest, update it inside `capturemanager.global_and_fixture_disabled()` so it reaches the terminal.
    """

    SAVE, BACK = "\x1b7", "\x1b8\x1b[K"
    MIN_ROOM = 20

    def __init__(self, stream: TextIO | None = None, width: int | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self._shown = False
        try:
            self.enabled = bool(self.stream.isatty())
        except (AttributeError, ValueError, OSError):
            self.enabled = False

    @property
    def shown(self) -> bool:
        return self._shown

    def update(self, text: str, column: int = 0) -> None:
        """Show `text` (one line, cut to the room left after `column`) in place of the previous status."""
        if not self.enabled:
            return
        width = self.width or shutil.get_terminal_size((80, 24)).columns
        room = width - column - 1
        if room < self.MIN_ROOM and not self._shown:
            return
        line = " ".join(text.split())[: max(0, room)]
        self.stream.write((self.BACK if self._shown else self.SAVE) + line)
        self.stream.flush()
        self._shown = True

    def clear(self) -> None:
        """Erase the status: the cursor is back where pytest left it."""
        if self.enabled and self._shown:
            self.stream.write(self.BACK)
            self.stream.flush()
        self._shown = False

    def __enter__(self) -> StatusLine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.clear()


LARGE_FLEET = 1_000  #: work over this many nodes or more shows its progress


class CountProgress:
    """Progress of work over many nodes (creating a fleet of 10,000 simulated nodes, restoring it) as plain lines, so
    that they stay readable in CI logs too: one each time another tenth is done, with the time it has taken so far,
    for `LARGE_FLEET` nodes or more only. Called as `(what, done, total)` after each node."""

    def __init__(self, write: Callable[[str], None], threshold: int = LARGE_FLEET, steps: int = 10,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.write, self.threshold, self.steps, self.clock = write, threshold, steps, clock
        self._what: tuple[str, int] | None = None
        self._started = 0.0
        self._step = 0

    def __call__(self, what: str, done: int, total: int) -> None:
        if total < self.threshold:
            return
        if self._what != (what, total) or done <= 1:  # a new piece of work
            self._what, self._started, self._step = (what, total), self.clock(), 0
        step = done * self.steps // total
        if step > self._step:
            self._step = step
            self.write(f"mig-conformance: {what}: {done:,}/{total:,} ({100 * done // total}%), "
                       f"{self.clock() - self._started:.1f} s")


WAIT_LINE_S = 30.0


class WaitLog:
    """The lines of long waits where no status line can be shown (no TTY: CI logs, files): one once a wait has
    lasted `every` seconds and again every `every` seconds, naming what is awaited, the seconds waited and allowed
    and the state seen; and one when such a wait ends. Short waits print nothing."""

    def __init__(self, every: float = WAIT_LINE_S) -> None:
        self.every = every
        self._last: WaitProgress | None = None
        self._next = every
        self._printed = False

    def update(self, progress: WaitProgress | None) -> str | None:
        """The line to print for this poll (None: nothing); `progress` None ends the wait."""
        last = self._last
        if progress is None:
            printed, self._last, self._next, self._printed = self._printed, None, self.every, False
            if last is None or not printed:
                return None
            return f"mig-conformance: waited {last.elapsed:.0f}s for {last.what}; last state: {last.state}"
        if last is None or progress.what != last.what or progress.elapsed < last.elapsed:  # a new wait
            self._next, self._printed = self.every, False
        self._last = progress
        if progress.elapsed < self._next:
            return None
        self._printed = True
        self._next = (progress.elapsed // self.every + 1) * self.every
        return (f"mig-conformance: waiting for {progress.what}: {progress.elapsed:.0f}s of {progress.timeout:.0f}s; "
                f"{progress.state}")
