"""Benchmark: `diagnose` over a sim fleet at the cap (10,000 p5.48xlarge nodes, settled on all-disabled): one read of
every object (nodes, operator pods, DaemonSets, ConfigMaps, ClusterPolicy) and every check on every node.

Target: read + diagnose in under 15 s wall on the 2-core build machine, no findings on the healthy fleet; the faulty
fleet (cluster/diagnose_faults.py PLAN) reports its 13 findings.
Run: .venv/bin/python benchmarks/bench_diagnose.py [--nodes N]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

from machine import describe

from mig_conformance.cluster import diagnose_faults as F
from mig_conformance.cluster.sim.backend import SimCluster
from mig_conformance.cluster.sim.fleet import MAX_NODES
from mig_conformance.diagnose.run import diagnose
from mig_conformance.diagnose.snapshot import read_snapshot

TARGET_S = 15.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=MAX_NODES)
    args = parser.parse_args()
    print(describe())
    t0 = time.perf_counter()
    cluster = SimCluster(f"p5.48xlarge*{args.nodes}")
    created = time.perf_counter() - t0
    t, cpu = time.perf_counter(), time.process_time()
    snapshot = read_snapshot(cluster)
    read = time.perf_counter() - t
    t = time.perf_counter()
    findings = diagnose(snapshot)
    checked = time.perf_counter() - t
    cpu = time.process_time() - cpu  # the machine is shared: CPU seconds say what the load average hides
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.nodes} nodes: create {created:.2f} s (not counted), read {read:.2f} s, diagnose {checked:.2f} s, "
          f"total {read + checked:.2f} s (target < {TARGET_S:.0f} s; {cpu:.2f} CPU s); {len(findings)} findings; "
          f"peak RSS {rss:.0f} MiB")
    faulty = SimCluster(F.FLEET, diagnose_faults="all")
    found = diagnose(read_snapshot(faulty))
    print(f"faulty fleet: {len(found)} findings on {len({f.node for f in found})} nodes (expected 13 on 13)")
    ok = not findings and read + checked < TARGET_S and len(found) == 13
    print("OK" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
