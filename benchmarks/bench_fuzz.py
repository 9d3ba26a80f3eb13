"""Benchmark: 10,000 generated hostile inputs thrown at validate, mig-parted apply, the clusters file and
--mig-config-file (benchmarks/fuzz_cases.py says what is generated and how each target is called), plus a sample
as real processes and a few real pytest runs.

Targets (issue 10, docs/hardening.md): 0 tracebacks, 0 internal errors (exit 3), no run over 5 s, peak RSS under
500 MB, every error naming the file (and, where the text parses as YAML, line, config, entry and key).
Run: .venv/bin/python benchmarks/bench_fuzz.py [--cases N] [--seed S] [--jobs J] [--subprocess N] [--pytest N]
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

import fuzz_cases as fz
from machine import describe


def _chunk(args: tuple[int, list[int], str, int]) -> tuple[list[fz.Outcome], float]:
    seed, indices, folder, big_every = args
    return fz.run_cases(seed, indices, Path(folder), big_every)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (each measured on its own)")
    parser.add_argument("--subprocess", type=int, default=100, help="cases also run as real processes")
    parser.add_argument("--pytest", type=int, default=3, help="cases also run as real pytest runs")
    parser.add_argument("--big-every", type=int, default=500, help="one 50 MB file every N cases")
    args = parser.parse_args()
    print(describe())
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mig-fuzz-") as tmp:
        chunks = [(args.seed, list(range(i, args.cases, args.jobs)), tmp, args.big_every) for i in range(args.jobs)]
        with multiprocessing.get_context("spawn").Pool(args.jobs, maxtasksperchild=1) as pool:
            results = pool.map(_chunk, chunks)
        outcomes = [o for chunk, _ in results for o in chunk]
        peak = max(rss for _, rss in results)
        wall = time.perf_counter() - t0
        step = max(1, args.cases // max(1, args.subprocess))
        sample = [fz.make_case(args.seed, i, args.big_every) for i in range(0, args.cases, step)][: args.subprocess]
        processes = [fz.run_subprocess(case, Path(tmp)) for case in sample]
        runs = [fz.run_pytest(fz.make_case(args.seed, i, args.big_every), Path(tmp))
                for i in range(0, args.cases, max(1, args.cases // max(1, args.pytest)))][: args.pytest]
    summary = fz.summarize(outcomes, args.cases)
    for line in summary.lines():
        print(line)
    print(f"peak RSS: {peak:.0f} MiB per worker process (must be < 500 MB); wall {wall:.1f} s with {args.jobs} "
          f"processes")
    kinds: dict[str, int] = {}
    for o in outcomes[:: len(fz.TARGETS)]:
        kinds[o.kind.split(" (")[0]] = kinds.get(o.kind.split(" (")[0], 0) + 1
    print("cases by kind: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1])))
    bad_processes = [o for o in processes if o.traceback]
    slowest = max((o.seconds for o in processes), default=0.0)
    print(f"as processes: {len(processes)} runs of validate, {len(bad_processes)} with a traceback or an exit code "
          f"other than 0/1/2, slowest {slowest:.2f} s (interpreter start included)")
    bad_runs = [o for o in runs if o.traceback]
    print(f"real pytest runs with --mig-config-file: {len(runs)}, exit codes {sorted(o.exit_code or 0 for o in runs)}"
          f", {len(bad_runs)} with a traceback, INTERNALERROR or exit 3")
    for o in bad_processes[:3] + bad_runs[:3]:
        print(f"  case {o.case} ({o.kind}): {o.traceback}")
    ok = (not summary.tracebacks and not summary.internal and not summary.over and not summary.unnamed
          and peak < 500 and not bad_processes and not bad_runs)
    print("all targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
