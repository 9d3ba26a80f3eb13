"""`report diff A B`: what changed between two report bundles, per node category and test.

Two runs are compared as a user compares them: sim against a real cluster, before and after an upgrade, one GPU on
two instance types. So what legitimately differs between runs is normalised away first (`NORMALISED`): node names
(nodes are paired by instance type and GPU model, then by GPU model alone), run ids, times and durations, the
backend and cluster names, paths, the command line and the cleanup text. What is left are the verdicts (run,
conformance, config, every test), the values each test expected and measured (and its GPU layouts), the config
verdicts, and the stack versions of TARGET.yaml.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mig_conformance.report.bundle import load_summary, load_target
from mig_conformance.report.model import NodeSummary, ReportFormatError, RunSummary, TestResult

#: What is not compared, and why (printed with --json and documented in README's report section).
NORMALISED = (
    "node names: nodes are paired by instance type and GPU model (then by GPU model alone, in name order) and shown "
    "as <instance type>#<n>; a node's name inside test ids and values is replaced the same way",
    "run_id, started, finished, duration_s, every test's duration_s: timings differ on every run",
    "cluster, backend, command_line, settings, cleanup text, evidence/, junit.xml: they name the backend, paths "
    "and objects of one run",
    "test messages: shown for a test whose outcome changed, never compared (they quote timings and names)",
    "versions a backend does not know (sim's 'simulated', Kubernetes 'sim') and the suffix ' (simulated)'; "
    "components only one bundle names (etcd, kwok, platform)",
)
#: TARGET.yaml `versions` keys compared (the stack: report.target's canonical names)
VERSION_KEYS = ("kubernetes", "gpu_operator", "mig_manager", "device_plugin", "gpu_feature_discovery", "driver")
_PLACEHOLDERS = {"", "sim", "simulated", "local", "unknown", "none", "null"}
#: test fields whose values are compared leaf by leaf
VALUE_FIELDS = ("config", "strategy", "expected", "measured", "layout")


@dataclass(frozen=True)
class Change:
    """One value that differs: where (a path of keys), and its value in A and B (None: absent)."""

    path: tuple[str | int, ...]
    a: Any
    b: Any

    @property
    def where(self) -> str:
        return " > ".join(str(p) for p in self.path)

    def as_dict(self) -> dict[str, Any]:
        return {"path": list(self.path), "a": self.a, "b": self.b}


@dataclass(frozen=True)
class TestDiff:
    test: str
    category: str
    a: str | None  # outcome in A (None: the test is only in B)
    b: str | None
    values: tuple[Change, ...] = ()
    messages: tuple[str | None, str | None] = (None, None)

    @property
    def verdict_changed(self) -> bool:
        return self.a != self.b

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"test": self.test, "category": self.category, "a": self.a, "b": self.b,
                             "verdict_changed": self.verdict_changed, "values": [c.as_dict() for c in self.values]}
        if self.verdict_changed:
            d["messages"] = {"a": self.messages[0], "b": self.messages[1]}
        return d


@dataclass(frozen=True)
class NodeDiff:
    """One node category: the paired nodes (either may be None) and its tests that differ."""

    category: str
    a_node: str | None
    b_node: str | None
    fields: tuple[Change, ...]
    tests: tuple[TestDiff, ...]
    same_tests: int

    def as_dict(self) -> dict[str, Any]:
        return {"category": self.category, "a_node": self.a_node, "b_node": self.b_node,
                "fields": [c.as_dict() for c in self.fields], "same_tests": self.same_tests,
                "tests": [t.as_dict() for t in self.tests]}


@dataclass(frozen=True)
class BundleFacts:
    path: str
    run_id: str
    cluster: str | None
    backend: str | None
    verdict: str
    versions: Mapping[str, str]

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "run_id": self.run_id, "cluster": self.cluster, "backend": self.backend,
                "verdict": self.verdict, "versions": dict(self.versions)}


@dataclass(frozen=True)
class BundleDiff:
    a: BundleFacts
    b: BundleFacts
    run: tuple[Change, ...]
    versions: tuple[Change, ...]
    nodes: tuple[NodeDiff, ...]
    other_tests: tuple[TestDiff, ...]  # tests without a node
    config_verdicts: tuple[Change, ...] = field(default=())

    @property
    def tests(self) -> Iterator[TestDiff]:
        yield from (t for n in self.nodes for t in n.tests)
        yield from self.other_tests

    @property
    def verdicts_differ(self) -> bool:
        """Exit 1: the run, conformance or config verdict, a test's outcome or a config verdict differs, or a test
        or node exists in one bundle only."""
        return bool(self.run or self.config_verdicts or any(t.verdict_changed for t in self.tests)
                    or any(n.a_node is None or n.b_node is None for n in self.nodes))

    @property
    def count(self) -> int:
        """How many differences: run/version/config-verdict changes, node field changes, and per test its verdict
        change and each value change."""
        return (len(self.run) + len(self.versions) + len(self.config_verdicts)
                + sum(len(n.fields) for n in self.nodes)
                + sum(int(t.verdict_changed) + len(t.values) for t in self.tests))

    def as_dict(self) -> dict[str, Any]:
        return {"a": self.a.as_dict(), "b": self.b.as_dict(), "differences": self.count,
                "verdicts_differ": self.verdicts_differ, "run": [c.as_dict() for c in self.run],
                "versions": [c.as_dict() for c in self.versions],
                "config_verdicts": [c.as_dict() for c in self.config_verdicts],
                "nodes": [n.as_dict() for n in self.nodes if n.fields or n.tests or not (n.a_node and n.b_node)],
                "other_tests": [t.as_dict() for t in self.other_tests], "normalised": list(NORMALISED)}


# ---- reading ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Bundle:
    path: str
    summary: RunSummary
    target: Mapping[str, Any] | None


def load_bundle(path: str | os.PathLike[str]) -> Bundle:
    """A bundle folder's summary.json and TARGET.yaml; ReportFormatError names the folder and what is wrong."""
    summary = load_summary(path)
    try:
        target = load_target(path)
    except ReportFormatError as exc:
        raise ReportFormatError(f"{Path(path) / 'TARGET.yaml'}: {exc}") from None
    return Bundle(str(path), summary, target)


def stack_versions(target: Mapping[str, Any] | None) -> dict[str, str]:
    """TARGET.yaml's known stack versions (placeholders and ' (simulated)' dropped)."""
    raw = target.get("versions") if isinstance(target, Mapping) else None
    out: dict[str, str] = {}
    for key in VERSION_KEYS:
        value = raw.get(key) if isinstance(raw, Mapping) else None
        text = str(value).removesuffix(" (simulated)").strip() if value is not None else ""
        if text.lower() not in _PLACEHOLDERS:
            out[key] = text
    return out


# ---- pairing nodes ---------------------------------------------------------------------------------------------
def _nodes(summary: RunSummary) -> list[NodeSummary]:
    return sorted((n for n in summary.nodes if n.node), key=lambda n: n.node)


def pair_nodes(a: RunSummary, b: RunSummary) -> list[tuple[str, NodeSummary | None, NodeSummary | None]]:
    """(category label, node of A, node of B): equal (instance type, GPU model) first, in name order; then the
    rest by GPU model alone (one GPU on two instance types); what is left is in one bundle only."""
    left, right = _nodes(a), _nodes(b)
    pairs: list[tuple[str, NodeSummary | None, NodeSummary | None]] = []
    for key in (lambda n: (n.instance_type, n.gpu_model), lambda n: (n.gpu_model,)):
        for node in list(left):
            match = next((m for m in right if key(m) == key(node)), None)
            if match is not None:
                pairs.append(("", node, match))
                left.remove(node)
                right.remove(match)
    pairs += [("", n, None) for n in left] + [("", None, n) for n in right]
    seen: dict[str, int] = {}
    labelled = []
    for _, x, y in pairs:
        ref = x or y
        assert ref is not None
        if x and y and x.instance_type != y.instance_type:
            base = f"{x.instance_type or '?'}|{y.instance_type or '?'}"
        else:
            base = ref.instance_type or ref.gpu_model or "node"
        seen[base] = seen.get(base, 0) + 1
        labelled.append((f"{base}#{seen[base]}", x, y))
    return labelled


class _Renamer:
    """Replaces one bundle's node names (and `name[instance type]` in test ids) by category labels: one regular
    expression of every name, longest first (node-10 before node-1), so a string is scanned once."""

    def __init__(self, pairs: Sequence[tuple[str, NodeSummary | None, NodeSummary | None]], side: int) -> None:
        self.labels: dict[str, str] = {}
        for label, *nodes in pairs:
            node = nodes[side]
            if node is not None:
                self.labels[node.node] = f"<{label}>"
                if node.instance_type:
                    self.labels[f"{node.node}[{node.instance_type}]"] = f"<{label}>"
        names = sorted(self.labels, key=len, reverse=True)
        self.pattern = re.compile("|".join(re.escape(n) for n in names)) if names else None

    def __call__(self, value: Any) -> Any:
        if self.pattern is None:
            return value
        if isinstance(value, str):
            return self.pattern.sub(lambda m: self.labels[m.group(0)], value)
        if isinstance(value, Mapping):
            return {self(k): self(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self(v) for v in value]
        return value


# ---- comparing -------------------------------------------------------------------------------------------------
def _leaves(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    if isinstance(value, Mapping) and value:
        for k in sorted(value, key=str):
            yield from _leaves(value[k], (*path, str(k)))
    elif isinstance(value, list) and value:
        for i, v in enumerate(value):
            yield from _leaves(v, (*path, i))
    else:
        yield path, value


def changes(a: Any, b: Any, path: tuple[str | int, ...] = ()) -> tuple[Change, ...]:
    """Leaf-by-leaf differences of two JSON values (a leaf missing on one side is None there)."""
    left, right = dict(_leaves(a, path)), dict(_leaves(b, path))
    keys = list(left) + [k for k in right if k not in left]
    return tuple(Change(k, left.get(k), right.get(k)) for k in keys if left.get(k) != right.get(k))


def _test_values(t: TestResult) -> dict[str, Any]:
    """The compared fields (layouts as summary.json holds them: GPUs by index, instances by start)."""
    return {f: getattr(t, f) for f in VALUE_FIELDS if getattr(t, f) not in (None, {}, [])}


def _renamed(values: dict[str, Any], rename: _Renamer) -> str:
    """Canonical JSON text with node names replaced (one pass over one string)."""
    return str(rename(json.dumps(values, sort_keys=True, ensure_ascii=False)))


def _compare_tests(a: Sequence[TestResult], b: Sequence[TestResult], ra: _Renamer,
                   rb: _Renamer) -> tuple[list[TestDiff], int]:
    left = {ra(t.nodeid): t for t in a}
    right = {rb(t.nodeid): t for t in b}
    out, same = [], 0
    for key in sorted(set(left) | set(right)):
        x, y = left.get(key), right.get(key)
        values: tuple[Change, ...] = ()
        # equal objects need no renaming; otherwise compare them as they read with node names replaced
        if x and y and (vx := _test_values(x)) != (vy := _test_values(y)) \
                and (va := _renamed(vx, ra)) != (vb := _renamed(vy, rb)):
            values = changes(json.loads(va), json.loads(vb))
        ref = x or y
        diff = TestDiff(key, ref.category if ref else "other", x.outcome if x else None,
                        y.outcome if y else None, values,
                        (ra(x.message) if x else None, rb(y.message) if y else None))
        if diff.verdict_changed or diff.values:
            out.append(diff)
        else:
            same += 1
    return out, same


def _config_verdict_rows(s: RunSummary, rename: _Renamer) -> dict[str, str | None]:
    rows = {}
    for v in s.config_verdicts:
        key = rename(f"{v.get('config')} on {v.get('node')}")
        rows[key] = str(v.get("verdict")) if v.get("verdict") is not None else None
    return rows


def diff_bundles(a: Bundle, b: Bundle) -> BundleDiff:
    sa, sb = a.summary, b.summary
    pairs = pair_nodes(sa, sb)
    ra, rb = _Renamer(pairs, 0), _Renamer(pairs, 1)
    nodes = []
    for label, x, y in pairs:
        fields_changed = changes({"instance_type": x.instance_type, "gpu_model": x.gpu_model},
                                 {"instance_type": y.instance_type, "gpu_model": y.gpu_model}) if x and y else ()
        tests, same = _compare_tests(x.results if x else [], y.results if y else [], ra, rb)
        nodes.append(NodeDiff(label, x.node if x else None, y.node if y else None, fields_changed, tuple(tests), same))
    node_less_a = [t for t in sa.tests if not t.node]
    node_less_b = [t for t in sb.tests if not t.node]
    others, _ = _compare_tests(node_less_a, node_less_b, ra, rb)
    run = changes({k: getattr(sa, k) for k in ("verdict", "conformance_verdict", "config_verdict")},
                  {k: getattr(sb, k) for k in ("verdict", "conformance_verdict", "config_verdict")})
    va, vb = stack_versions(a.target), stack_versions(b.target)
    versions = tuple(Change((k,), va[k], vb[k]) for k in VERSION_KEYS if k in va and k in vb and va[k] != vb[k])
    cv = changes(_config_verdict_rows(sa, ra), _config_verdict_rows(sb, rb))
    facts = [BundleFacts(bd.path, bd.summary.run_id, bd.summary.cluster, bd.summary.backend, bd.summary.verdict, v)
             for bd, v in ((a, va), (b, vb))]
    return BundleDiff(facts[0], facts[1], run, versions, tuple(nodes), tuple(others), cv)


# ---- rendering -------------------------------------------------------------------------------------------------
def show_value(value: Any) -> str:
    if value is None:
        return "(absent)"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def render_text(d: BundleDiff) -> str:
    lines = [f"A: {d.a.path} ({d.a.cluster or '?'}, {d.a.backend or '?'}, run {d.a.run_id}): {d.a.verdict}",
             f"B: {d.b.path} ({d.b.cluster or '?'}, {d.b.backend or '?'}, run {d.b.run_id}): {d.b.verdict}"]
    if not d.count:
        lines.append("no differences (node names, timings and backend facts normalised; see --json 'normalised')")
        return "\n".join(lines) + "\n"
    for title, items in (("run", d.run), ("versions", d.versions), ("config verdicts", d.config_verdicts)):
        if items:
            lines.append(f"{title}:")
            lines += [f"  {c.where}: {show_value(c.a)} -> {show_value(c.b)}" for c in items]
    for n in d.nodes:
        if not (n.fields or n.tests or not (n.a_node and n.b_node)):
            continue
        lines.append(f"node {n.category} (A {n.a_node or '(none)'}, B {n.b_node or '(none)'}):")
        lines += [f"  {c.where}: {show_value(c.a)} -> {show_value(c.b)}" for c in n.fields]
        lines += _tests_text(n.tests)
    if d.other_tests:
        lines.append("tests without a node:")
        lines += _tests_text(d.other_tests)
    lines.append(f"{d.count} difference(s); verdicts {'differ' if d.verdicts_differ else 'are the same'}")
    return "\n".join(lines) + "\n"


def _tests_text(tests: Sequence[TestDiff]) -> list[str]:
    out = []
    for t in tests:
        state = f"{t.a or '(not run)'} -> {t.b or '(not run)'}" if t.verdict_changed else f"{t.a} (both)"
        out.append(f"  [{t.category}] {t.test}: {state}")
        out += [f"      {c.where}: {show_value(c.a)} -> {show_value(c.b)}" for c in t.values]
    return out
