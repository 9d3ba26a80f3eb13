"""Benchmark: enumerate all layouts of every catalog GPU, and validate all default configs on every GPU.

Targets (issue 2): < 10 ms per 8-slot GPU enumeration; < 1 s for the default ConfigMap x catalog.
Run: .venv/bin/python benchmarks/bench_placement.py
"""

from __future__ import annotations

import statistics
import time
from importlib import resources

from machine import describe

from mig_conformance.gpus.catalog import load_catalog
from mig_conformance.mig.placement import enumerate_layouts, maximal_layouts
from mig_conformance.mig.spec import load_spec
from mig_conformance.validation import validate_node


def best_of(fn, repeat: int = 7) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def main() -> None:
    catalog = load_catalog()
    print(describe())
    print("enumerate_layouts (best / median of 7):")
    for gpu in catalog.mig_capable:
        best, med = best_of(lambda g=gpu: maximal_layouts(g, enumerate_layouts(g)))
        n = len(enumerate_layouts(gpu))
        print(f"  {gpu.key:16s} slots={gpu.memory_slots:2d} layouts={n:4d}  "
              f"{best * 1e3:7.2f} ms  (median {med * 1e3:.2f} ms)")
    path = str(resources.files("mig_conformance.fixtures").joinpath("configs/default-mig-parted-config.yaml"))

    def validate_all() -> int:
        spec = load_spec(path)
        checks = 0
        for gpu in catalog.mig_capable:
            for name in spec.configs:
                validate_node(spec, name, [gpu] * 8, gpu.key)
                checks += 1
        return checks

    checks = validate_all()
    best, med = best_of(validate_all, 5)
    print(f"validate {checks} (config x GPU model) pairs on 8-GPU nodes, incl. parsing the ConfigMap: "
          f"{best * 1e3:.1f} ms (median {med * 1e3:.1f} ms)")


if __name__ == "__main__":
    main()
