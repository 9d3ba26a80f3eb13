"""Benchmark: a 10,000-node p5.48xlarge sim cluster (the fleet cap) created, relabelled all-disabled, then
all-balanced, and verified.

Every node goes through its own NVML simulator, mig-parted simulator, device plugin and GFD.
Targets (issue 10, on the 2-core build machine): < 5 s wall, < 1 GB peak RSS.
Run: .venv/bin/python benchmarks/bench_fleet.py [--nodes N] [--profile] [--stack gpu-operator=v25.3.4,driver=550.54.15]
(--stack: the GPU stack to model, as --mig-stack; another driver branch swaps every model's profile table)
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import resource
import sys
import time

from machine import describe

from mig_conformance.cluster.sim.backend import SimCluster
from mig_conformance.cluster.sim.fleet import MAX_NODES
from mig_conformance.k8s import labels as L
from mig_conformance.k8s import stack

EXPECTED = {"nvidia.com/mig-3g.40gb": 8, "nvidia.com/mig-2g.20gb": 8, "nvidia.com/mig-1g.10gb": 16}


def relabel(cluster: SimCluster, config: str) -> None:
    for node in cluster.list_gpu_nodes():
        cluster.set_node_label(node.name, L.MIG_CONFIG, config)


def verify(cluster: SimCluster, config: str, expected: dict[str, int]) -> None:
    for node in cluster.list_gpu_nodes():
        state = node.labels.get(L.MIG_CONFIG_STATE)
        if node.labels.get(L.MIG_CONFIG) != config or state != "success":
            sys.exit(f"{node.name}: {config} state {state}")
        got = {k: node.allocatable.get(k, 0) for k in expected}
        if got != expected:
            sys.exit(f"{node.name}: {config} allocatable {got} != {expected}")


def run(nodes: int, profile: stack.StackProfile | None = None) -> tuple[dict[str, float], SimCluster]:
    times = {}
    t0 = time.perf_counter()
    # No default label: labelling all-disabled is then a real mig-manager run on every node.
    cluster = SimCluster(f"p5.48xlarge*{nodes}", allow_changes=True, default_config=None, stack=profile)
    times["create"] = time.perf_counter() - t0
    t = time.perf_counter()
    relabel(cluster, "all-disabled")
    verify(cluster, "all-disabled", {"nvidia.com/gpu": 8})
    times["all-disabled"] = time.perf_counter() - t
    t = time.perf_counter()
    relabel(cluster, "all-balanced")
    verify(cluster, "all-balanced", EXPECTED)
    times["all-balanced"] = time.perf_counter() - t
    times["total"] = time.perf_counter() - t0
    return times, cluster


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=MAX_NODES)
    parser.add_argument("--profile", action="store_true", help="print the top of a cProfile run")
    parser.add_argument("--stack", help="COMPONENT=VERSION,... to model (default: the newest GA releases)")
    args = parser.parse_args()
    profile = stack.resolve([(stack.parse_choices(args.stack, "--stack"), "--stack")]) if args.stack else None
    print(describe())
    print(f"stack: {(profile or stack.default()).line()}")
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
    cpu = time.process_time()
    times, cluster = run(args.nodes, profile)
    cpu = time.process_time() - cpu
    if args.profile:
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(40)
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    parts = ", ".join(f"{k} {v:.2f} s" for k, v in times.items() if k != "total")
    print(f"{args.nodes} x p5.48xlarge: all-disabled -> all-balanced verified on every node")
    print(f"wall {times['total']:.2f} s ({parts}); CPU {cpu:.2f} s; peak RSS {rss_mib:.0f} MiB  "
          f"(targets < 5 s, < 1 GB)")
    cache = cluster.command_cache
    print(f"command cache: {cache.hits} replayed, {cache.misses} run (simulators/command_cache.py)")


if __name__ == "__main__":
    main()
