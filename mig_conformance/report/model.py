"""Run summary records and their canonical JSON form (stable key order, sorted lists)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from typing import Any

from mig_conformance.common.errors import MigConformanceError

OUTCOMES = ("passed", "failed", "skipped", "error")
VERDICTS = ("Passed", "Failed")
SCHEMA = "mig-conformance/summary/v1"


class ReportFormatError(MigConformanceError):
    """summary.json is missing, not JSON, or not shaped like a run summary."""


def canonical(value: Any) -> Any:
    """A JSON-safe copy with mapping keys sorted recursively (lists keep their order, sets are sorted)."""
    if is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in fields(value)}
    if isinstance(value, Mapping):
        return {str(k): canonical(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((canonical(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else str(value)
    return str(value)


def canonical_layout(layout: Any) -> list[dict[str, Any]]:
    """Layout entries sorted by GPU index, instances by start then profile."""
    if not isinstance(layout, list):
        return []
    gpus = [canonical(g) for g in layout if isinstance(g, Mapping)]
    for g in gpus:
        if isinstance(g.get("instances"), list):
            g["instances"] = sorted(g["instances"], key=lambda i: (
                _num(i.get("start")) if isinstance(i, dict) else 0, json.dumps(i, sort_keys=True)))
    return sorted(gpus, key=lambda g: (_num(g.get("gpu")), json.dumps(g, sort_keys=True)))


def _num(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else -1.0


@dataclass
class TestResult:
    """One test's outcome with its suite record (no wall-clock time except the duration)."""

    __test__ = False  # not a pytest test class

    nodeid: str
    outcome: str
    duration_s: float = 0.0
    category: str = "other"
    node: str | None = None
    instance_type: str | None = None
    gpu_model: str | None = None
    config: str | None = None
    strategy: str | None = None
    expected: dict[str, Any] = field(default_factory=dict)
    measured: dict[str, Any] = field(default_factory=dict)
    layout: list[dict[str, Any]] = field(default_factory=list)
    message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["duration_s"] = round(float(self.duration_s), 3)
        d["expected"], d["measured"] = canonical(self.expected), canonical(self.measured)
        d["layout"] = canonical_layout(self.layout)
        return d

    @classmethod
    def from_dict(cls, d: Any) -> TestResult:
        d = _mapping(d, "test")
        if d.get("outcome") not in OUTCOMES:
            raise ReportFormatError(f"test {d.get('nodeid')!r}: outcome must be one of {', '.join(OUTCOMES)}")
        kw = _known(cls, d, "test")
        for key in ("expected", "measured"):
            if not isinstance(kw.get(key, {}), dict):
                raise ReportFormatError(f"test {d.get('nodeid')!r}: '{key}' must be a mapping")
        layout = kw.get("layout", [])
        if not isinstance(layout, list) or not all(
                isinstance(g, dict) and isinstance(g.get("instances", []), list) for g in layout):
            raise ReportFormatError(f"test {d.get('nodeid')!r}: 'layout' must be a list of "
                                    "{gpu, slots, slices, instances: [...]} entries")
        return cls(**kw)


@dataclass
class NodeSummary:
    """The results of one Kubernetes node."""

    node: str
    instance_type: str | None = None
    gpu_model: str | None = None
    results: list[TestResult] = field(default_factory=list)

    @property
    def totals(self) -> dict[str, int]:
        return count_outcomes(self.results)

    @property
    def verdict(self) -> str:
        return verdict_of(self.totals)

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, "instance_type": self.instance_type, "gpu_model": self.gpu_model,
                "verdict": self.verdict, "totals": self.totals,
                "results": [r.to_dict() for r in sorted(self.results, key=lambda r: r.nodeid)]}

    @classmethod
    def from_dict(cls, d: Any) -> NodeSummary:
        d = _mapping(d, "node")
        results = d.get("results", [])
        if not isinstance(results, list):
            raise ReportFormatError(f"node {d.get('node')!r}: 'results' must be a list")
        if not isinstance(d.get("node"), str):
            raise ReportFormatError("node entry lacks a 'node' name")
        kw = _known(cls, {k: v for k, v in d.items() if k != "results"}, "node")
        return cls(**kw, results=[TestResult.from_dict(r) for r in results])


@dataclass
class RunSummary:
    """Everything report.md/report.html are rendered from; written as summary.json."""

    run_id: str
    verdict: str
    started: str
    finished: str
    duration_s: float
    cluster: str | None = None
    backend: str | None = None
    command_line: str | None = None
    kit_version: str | None = None
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
    categories: dict[str, dict[str, int]] = field(default_factory=dict)
    nodes: list[NodeSummary] = field(default_factory=list)
    tests: list[TestResult] = field(default_factory=list)
    exitstatus: int | None = None  # pytest's exit status (2 interrupted, 3 internal error, 5 nothing collected)
    cleanup: list[str] = field(default_factory=list)  # what the end-of-run restore and leak check said
    cleanup_failed: bool = False  # the cluster was not put back (then the verdict is Failed)
    # The two questions a run answers, apart: did the cluster do what the kit predicted (conformance), and does the
    # user's --mig-config-file work on the nodes its configs target (config verdicts; None: no config was tried).
    # `verdict` is Failed when either is.
    conformance_verdict: str | None = None
    config_verdict: str | None = None
    config_verdicts: list[dict[str, Any]] = field(default_factory=list)  # one per config and node, by config
    config_verdict_counts: dict[str, int] = field(default_factory=dict)
    #: the vendor sign-off page: one entry per instance type of the run (report/signoff.py); empty without a report
    signoff: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failures(self) -> list[TestResult]:
        return [t for t in self.tests if t.outcome in ("failed", "error")]

    @property
    def instance_types(self) -> list[str]:
        return sorted({t.instance_type for t in self.tests if t.instance_type})

    @property
    def gpu_models(self) -> list[str]:
        return sorted({t.gpu_model for t in self.tests if t.gpu_model})

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"schema": SCHEMA}
        for f in fields(self):
            d[f.name] = getattr(self, f.name)
        d["duration_s"] = round(float(self.duration_s), 3)
        d["settings"] = canonical(self.settings)
        d["totals"] = {k: int(self.totals.get(k, 0)) for k in OUTCOMES}
        d["categories"] = {name: {k: int(c.get(k, 0)) for k in OUTCOMES}
                           for name, c in sorted(self.categories.items())}
        d["nodes"] = [n.to_dict() for n in sorted(self.nodes, key=lambda n: n.node)]
        d["tests"] = [t.to_dict() for t in sorted(self.tests, key=lambda t: t.nodeid)]
        d["config_verdicts"] = [canonical(v) for v in self.config_verdicts]
        d["config_verdict_counts"] = {k: int(n) for k, n in self.config_verdict_counts.items()}
        d["signoff"] = [canonical(e) for e in self.signoff]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, d: Any) -> RunSummary:
        d = _mapping(d, "summary")
        schema = d.get("schema", SCHEMA)
        if not isinstance(schema, str) or not schema.startswith("mig-conformance/summary/"):
            raise ReportFormatError(f"not a mig-conformance summary (schema {schema!r})")
        if d.get("verdict") not in VERDICTS:
            raise ReportFormatError(f"'verdict' must be Passed or Failed, got {d.get('verdict')!r}")
        for key in ("nodes", "tests", "config_verdicts", "signoff"):
            if not isinstance(d.get(key, []), list):
                raise ReportFormatError(f"'{key}' must be a list")
        if not all(isinstance(v, dict) for v in d.get("signoff", [])):
            raise ReportFormatError("'signoff' must be a list of mappings")
        if not all(isinstance(v, dict) for v in d.get("config_verdicts", [])):
            raise ReportFormatError("'config_verdicts' must be a list of mappings")
        for key in ("conformance_verdict", "config_verdict"):
            if d.get(key) not in (None, *VERDICTS):
                raise ReportFormatError(f"'{key}' must be Passed, Failed or null, got {d.get(key)!r}")
        for key in ("settings", "totals", "categories", "config_verdict_counts"):
            if not isinstance(d.get(key, {}), dict):
                raise ReportFormatError(f"'{key}' must be a mapping")
        for key in ("settings", "categories"):
            bad = [k for k, v in d.get(key, {}).items() if not isinstance(v, dict)]
            if bad:
                raise ReportFormatError(f"'{key}.{bad[0]}' must be a mapping")
        counts = [d.get("totals", {}), d.get("config_verdict_counts", {}), *d.get("categories", {}).values()]
        if any(not _is(n, int) for c in counts for n in c.values()):
            raise ReportFormatError("'totals' and 'categories' must hold whole numbers")
        plain = {k: v for k, v in d.items() if k not in ("schema", "nodes", "tests")}
        kw = _known(cls, plain, "summary")
        return cls(**kw, nodes=[NodeSummary.from_dict(n) for n in d.get("nodes", [])],
                   tests=[TestResult.from_dict(t) for t in d.get("tests", [])])

    @classmethod
    def from_json(cls, text: str) -> RunSummary:
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise ReportFormatError(f"summary is not valid JSON: {exc}") from None
        except RecursionError:
            raise ReportFormatError("summary is not a run summary: JSON nested too deep") from None
        return cls.from_dict(doc)


def count_outcomes(results: list[TestResult]) -> dict[str, int]:
    counts = dict.fromkeys(OUTCOMES, 0)
    for r in results:
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
    return counts


def verdict_of(totals: Mapping[str, int]) -> str:
    """Passed when nothing failed or errored and at least one test passed."""
    ok = not totals.get("failed") and not totals.get("error") and totals.get("passed", 0) > 0
    return "Passed" if ok else "Failed"


def _mapping(d: Any, what: str) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise ReportFormatError(f"{what} entry must be a JSON object, got {type(d).__name__}")
    return d


_STR = {"run_id", "verdict", "started", "finished", "nodeid", "outcome", "category"}
_OPTIONAL_STR = {"node", "instance_type", "gpu_model", "config", "strategy", "message", "cluster", "backend",
                 "command_line", "kit_version", "conformance_verdict", "config_verdict"}


def _known(cls: type, d: Mapping[str, Any], what: str) -> dict[str, Any]:
    """The fields of `cls` present in `d` (unknown keys ignored), checked for presence and type."""
    names = {f.name for f in fields(cls)} - {"results", "nodes", "tests"}
    kw = {k: v for k, v in d.items() if k in names}
    for f in fields(cls):
        if f.name in names and f.default is MISSING and f.default_factory is MISSING and f.name not in kw:
            raise ReportFormatError(f"{what} entry lacks '{f.name}'")
    for name, value in kw.items():
        ok = (isinstance(value, str) if name in _STR else
              value is None or isinstance(value, str) if name in _OPTIONAL_STR else
              _is(value, (int, float)) if name == "duration_s" else
              value is None or _is(value, int) if name == "exitstatus" else
              isinstance(value, list) and all(isinstance(x, str) for x in value) if name == "cleanup" else
              isinstance(value, bool) if name == "cleanup_failed" else True)
        if not ok:
            raise ReportFormatError(f"{what} entry: '{name}' has the wrong type ({type(value).__name__})")
    return kw


def _is(value: Any, typ: type | tuple[type, ...]) -> bool:
    return isinstance(value, typ) and not isinstance(value, bool)

