"""Turns pytest test reports (setup/call/teardown) plus suite records into a RunSummary.

Fed on the controller only; records arrive as the `(RECORD_PROPERTY, {...})` entry of `user_properties`,
so they survive xdist. The module does not import pytest.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from mig_conformance.common.scrub import REDACTED, SECRET_KEY, scrub, scrub_text
from mig_conformance.report.model import (
    OUTCOMES,
    NodeSummary,
    RunSummary,
    TestResult,
    canonical,
    count_outcomes,
    verdict_of,
)
from mig_conformance.report.records import RECORD_PROPERTY, CleanupOutcome
from mig_conformance.validation.verdict import VERDICTS

MAX_MESSAGE_LINES = 3
MAX_LINE_CHARS = 240


@dataclass
class _Entry:
    outcome: str | None = None
    duration: float = 0.0
    record: Mapping[str, Any] | None = None
    messages: list[str] = field(default_factory=list)


def short_message(longrepr_text: str | None) -> str | None:
    """First assertion lines (pytest's `E ...` lines) or the last line of a crash; never a traceback."""
    if not longrepr_text or not longrepr_text.strip():
        return None
    lines = longrepr_text.splitlines()
    e_lines = [ln[1:] for ln in lines if ln == "E" or ln.startswith("E ")]
    if e_lines:
        indent = min((len(ln) - len(ln.lstrip()) for ln in e_lines if ln.strip()), default=0)
        picked = [ln[indent:].rstrip() for ln in e_lines]
    else:
        picked = [next(ln.strip() for ln in reversed(lines) if ln.strip())]
    picked = [ln if len(ln) <= MAX_LINE_CHARS else ln[: MAX_LINE_CHARS - 1] + "…" for ln in picked if ln.strip()]
    if len(picked) > MAX_MESSAGE_LINES:
        picked = [*picked[:MAX_MESSAGE_LINES], "…"]
    return scrub_text("\n".join(picked)) or None


def longrepr_text_of(report: Any) -> str | None:
    """Text of a pytest report's longrepr: the reason of a skip, the failure text otherwise."""
    longrepr = getattr(report, "longrepr", None)
    if longrepr is None:
        return None
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # skip: (path, lineno, "Skipped: reason")
        return str(longrepr[2])
    text = getattr(report, "longreprtext", None)
    return text if isinstance(text, str) else str(longrepr)


def iso_utc(when: datetime | float | str) -> str:
    """`2025-06-01T12:00:00Z` from a datetime, an epoch time or an ISO string."""
    if isinstance(when, str):
        return when
    if isinstance(when, (int, float)):
        when = datetime.fromtimestamp(when, UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class ResultCollector:
    """Accumulates one entry per test nodeid; `summary()` builds the RunSummary."""

    def __init__(self, run_id: str | None = None) -> None:
        self.run_id = run_id or str(uuid.uuid4())
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def add_report(self, nodeid: str, when: str, outcome: str, duration: float,
                   user_properties: Iterable[Any] = (), longrepr_text: str | None = None) -> None:
        """One phase report (when: setup|call|teardown; outcome: passed|failed|skipped)."""
        entry = self._entries.setdefault(nodeid, _Entry())
        entry.duration += float(duration or 0.0)
        record = _record(user_properties)
        if record is not None:
            entry.record = record
        message = short_message(longrepr_text) if outcome != "passed" else None
        if when == "call":
            entry.outcome = outcome if outcome in OUTCOMES else "error"
        elif when == "setup" and outcome != "passed":
            entry.outcome = "error" if outcome == "failed" else "skipped"
            message = f"error in setup: {message}" if message and outcome == "failed" else message
        elif when == "teardown" and outcome == "failed":
            if entry.outcome != "failed":
                entry.outcome = "error"
            message = f"error in teardown: {message}" if message else "error in teardown"
        if message:
            entry.messages.append(message)

    def add_pytest_report(self, report: Any) -> None:
        """Convenience for a pytest TestReport (duck-typed; pytest is not imported)."""
        self.add_report(report.nodeid, report.when, report.outcome, getattr(report, "duration", 0.0),
                        getattr(report, "user_properties", ()), longrepr_text_of(report))

    def results(self) -> list[TestResult]:
        """One TestResult per test, sorted by nodeid."""
        return [self._result(nodeid, e) for nodeid, e in sorted(self._entries.items())]

    def summary(self, *, started: datetime | float | str, finished: datetime | float | str,
                cluster: str | None = None, backend: str | None = None, command_line: str | None = None,
                kit_version: str | None = None, settings: Mapping[str, Any] | None = None,
                run_id: str | None = None, exitstatus: int | None = None,
                cleanup: CleanupOutcome | None = None) -> RunSummary:
        """The run summary.

        `settings` maps name -> (value, source), {value, source} or an object with both. `exitstatus` is
        pytest's: anything but 0 (ok) or 1 (tests failed), e.g. 2 interrupted, makes the verdict Failed. So does
        a `cleanup` (the session's restore and leak check) that left the cluster changed.
        """
        tests = self.results()
        totals = count_outcomes(tests)
        verdict = verdict_of(totals)
        exitstatus = None if exitstatus is None else int(exitstatus)
        failed_cleanup = cleanup is not None and cleanup.failed
        verdicts = self.config_verdicts()
        # a custom test that failed only because the user's config does not work: the cluster still conformed
        config_only = {v["nodeid"] for v in verdicts if v.get("as_predicted") and not v.get("ok")}
        conformance = verdict_of(count_outcomes([replace(t, outcome="passed") if t.nodeid in config_only and
                                                 t.outcome == "failed" else t for t in tests]))
        if exitstatus not in (None, 0, 1) or failed_cleanup:
            verdict = conformance = "Failed"
        categories: dict[str, dict[str, int]] = {}
        for t in tests:
            counts = categories.setdefault(t.category, dict.fromkeys(OUTCOMES, 0))
            counts[t.outcome] += 1
        by_node: dict[str, NodeSummary] = {}
        for t in tests:
            if t.node is None:
                continue
            ns = by_node.setdefault(t.node, NodeSummary(t.node))
            ns.instance_type = ns.instance_type or t.instance_type
            ns.gpu_model = ns.gpu_model or t.gpu_model
            ns.results.append(t)
        if kit_version is None:
            from mig_conformance import __version__ as kit_version
        return RunSummary(
            run_id=run_id or self.run_id, verdict=verdict, started=iso_utc(started), finished=iso_utc(finished),
            duration_s=_seconds_between(started, finished), cluster=cluster, backend=backend,
            command_line=scrub_text(command_line) if command_line else command_line, kit_version=kit_version,
            settings=normalize_settings(settings or {}), totals=totals,
            categories=dict(sorted(categories.items())), nodes=sorted(by_node.values(), key=lambda n: n.node),
            tests=tests, exitstatus=exitstatus, cleanup=cleanup.lines() if cleanup is not None else [],
            cleanup_failed=failed_cleanup, conformance_verdict=conformance,
            config_verdict=None if not verdicts else "Passed" if all(v.get("ok") for v in verdicts) else "Failed",
            config_verdicts=verdicts, config_verdict_counts=verdict_counts(verdicts))

    def config_verdicts(self) -> list[dict[str, Any]]:
        """The custom suite's config verdicts (records' `config_verdict`), each with its test's nodeid and outcome,
        ordered by config, then node."""
        found = []
        for nodeid, e in self._entries.items():
            v = (e.record or {}).get("config_verdict")
            if isinstance(v, Mapping):
                found.append(scrub(canonical({**v, "nodeid": nodeid, "outcome": e.outcome or "error"})))
        return sorted(found, key=lambda v: (str(v.get("config")), str(v.get("node")), v["nodeid"]))

    @staticmethod
    def _result(nodeid: str, e: _Entry) -> TestResult:
        r = e.record or {}
        outcome = e.outcome or "error"
        messages = e.messages or ([] if e.outcome else ["incomplete: the test reported no result"])
        return TestResult(
            nodeid=nodeid, outcome=outcome, duration_s=round(e.duration, 3),
            category=_text(r.get("category")) or "other", node=_text(r.get("node")),
            instance_type=_text(r.get("instance_type")), gpu_model=_text(r.get("gpu_model")),
            config=_text(r.get("config")), strategy=_text(r.get("strategy")),
            expected=scrub(_dict(r.get("expected"))), measured=scrub(_dict(r.get("measured"))),
            layout=[canonical(g) for g in r.get("layout") or [] if isinstance(g, Mapping)]
            if isinstance(r.get("layout"), list) else [],
            message="\n".join(messages) if messages else None)


def verdict_counts(verdicts: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """How many config verdicts of each kind (every kind listed once a config was tried; {} when none was)."""
    listed = list(verdicts)
    if not listed:
        return {}
    counts = dict.fromkeys(VERDICTS, 0)
    for v in listed:
        kind = str(v.get("verdict"))
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def normalize_settings(settings: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """name -> {value, source}, JSON-safe and scrubbed."""
    out: dict[str, dict[str, Any]] = {}
    for name in sorted(settings):
        s = settings[name]
        if isinstance(s, Mapping):
            value, source = s.get("value"), s.get("source")
        elif isinstance(s, tuple) and len(s) == 2:
            value, source = s
        elif hasattr(s, "value") and hasattr(s, "source"):
            value, source = s.value, s.source
        else:
            value, source = s, None
        if SECRET_KEY.search(str(name)) and value not in (None, ""):
            value = REDACTED
        out[str(name)] = {"value": scrub(canonical(value)), "source": None if source is None else str(source)}
    return out


def _record(user_properties: Iterable[Any]) -> Mapping[str, Any] | None:
    """All result records of a test merged in order (the plugin adds a base record, the test its own)."""
    found: dict[str, Any] | None = None
    for prop in user_properties or ():
        if isinstance(prop, (tuple, list)) and len(prop) == 2 and prop[0] == RECORD_PROPERTY:
            value = json.loads(prop[1]) if isinstance(prop[1], str) else prop[1]
            if isinstance(value, Mapping):
                found = {**(found or {}), **value}
    return found


def one_record_property(user_properties: Iterable[Any]) -> list[tuple[str, Any]]:
    """The test's properties with its result records merged into one `mig_result` property holding JSON (what
    junit.xml shows), other properties kept."""
    props = list(user_properties or ())
    others = [p for p in props if not (isinstance(p, (tuple, list)) and len(p) == 2 and p[0] == RECORD_PROPERTY)]
    record = _record(props)
    if record is None:
        return others
    return [*others, (RECORD_PROPERTY, json.dumps(canonical(record), sort_keys=True, separators=(",", ":")))]


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _dict(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    return canonical(value) if isinstance(value, Mapping) else {"value": canonical(value)}


def _seconds_between(started: datetime | float | str, finished: datetime | float | str) -> float:
    def as_dt(x: datetime | float | str) -> datetime:
        if isinstance(x, datetime):
            return x if x.tzinfo else x.replace(tzinfo=UTC)
        if isinstance(x, (int, float)):
            return datetime.fromtimestamp(x, UTC)
        return datetime.fromisoformat(x.replace("Z", "+00:00"))
    try:
        return round(max(0.0, (as_dt(finished) - as_dt(started)).total_seconds()), 3)
    except ValueError:
        return 0.0
