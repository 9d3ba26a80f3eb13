"""Benchmark: how fast a local cluster (real control plane + kwok GPU nodes + operator objects + agents) is ready
with cached binaries, and how fast it stops. Target: ready < 20 s.

Measures, per run: LocalCluster.start() milestones (etcd, kube-apiserver, bootstrap, ready, nodes, agents,
connected) and close(); then one `mig-conformance cluster up` / `down` as a user runs it.
Run: .venv/bin/python benchmarks/bench_local_up.py [--nodes SPEC] [--runs N] [--no-cli]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import describe

from mig_conformance.cluster.local.backend import LocalCluster

TARGET_S = 20.0
MILESTONES = ("etcd", "kube-apiserver", "bootstrap", "ready", "nodes", "agents", "connected")


def in_process(spec: str, folder: Path) -> dict[str, float]:
    t0 = time.monotonic()
    cluster = LocalCluster.start(spec, state_dir=folder)
    total = time.monotonic() - t0
    timings = dict(cluster.plane.timings)
    gpu_nodes = len(cluster.list_gpu_nodes())
    t1 = time.monotonic()
    cluster.close()
    return {**timings, "total": total, "close": time.monotonic() - t1, "gpu_nodes": gpu_nodes}


def cli(spec: str, folder: Path) -> tuple[float, float]:
    kc = folder / "kubeconfig"
    base = [sys.executable, "-m", "mig_conformance", "cluster"]
    t0 = time.monotonic()
    subprocess.run([*base, "up", "--nodes", spec, "--kubeconfig", str(kc)], check=True, capture_output=True)
    up = time.monotonic() - t0
    t1 = time.monotonic()
    subprocess.run([*base, "down", "--kubeconfig", str(kc)], check=True, capture_output=True)
    return up, time.monotonic() - t1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", default="p5.48xlarge*2,p4d.24xlarge", help="node spec (default %(default)s)")
    ap.add_argument("--runs", type=int, default=3, help="in-process starts (default 3)")
    ap.add_argument("--no-cli", action="store_true", help="skip the `cluster up/down` measurement")
    args = ap.parse_args()
    print(f"{describe()}; nodes {args.nodes}")
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-local-") as tmp:
        for i in range(args.runs):
            r = in_process(args.nodes, Path(tmp) / f"run{i}")
            runs.append(r)
            steps = "  ".join(f"{m} {r[m]:.2f}" for m in MILESTONES if m in r)
            print(f"run {i + 1}: ready in {r['total']:.2f} s ({r['gpu_nodes']} GPU nodes; {steps}); "
                  f"close {r['close']:.2f} s")
        median = statistics.median(r["total"] for r in runs)
        print(f"LocalCluster.start median {median:.2f} s, best {min(r['total'] for r in runs):.2f} s "
              f"(target < {TARGET_S:.0f} s: {'met' if median < TARGET_S else 'MISSED'})")
        if not args.no_cli:
            up, down = cli(args.nodes, Path(tmp) / "cli")
            print(f"mig-conformance cluster up {up:.2f} s, cluster down {down:.2f} s (including Python start-up)")
    return 0 if median < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
