"""Benchmark: the vendor sign-off pages (report/signoff.py) of a run over the most instance types that get them
(MAX_SIGNOFF_TYPES: every config of the default ConfigMap x 2 strategies projected per type, layouts enumerated),
and putting a user catalog folder in effect (load, check, swap) from cold caches.

Target: < 2 s for the sign-off pages (they are built once, when the report bundle is written), < 0.5 s for a user
catalog folder.
Run: .venv/bin/python benchmarks/bench_signoff.py [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from machine import describe

from mig_conformance.gpus import catalog as catalog_module
from mig_conformance.gpus import instance_types as types_module
from mig_conformance.gpus.user_catalog import use_user_catalogs
from mig_conformance.report.model import RunSummary, TestResult
from mig_conformance.report.signoff import MAX_SIGNOFF_TYPES, build_signoff

TARGET_SIGNOFF_S, TARGET_CATALOG_S = 2.0, 0.5
TYPES = ("p5.48xlarge", "p6-b300.48xlarge", "g7e.48xlarge")  # 8-slot captured, 8-slot unknown, 12-slot
ROOT = Path(__file__).resolve().parents[1]


def summary() -> RunSummary:
    tests = [TestResult(f"t.py::test[{t}]", "passed", instance_type=t) for t in TYPES[:MAX_SIGNOFF_TYPES]]
    return RunSummary(run_id="b", verdict="Passed", started="s", finished="f", duration_s=0.0, tests=tests)


def user_folder(base: Path) -> Path:
    """A user catalog: the shipped H100 NVL entry under a new key, and a new instance type."""
    (base / "gpus").mkdir(parents=True)
    text = (ROOT / "fixtures/gpus/H100-NVL-94GB.yaml").read_text().replace("key: H100-NVL-94GB", "key: NEW-94GB", 1)
    (base / "gpus/NEW-94GB.yaml").write_text(text)
    (base / "instance-types.yaml").write_text("instance_types:\n  x9.48xlarge: {gpu: NEW-94GB, gpu_count: 8}\n")
    return base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(describe())
    s = summary()
    signoff, loads = [], []
    for i in range(args.repeat):
        t0 = time.perf_counter()
        entries = build_signoff(s)
        signoff.append(time.perf_counter() - t0)
        with tempfile.TemporaryDirectory() as tmp:
            folder = user_folder(Path(tmp) / f"cat{i}")
            catalog_module._load_dirs.cache_clear()
            types_module._load.cache_clear()
            t0 = time.perf_counter()
            with use_user_catalogs([folder]):
                loads.append(time.perf_counter() - t0)
    rows = sum(len(e["configs"]) for e in entries)
    print(f"sign-off of {len(entries)} instance types ({rows} config x strategy predictions): "
          f"median {statistics.median(signoff):.2f} s (target < {TARGET_SIGNOFF_S} s)")
    print(f"user catalog folder in effect from cold caches: median {statistics.median(loads) * 1000:.0f} ms "
          f"(target < {TARGET_CATALOG_S * 1000:.0f} ms)")
    if statistics.median(signoff) > TARGET_SIGNOFF_S or statistics.median(loads) > TARGET_CATALOG_S:
        sys.exit(1)


if __name__ == "__main__":
    main()
