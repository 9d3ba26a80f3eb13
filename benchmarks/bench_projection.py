"""Benchmark: the node projection (mig-manager -> GPU state -> device-plugin allocatable and GFD labels) of 1,000
p5.48xlarge nodes, configs all-balanced, all-1g.10gb, all-2g.20gb, all-3g.40gb and all-disabled in turn, strategy
mixed, the shipped default ConfigMap. Every projection is checked against the same config projected alone.

Target: < 2 s for the 1,000 projections (what tests/unit/test_k8s_projection.py once timed; the test now checks
only that the results are right).
Run: .venv/bin/python benchmarks/bench_projection.py [--nodes N] [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from machine import describe

from mig_conformance.gpus.instance_types import get_instance_type
from mig_conformance.k8s.projection import project_node

CONFIGS = ["all-balanced", "all-1g.10gb", "all-2g.20gb", "all-3g.40gb", "all-disabled"]
TARGET_S = 2.0


def project(nodes: int) -> list:
    gpus = get_instance_type("p5.48xlarge").gpus()
    return [project_node(gpus, "mixed", None, CONFIGS[i % len(CONFIGS)], node=f"sim-{i}") for i in range(nodes)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(describe())
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        out = project(args.nodes)
        times.append(time.perf_counter() - t0)
    gpus = get_instance_type("p5.48xlarge").gpus()
    alone = {c: project_node(gpus, "mixed", None, c, node="x").as_dict() for c in CONFIGS}
    wrong = [p.node for i, p in enumerate(out) if {**p.as_dict(), "node": "x"} != alone[CONFIGS[i % len(CONFIGS)]]]
    if wrong:
        sys.exit(f"projections differ from the config projected alone: {wrong[:5]}")
    best, median = min(times), statistics.median(times)
    print(f"{args.nodes} x p5.48xlarge projected ({len(CONFIGS)} configs in turn, mixed), every one verified")
    print(f"best {best:.3f} s, median {median:.3f} s of {args.repeat} ({best / args.nodes * 1e6:.0f} us per node)"
          f"  (target < {TARGET_S:.0f} s)")


if __name__ == "__main__":
    main()
