"""Benchmark: 100 p5.48xlarge nodes on the local backend (real kube-apiserver, kwok nodes, simulated GPU Operator
agents over the API) reconfigured all-disabled -> all-balanced to success, and every node's allocatable verified.
Target: < 30 s from the first label to the last node verified.

Phases: start (LocalCluster.start: control plane, 100 nodes Ready, agents ready; its milestones are printed),
baseline (every node reported all-disabled: success by mig-manager), label (the kit, as its ServiceAccount, asks for
all-balanced on every node: clear the old state, set nvidia.com/mig.config; 16 threads), success (until mig-manager
reports success on the last node; polled every 0.2 s with one list), verify (allocatable of every node equals the
projection: 8x 3g.40gb, 8x 2g.20gb, 16x 1g.10gb).
Run: .venv/bin/python benchmarks/bench_local_reconfigure.py [--nodes N] [--delay S] [--workers N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from machine import describe

from mig_conformance.cluster.local import backend
from mig_conformance.cluster.local.backend import LocalCluster
from mig_conformance.k8s import labels as L

TARGET_S = 30.0
BALANCED = {"nvidia.com/mig-3g.40gb": 8, "nvidia.com/mig-2g.20gb": 8, "nvidia.com/mig-1g.10gb": 16}



def states(cluster: LocalCluster, config: str) -> dict[str, str]:
    """node -> its mig.config.state, for nodes labelled `config` (others: 'labelled <value>')."""
    out = {}
    for n in cluster.list_gpu_nodes():
        label = n.labels.get(L.MIG_CONFIG)
        out[n.name] = n.labels.get(L.MIG_CONFIG_STATE, "-") if label == config else f"labelled {label}"
    return out


def wait_all(cluster: LocalCluster, config: str, timeout: float) -> float:
    """Seconds until every node reports success for `config` (SystemExit with the laggards at the deadline)."""
    t0 = time.perf_counter()
    while True:
        current = states(cluster, config)
        if all(s == "success" for s in current.values()):
            return time.perf_counter() - t0
        if time.perf_counter() - t0 > timeout:
            left = {k: v for k, v in current.items() if v != "success"}
            sys.exit(f"{len(left)} node(s) not at {config}: success after {timeout:.0f}s: {sorted(left.items())[:5]}")
        time.sleep(0.2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--delay", type=float, default=None,
                    help="mig-manager's pending duration in s (default: the agents' default, 0.2)")
    ap.add_argument("--workers", type=int, default=None, help="agents' worker threads (default: theirs, 8)")
    ap.add_argument("--threads", type=int, default=16, help="threads labelling nodes (default 16)")
    args = ap.parse_args()
    print(f"{describe()}; {args.nodes} x p5.48xlarge")
    if args.workers is not None:  # the agents' command line, as LocalCluster starts them
        real = backend.agents_command
        backend.agents_command = lambda *a, **k: [*real(*a, **k), "--workers", str(args.workers)]
    times: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-reconf-") as tmp:
        t = time.perf_counter()
        cluster = LocalCluster.start(f"p5.48xlarge*{args.nodes}", state_dir=Path(tmp), mig_manager_delay=args.delay,
                                     timeout=300)
        times["start"] = time.perf_counter() - t
        try:
            milestones = "  ".join(f"{k} {v:.2f}" for k, v in cluster.plane.timings.items())
            print(f"start          {times['start']:7.2f} s  ({milestones})")
            times["baseline"] = wait_all(cluster, "all-disabled", 300)
            print(f"baseline       {times['baseline']:7.2f} s  (every node all-disabled: success)")
            nodes = sorted(n.name for n in cluster.list_gpu_nodes())
            assert len(nodes) == args.nodes, nodes

            t0 = time.perf_counter()
            with ThreadPoolExecutor(args.threads) as pool:
                changed = list(pool.map(lambda n: cluster.request_mig_config(n, "all-balanced"), nodes))
            assert all(changed)
            times["label"] = time.perf_counter() - t0
            print(f"label          {times['label']:7.2f} s  ({len(nodes)} nodes, {args.threads} threads)")
            times["success"] = wait_all(cluster, "all-balanced", 300) + times["label"]
            print(f"success        {times['success']:7.2f} s  (from the first label to the last success)")
            t = time.perf_counter()
            wrong = {}
            for n in cluster.list_gpu_nodes():
                got = {k: v for k, v in n.allocatable.items() if k.startswith("nvidia.com/") and v}
                if got != BALANCED:
                    wrong[n.name] = got
            if wrong:
                sys.exit(f"{len(wrong)} node(s) with unexpected allocatable: {sorted(wrong.items())[:3]}")
            times["verify"] = time.perf_counter() - t
            total = time.perf_counter() - t0
            print(f"verify         {times['verify']:7.2f} s  (allocatable {BALANCED} on all {len(nodes)} nodes)")
            print(f"reconfigured   {total:7.2f} s  all-disabled -> all-balanced on {len(nodes)} nodes, verified "
                  f"(target < {TARGET_S:.0f} s: {'met' if total < TARGET_S else 'MISSED'})")
            print(f"wall           {times['start'] + times['baseline'] + total:7.2f} s  including start")
        finally:
            t = time.perf_counter()
            cluster.close()
            print(f"close          {time.perf_counter() - t:7.2f} s")
    return 0 if total < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
