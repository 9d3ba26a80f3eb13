"""Benchmark: the mig-parted simulator on requests no GPU can hold (an H100 80GB asked for 1,500, 3,000,000 or
2^63-1 1g.10gb devices, or 40 each of four profiles): each is refused after one ordering, never walked through every
permutation. Also, for scale, one apply of each uniform config of the shipped ConfigMap on an H100 80GB.

Target: well under a second per request (tests/unit/test_mig_parted_orderings.py checks that one ordering is tried,
no longer how long it takes).
Run: .venv/bin/python benchmarks/bench_mig_parted.py [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from machine import describe

from mig_conformance.gpus.catalog import load_catalog
from mig_conformance.mig.default_config import default_spec
from mig_conformance.simulators import nvml as nv
from mig_conformance.simulators.mig_parted import MigParted, spec_for

HUGE = {"1500 x 1g.10gb": {"1g.10gb": 1500}, "3e6 x 1g.10gb": {"1g.10gb": 3_000_000},
        "2^63-1 x 1g.10gb": {"1g.10gb": 2**63 - 1},
        "40 x 4 profiles": {n: 40 for n in ("1g.10gb", "2g.20gb", "1c.3g.40gb", "1c.7g.80gb")}}
UNIFORM = ["all-1g.10gb", "all-2g.20gb", "all-3g.40gb", "all-7g.80gb", "all-balanced"]


def timed(fn, repeat: int) -> tuple[float, float, object]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(describe())
    h100 = load_catalog().get("H100-80GB")
    print("requests no H100 80GB can hold (best / median):")
    for name, devices in HUGE.items():
        spec = spec_for(devices)
        best, median, res = timed(lambda s=spec: MigParted(nv.NvmlSimulator([h100], "bench")).apply(s), args.repeat)
        tried = res.gpus[0].orderings_tried
        if res.ok or tried != 1:
            sys.exit(f"{name}: expected a refusal after one ordering, got ok={res.ok}, {tried} orderings")
        print(f"  {name:18s} {best * 1e3:8.2f} ms  (median {median * 1e3:.2f} ms)  refused after {tried} ordering")
    spec = default_spec()
    print("apply on a fresh H100 80GB (best / median):")
    for config in UNIFORM:
        best, median, res = timed(lambda c=config: MigParted(nv.NvmlSimulator([h100], "bench")).apply(spec, c),
                                  args.repeat)
        if not res.ok:
            sys.exit(f"{config}: apply failed: {res.error}")
        print(f"  {config:18s} {best * 1e3:8.2f} ms  (median {median * 1e3:.2f} ms)")


if __name__ == "__main__":
    main()
