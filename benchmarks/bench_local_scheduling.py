"""Benchmark: 5,600 MIG pods bound by the real kube-scheduler on the local backend, and the same number of plain CPU
pods on the same control plane; prints both binding rates and their ratio MIG/CPU (target >= 0.8).

Setup: 100 x p5.48xlarge (kwok nodes), ClusterPolicy strategy mixed, every node reconfigured to all-1g.10gb by the
simulated mig-manager (56 x nvidia.com/mig-1g.10gb allocatable per node, verified).

Each phase (MIG, then CPU) is measured the same way:
1. kube-scheduler is stopped; 5,600 pods are created with 16 threads (admin client, one keep-alive connection per
   thread) in a fresh namespace: MIG pods request (and limit) nvidia.com/mig-1g.10gb: 1, CPU pods cpu: 10m. No node
   selector: the scheduler filters and scores all 100 nodes. Creation is not part of the measured interval.
2. A watch on the namespace's pods starts at the resourceVersion after the last create; kube-scheduler is started
   again (same command line); each pod's bind time is when the watch first delivers it with spec.nodeName set (the
   binding, not kwok's Running).
3. Rates: `steady` = pods bound between the first and the last binding / that interval; `e2e` = all pods / (last
   binding - scheduler start), which adds the scheduler's start-up and informer sync (5,600 pending pods).
4. Verify: every pod bound; MIG phase: exactly 56 pods on every node (all slices taken). Then the scheduler is stopped
   and the pods are deleted (gracePeriodSeconds=0), so that both phases start from empty nodes (110 pods fit a node).

kube-scheduler's client is rate limited (QPS 50, burst 100 by default: one binding is one request), so by default
both phases measure that limiter; --scheduler-qps raises it (--kube-api-qps/--kube-api-burst) to measure the scheduler.
Also printed: the control plane's CPU seconds per bound pod in each phase (every plane process, from /proc), whose
ratio CPU/MIG is the same comparison free of outside load.
A warm-up phase (5,600 CPU pods, not counted; --warmup) comes first: on a fresh cluster the first batch binds up to
twice as fast as every later one (empty etcd and event store), which would favour whichever kind ran first.
With --rounds N the two phases run N times on the same cluster, in alternating order (MIG, CPU, CPU, MIG, ...), and the
median ratio is reported (on a shared machine, outside load then hits both kinds of pods alike).
Run: .venv/bin/python benchmarks/bench_local_scheduling.py [--nodes N] [--scheduler-qps Q] [--rounds N]
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from machine import describe

from mig_conformance.cluster.local.backend import LocalCluster
from mig_conformance.cluster.local.rest import Rest, RestError
from mig_conformance.k8s import labels as L

TARGET_RATIO = 0.8
MIG = "nvidia.com/mig-1g.10gb"
PER_NODE = 56  # 8 H100 x 7 x 1g.10gb
NAME = re.compile(rb'"metadata":\{"name":"([^"]+)"')
RV = re.compile(rb'"resourceVersion":"(\d+)"')  # the first one of an event is the object's



def pod(name: str, resources: dict[str, str]) -> dict[str, Any]:
    """The pod the kit creates (kube.py create_pod), requesting `resources`."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "bench"}},
            "spec": {"containers": [{"name": "main", "image": "busybox:1.36", "command": ["sleep", "3600"],
                                     "resources": {"requests": resources, "limits": resources}}],
                     "restartPolicy": "Never", "terminationGracePeriodSeconds": 0}}


class BindWatch(threading.Thread):
    """Records when each pod of a namespace is first seen bound (spec.nodeName set) in a watch from `rv`."""

    def __init__(self, cluster: LocalCluster, namespace: str, rv: str, want: int) -> None:
        super().__init__(daemon=True, name="bind-watch")
        from kubernetes import client, config

        self.api = config.new_client_from_config(config_file=str(cluster.admin_kubeconfig))
        self.core = client.CoreV1Api(self.api)
        self.namespace, self.rv, self.want = namespace, rv, want
        self.bound: dict[str, float] = {}
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.reconnects = 0

    def run(self) -> None:
        try:
            while len(self.bound) < self.want:
                self._follow()
        except BaseException as exc:  # reported by the main thread
            self.error = exc
        finally:
            self.done.set()
            self.api.close()

    def _follow(self) -> None:
        """One watch connection from self.rv; the API server may close a watcher that falls behind (then resume)."""
        resp = self.core.list_namespaced_pod(self.namespace, watch=True, resource_version=self.rv,
                                             timeout_seconds=1800, _preload_content=False)
        for line in resp:
            now = time.monotonic()
            rv = RV.search(line)
            if rv:
                self.rv = rv.group(1).decode()
            if b'"nodeName"' not in line:
                if line.startswith(b'{"type":"ERROR"'):
                    raise RuntimeError(f"watch error: {line[:300]!r}")
                continue
            m = NAME.search(line)
            if m and m.group(1) not in self.bound:
                self.bound[m.group(1)] = now
                if len(self.bound) >= self.want:
                    return
        self.reconnects += 1


def cpu_seconds(cluster: LocalCluster) -> dict[str, float]:
    """CPU seconds (user + system) each control-plane process has used so far."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for name, proc in cluster.plane.procs.items():
        try:
            stat = Path(f"/proc/{proc.pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        out[name] = (int(fields[11]) + int(fields[12])) / tick
    return out


def create_pods(cluster: LocalCluster, namespace: str, n: int, resources: dict[str, str], threads: int) -> float:
    """Create n pods in parallel; seconds taken."""
    local = threading.local()

    def one(i: int) -> None:
        api = getattr(local, "api", None)
        if api is None:
            api = local.api = cluster.admin()
        body = pod(f"p-{i:05d}", resources)
        for attempt in range(5):
            try:
                api.request("POST", f"/api/v1/namespaces/{namespace}/pods", body)
                return
            except RestError as exc:  # e.g. the namespace's default ServiceAccount not there yet
                if attempt == 4 or exc.status not in (403, 429, 500, 503):
                    raise
                time.sleep(0.2)

    t = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(n)))
    return time.perf_counter() - t


def ensure_namespace(admin: Rest, namespace: str) -> None:
    admin.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}, exist_ok=True)
    deadline = time.monotonic() + 60
    while True:  # pods need the namespace's default ServiceAccount (ServiceAccount admission)
        try:
            admin.get("ServiceAccount", "default", namespace)
            return
        except RestError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def phase(cluster: LocalCluster, label: str, namespace: str, n: int, resources: dict[str, str],
          threads: int) -> dict[str, Any]:
    plane = cluster.plane
    plane.stop_process("kube-scheduler", grace=5)
    with cluster.admin() as admin:
        ensure_namespace(admin, namespace)
        created = create_pods(cluster, namespace, n, resources, threads)
        rv = admin.request("GET", f"/api/v1/namespaces/{namespace}/pods", query={"limit": 1})["metadata"][
            "resourceVersion"]
        early = admin.request("GET", f"/api/v1/namespaces/{namespace}/pods",
                              query={"fieldSelector": "spec.nodeName!=", "limit": 1})["items"]
        assert not early, "pods were bound while the scheduler was stopped"
        watch = BindWatch(cluster, namespace, rv, n)
        watch.start()
        time.sleep(0.5)  # the watch is connected (it replays from rv anyway)
        started = time.monotonic()
        plane.restart("kube-scheduler")  # same command line; returns once its /healthz answers
        ready = time.monotonic()
        cpu0 = cpu_seconds(cluster)
        own0 = time.process_time()
        if not watch.done.wait(1800):
            sys.exit(f"{label}: only {len(watch.bound)} of {n} pods bound after 30 min")
        cpu = {k: v - cpu0.get(k, 0.0) for k, v in cpu_seconds(cluster).items()}
        cpu["benchmark"] = time.process_time() - own0
        if watch.error is not None:
            raise watch.error
        times = sorted(watch.bound.values())
        pods = admin.request("GET", f"/api/v1/namespaces/{namespace}/pods")["items"]
        per_node = collections.Counter(p["spec"].get("nodeName") for p in pods)
        assert None not in per_node and sum(per_node.values()) == n, per_node.get(None)
        plane.stop_process("kube-scheduler", grace=5)
        t = time.perf_counter()
        assert plane.pki is not None
        cert = plane.pki.clients["admin"]
        with Rest(plane.server, plane.pki.ca.cert, cert=cert.cert, key=cert.key, timeout=600) as slow:
            slow.request("DELETE", f"/api/v1/namespaces/{namespace}/pods", query={"gracePeriodSeconds": 0})
        while admin.request("GET", f"/api/v1/namespaces/{namespace}/pods", query={"limit": 1})["items"]:
            time.sleep(0.2)
        deleted = time.perf_counter() - t
    first, last = times[0], times[-1]
    return {"label": label, "n": n, "created_s": created, "scheduler_start_s": ready - started,
            "first_bind_s": first - started, "last_bind_s": last - started,
            "steady": (n - 1) / (last - first) if last > first else float("inf"), "e2e": n / (last - started),
            "per_node": per_node, "deleted_s": deleted, "reconnects": watch.reconnects,
            "cpu": cpu}


def report(r: dict[str, Any]) -> None:
    print(f"{r['label']:4} {r['n']} pods: created in {r['created_s']:.1f} s ({r['n'] / r['created_s']:.0f}/s, not "
          f"measured); scheduler ready {r['scheduler_start_s']:.2f} s after start, first binding at "
          f"{r['first_bind_s']:.2f} s, last at {r['last_bind_s']:.2f} s")
    print(f"     binding rate: steady {r['steady']:.0f} pods/s (first -> last binding), end-to-end {r['e2e']:.0f} "
          f"pods/s (scheduler start -> last binding); {len(r['per_node'])} nodes used, "
          f"{min(r['per_node'].values())}-{max(r['per_node'].values())} pods per node; deleted in "
          f"{r['deleted_s']:.1f} s; watch reconnects {r['reconnects']}")
    busy = ", ".join(f"{k} {v:.0f}" for k, v in sorted(r["cpu"].items(), key=lambda kv: -kv[1]))
    print(f"     CPU seconds used from scheduler ready to last binding: {busy}; per bound pod: control plane "
          f"{cost(r) * 1000:.1f} ms, kube-scheduler {r['cpu'].get('kube-scheduler', 0) / r['n'] * 1000:.1f} ms")


def cost(r: dict[str, Any]) -> float:
    """Control-plane CPU seconds per bound pod (every process of the plane, not the benchmark itself): unlike the
    wall-clock rate, it does not depend on what else the machine runs."""
    return sum(v for k, v in r["cpu"].items() if k != "benchmark") / r["n"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--scheduler-qps", type=float, default=None,
                    help="kube-scheduler --kube-api-qps and --kube-api-burst (default: its own, 50/100)")
    ap.add_argument("--threads", type=int, default=16, help="threads creating pods (default 16)")
    ap.add_argument("--rounds", type=int, default=1, help="MIG+CPU rounds on the same cluster (default 1)")
    ap.add_argument("--warmup", type=int, default=1, help="CPU phases bound first and not counted (default 1)")
    args = ap.parse_args()
    n = args.nodes * PER_NODE
    qps = f"--kube-api-qps={args.scheduler_qps:g}" if args.scheduler_qps else "default client QPS 50, burst 100"
    print(f"{describe()}; {args.nodes} x p5.48xlarge, {n} pods per phase; kube-scheduler: {qps}")
    extra = {}
    if args.scheduler_qps:
        q = f"{args.scheduler_qps:g}"
        extra = {"kube-scheduler": [f"--kube-api-qps={q}", f"--kube-api-burst={int(args.scheduler_qps)}"]}
    with tempfile.TemporaryDirectory(prefix="bench-sched-") as tmp:
        t = time.perf_counter()
        cluster = LocalCluster.start(f"p5.48xlarge*{args.nodes}", state_dir=Path(tmp), strategy="mixed",
                                     extra_args=extra, timeout=300)
        print(f"start: {time.perf_counter() - t:.1f} s")
        try:
            t = time.perf_counter()
            nodes = sorted(x.name for x in cluster.list_gpu_nodes())
            with ThreadPoolExecutor(16) as pool:
                list(pool.map(lambda x: cluster.request_mig_config(x, "all-1g.10gb"), nodes))
            deadline = time.monotonic() + 300
            while True:
                current = cluster.list_gpu_nodes()
                if all(x.labels.get(L.MIG_CONFIG_STATE) == "success" for x in current):
                    break
                assert time.monotonic() < deadline, "all-1g.10gb did not apply everywhere"
                time.sleep(0.2)
            wrong = [x.name for x in current if x.allocatable.get(MIG) != PER_NODE]
            assert not wrong, f"{len(wrong)} nodes without {PER_NODE} {MIG}"
            print(f"all-1g.10gb on {len(nodes)} nodes: {time.perf_counter() - t:.1f} s ({PER_NODE} x {MIG} each)")
            for i in range(args.warmup):  # a fresh cluster binds its first pods faster (empty etcd and event store)
                report(phase(cluster, "warm", f"bench-warmup-{i}", n, {"cpu": "10m"}, args.threads))
            ratios = []
            for i in range(args.rounds):  # MIG, CPU, then CPU, MIG, ...: a drift over the run hits both alike
                results = {}
                for kind in (("MIG", "CPU") if i % 2 == 0 else ("CPU", "MIG")):
                    results[kind] = phase(cluster, kind, f"bench-{kind.lower()}-{i}", n,
                                          {MIG: "1"} if kind == "MIG" else {"cpu": "10m"}, args.threads)
                    report(results[kind])
                mig, cpu = results["MIG"], results["CPU"]
                assert set(mig["per_node"].values()) == {PER_NODE}, "MIG pods: a node is not full"
                ratios.append((mig["steady"] / cpu["steady"], mig["e2e"] / cpu["e2e"], cost(cpu) / cost(mig)))
                print(f"round {i + 1}: ratio MIG/CPU {ratios[-1][0]:.2f} steady, {ratios[-1][1]:.2f} end-to-end; "
                      f"CPU cost per pod CPU/MIG {ratios[-1][2]:.2f}; load average {os.getloadavg()[0]:.2f}")
        finally:
            cluster.close()
    ratio, ratio_e2e, by_cost = (statistics.median(r[i] for r in ratios) for i in range(3))
    print(f"ratio MIG/CPU: {ratio:.2f} steady, {ratio_e2e:.2f} end-to-end, {by_cost:.2f} by control-plane CPU per pod "
          f"(medians of {len(ratios)} round(s); target >= {TARGET_RATIO}: "
          f"{'met' if ratio >= TARGET_RATIO else 'MISSED'})")
    return 0 if ratio >= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
