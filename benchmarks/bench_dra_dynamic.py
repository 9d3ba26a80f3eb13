"""Benchmark: dynamic MIG differential with the real kube-scheduler. For each 8-slot GPU family, random multisets of
MIG profiles (1-8 devices) are claimed on one GPU of the local backend's nodes (NVIDIA's DRA driver with DynamicMIG:
every profile at every placement as a partitionable device, k8s/dra_dynamic.py); the real scheduler's verdict (bound
or `cannot allocate all claims`) must equal the placement engine's fit (mig/placement.py). Prints, per family, the
case count, how many fit, the disagreements (each one with the placement engine's reason) and the wall time.

Setup per family: `local` with FAMILY*NODES single-GPU kwok nodes, --gpu-allocation dra --dynamic-mig (Ampere GPUs
labelled all-enabled first: the driver keeps their MIG mode); one case per node at a time, in parallel across nodes;
each case's claim and pod are deleted and gone before the node's next case.
Run: .venv/bin/python benchmarks/bench_dra_dynamic.py [--cases 500] [--nodes 8] [--families H100-80GB,...]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from machine import describe

from mig_conformance.cluster.local import dra_cases
from mig_conformance.cluster.local.backend import LocalCluster
from mig_conformance.gpus.catalog import load_catalog
from mig_conformance.k8s import dra
from mig_conformance.k8s import dra_differential as DD

FAMILIES = ("A100-40GB", "A100-80GB", "H100-80GB", "H100-NVL-94GB", "H200-141GB", "GH200-96GB", "B200-180GB")


def run_family(key: str, cases: int, nodes: int, seed: int) -> dict[str, Any]:
    gpu = load_catalog().get(key)
    t0 = time.monotonic()
    cluster = LocalCluster.start(f"{key}*{nodes}", state_dir=tempfile.mkdtemp(prefix="bench-dra-"),
                                 gpu_allocation="dra", dynamic_mig=True, mig_manager_delay=0.05, timeout=180,
                                 default_config="all-enabled" if gpu.architecture == "ampere" else None)
    try:
        names = [n.name for n in cluster.list_gpu_nodes()]
        with cluster.admin() as admin:
            dra_cases.wait_pools(admin, names, dra.DRIVER, 120, dynamic=True)
            admin.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "differential"}})
        up = time.monotonic() - t0
        rng = random.Random(f"{seed}-{key}")
        todo = [DD.random_case(gpu, rng) for _ in range(cases)]

        def work(i: int) -> list[tuple[int, dra_cases.Verdict]]:
            out = []
            with cluster.admin() as admin:
                for j in range(i, len(todo), len(names)):
                    out.append((j, dra_cases.run_case(admin, "differential", names[i], f"c{j}",
                                                      DD.claim_object(f"c{j}", todo[j]))))
            return out

        t1 = time.monotonic()
        with ThreadPoolExecutor(len(names)) as pool:
            results = [r for rs in pool.map(work, range(len(names))) for r in rs]
        seconds = time.monotonic() - t1
    finally:
        cluster.close()
    disagreements = [d.as_dict() for d in (DD.compare(gpu, todo[j], v.bound) for j, v in results) if d]
    return {"gpu": key, "cases": len(results), "allocated": sum(v.bound for _, v in results),
            "disagreements": len(disagreements), "examples": disagreements[:5], "startup_s": round(up, 1),
            "seconds": round(seconds, 1), "cases_per_s": round(len(results) / seconds, 1)}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--cases", type=int, default=500)
    p.add_argument("--nodes", type=int, default=8)
    p.add_argument("--seed", type=int, default=12)
    p.add_argument("--families", default=",".join(FAMILIES))
    args = p.parse_args()
    print(describe())
    total = 0
    for key in args.families.split(","):
        row = run_family(key, args.cases, args.nodes, args.seed)
        total += row["disagreements"]
        print(json.dumps(row), flush=True)
    print(f"total disagreements: {total}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
