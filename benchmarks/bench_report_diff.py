"""Benchmark: `report diff` of two bundles of a 1,000-node fleet (17 tests per node, each with expected/measured
values and an 8-GPU layout; the second run on other node names, one value changed per 100 nodes), read from disk.
The result is checked: exactly the changed values differ.

Target: < 5 s for diff + text + HTML of 17,000 tests each (a fleet at a tenth of the cap, on 2 cores). Reading the
two bundles (report.bundle.load_summary: summary.json holds every layout twice, 220 MiB here) is printed apart.
Run: .venv/bin/python benchmarks/bench_report_diff.py [--nodes N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from machine import describe

from mig_conformance.report.bundle import write_bundle
from mig_conformance.report.diff import diff_bundles, load_bundle, render_text
from mig_conformance.report.model import NodeSummary, RunSummary, TestResult
from mig_conformance.report.render_diff_html import render_diff_html

TARGET_S = 5.0
LAYOUT = [{"gpu": g, "slots": 8, "slices": 7,
           "instances": [{"profile": "3g.40gb", "start": 4, "size": 4, "slices": 3},
                         {"profile": "2g.20gb", "start": 0, "size": 2, "slices": 2},
                         {"profile": "1g.10gb", "start": 2, "size": 1, "slices": 1},
                         {"profile": "1g.10gb", "start": 3, "size": 1, "slices": 1}]} for g in range(8)]


def summary(nodes: int, prefix: str, changed: bool) -> RunSummary:
    node_rows, tests = [], []
    for n in range(nodes):
        name = f"{prefix}-{n}"
        results = []
        for t in range(17):
            memory = "40320" if changed and n % 100 == 0 and t == 0 else "40448"
            results.append(TestResult(
                f"suites/test_x.py::test_{t}[{name}[p5.48xlarge]]", "passed", 0.01, "mixed", name, "p5.48xlarge",
                "H100-80GB", "all-balanced", "mixed",
                expected={"allocatable": {"nvidia.com/mig-1g.10gb": 16}, "labels": {"3g.40gb.memory": "40448"}},
                measured={"allocatable": {"nvidia.com/mig-1g.10gb": 16}, "labels": {"3g.40gb.memory": memory}},
                layout=LAYOUT))
        node_rows.append(NodeSummary(name, "p5.48xlarge", "H100-80GB", results))
        tests += results
    return RunSummary(f"run-{prefix}", "Passed", "2026-12-06T10:00:00Z", "2026-12-06T10:10:00Z", 600.0, "sim",
                      "sim", nodes=node_rows, tests=tests, conformance_verdict="Passed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    args = parser.parse_args()
    print(describe())
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp) / "a", Path(tmp) / "b"
        write_bundle(a, summary(args.nodes, "sim-p5-48xlarge", False))
        write_bundle(b, summary(args.nodes, "ip-10-0-0", True))
        t_load = time.perf_counter()
        bundles = load_bundle(a), load_bundle(b)
        t0 = time.perf_counter()
        d = diff_bundles(*bundles)
        t1 = time.perf_counter()
        render_text(d)
        render_diff_html(d)
        t2 = time.perf_counter()
    want = (args.nodes + 99) // 100
    ok = d.count == want and not d.verdicts_differ
    print(f"report diff: {args.nodes} nodes x 17 tests: reading both bundles {t0 - t_load:.2f} s; diff "
          f"{t1 - t0:.2f} s, text+html {t2 - t1:.2f} s, total {t2 - t0:.2f} s (target < {TARGET_S:.0f} s); "
          f"{d.count} differences (want {want}): {'ok' if ok else 'WRONG'}")
    sys.exit(0 if ok and t2 - t0 < TARGET_S else 1)


if __name__ == "__main__":
    main()
