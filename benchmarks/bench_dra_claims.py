"""Benchmark: claims allocated per second by the real kube-scheduler (NVIDIA's DRA driver, structured allocation)
against device-plugin pods, on the same local control plane; prints both rates and the ratio DRA/device plugin
(target >= 0.5).

Setup: N x p5.48xlarge (kwok nodes, default 100), `--gpu-allocation dra`, every node reconfigured to all-balanced by
the simulated mig-manager: 32 MIG devices per node (16 x 1g.10gb, 8 x 2g.20gb, 8 x 3g.40gb) in its ResourceSlice,
3,200 for 100 nodes (verified).
* DRA phase: one ResourceClaim per device (class mig.nvidia.com, CEL on the profile; 16:8:8 per node) and a pod that
  uses it, no node selector: the scheduler allocates every claim.
* device-plugin phase: the same nodes' status patched as the device plugin registers all-balanced under mixed
  (nvidia.com/mig-1g.10gb: 16, -2g.20gb: 8, -3g.40gb: 8; the agents leave a DRA node's status alone) and the per-profile
  bridge DeviceClasses removed, then as many pods requesting one of those resources (same 16:8:8 mix).
Each phase is measured as benchmarks/bench_local_scheduling.py measures (scheduler stopped while creating, a watch
from the last resourceVersion, the scheduler started again; steady and end-to-end binding rates; control-plane CPU
per bound pod); every pod must bind and every device be used once.
Run: .venv/bin/python benchmarks/bench_dra_claims.py [--nodes 100] [--threads 16] [--scheduler-qps Q]
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench_local_scheduling import BindWatch, cost, cpu_seconds, ensure_namespace, report
from machine import describe

from mig_conformance.cluster.local import dra_cases
from mig_conformance.cluster.local.backend import LocalCluster
from mig_conformance.cluster.local.rest import Rest, RestError
from mig_conformance.k8s import dra
from mig_conformance.k8s import labels as L

MIX = (("1g.10gb", 16), ("2g.20gb", 8), ("3g.40gb", 8))
PER_NODE = sum(n for _, n in MIX)
TARGET = 0.5


def profile_of(i: int) -> str:
    k = i % PER_NODE
    for profile, n in MIX:
        if k < n:
            return profile
        k -= n
    raise AssertionError


def claim(i: int) -> dict[str, Any]:
    return {"apiVersion": dra.API_VERSION, "kind": "ResourceClaim", "metadata": {"name": f"c-{i:05d}"},
            "spec": {"devices": {"requests": [{"name": "gpu", "exactly": {
                "deviceClassName": dra.MIG_CLASS,
                "selectors": [{"cel": {"expression": dra.profile_selector(profile_of(i))}}]}}]}}}


NODES: list[str] = []  # with --pin: pod i goes to NODES[i // PER_NODE]


def pod(i: int, dra_claim: bool) -> dict[str, Any]:
    resources = {} if dra_claim else {dra.extended_resource(profile_of(i)): "1"}
    container: dict[str, Any] = {"name": "main", "image": "busybox:1.36", "command": ["sleep", "3600"],
                                 "resources": {"requests": resources, "limits": resources}}
    spec: dict[str, Any] = {"containers": [container], "restartPolicy": "Never", "terminationGracePeriodSeconds": 0}
    if NODES:
        spec["nodeSelector"] = {"kubernetes.io/hostname": NODES[i // PER_NODE]}
    if dra_claim:
        container["resources"] = {"claims": [{"name": "gpu"}]}
        spec["resourceClaims"] = [{"name": "gpu", "resourceClaimName": f"c-{i:05d}"}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p-{i:05d}", "labels": {"app": "bench"}},
            "spec": spec}


def create(cluster: LocalCluster, namespace: str, n: int, dra_claim: bool, threads: int) -> float:
    local = threading.local()

    def post(api: Rest, path: str, body: dict[str, Any]) -> None:
        for attempt in range(5):
            try:
                api.request("POST", path, body)
                return
            except RestError as exc:
                if attempt == 4 or exc.status not in (403, 429, 500, 503):
                    raise
                time.sleep(0.2)

    def one(i: int) -> None:
        api = getattr(local, "api", None)
        if api is None:
            api = local.api = cluster.admin()
        if dra_claim:
            post(api, f"/apis/resource.k8s.io/v1/namespaces/{namespace}/resourceclaims", claim(i))
        post(api, f"/api/v1/namespaces/{namespace}/pods", pod(i, dra_claim))

    t = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(n)))
    return time.perf_counter() - t


def phase(cluster: LocalCluster, label: str, namespace: str, n: int, dra_claim: bool, threads: int) -> dict[str, Any]:
    plane = cluster.plane
    plane.stop_process("kube-scheduler", grace=5)
    with cluster.admin() as admin:
        ensure_namespace(admin, namespace)
        created = create(cluster, namespace, n, dra_claim, threads)
        rv = admin.request("GET", f"/api/v1/namespaces/{namespace}/pods", query={"limit": 1})["metadata"][
            "resourceVersion"]
        watch = BindWatch(cluster, namespace, rv, n)
        watch.start()
        time.sleep(0.5)
        started = time.monotonic()
        plane.restart("kube-scheduler")
        ready = time.monotonic()
        cpu0 = cpu_seconds(cluster)
        if not watch.done.wait(1800):
            sys.exit(f"{label}: only {len(watch.bound)} of {n} pods bound after 30 min")
        cpu = {k: v - cpu0.get(k, 0.0) for k, v in cpu_seconds(cluster).items()}
        if watch.error is not None:
            raise watch.error
        times = sorted(watch.bound.values())
        pods = admin.request("GET", f"/api/v1/namespaces/{namespace}/pods")["items"]
        per_node = collections.Counter(p["spec"].get("nodeName") for p in pods)
        assert None not in per_node and sum(per_node.values()) == n
        devices = None
        if dra_claim:
            items = admin.request("GET", f"/apis/resource.k8s.io/v1/namespaces/{namespace}/resourceclaims")["items"]
            used = [(r["pool"], r["device"]) for c in items for r in c["status"]["allocation"]["devices"]["results"]]
            assert len(used) == len(set(used)) == n, "a device allocated twice"
            devices = len(used)
        plane.stop_process("kube-scheduler", grace=5)
    first, last = times[0], times[-1]
    return {"label": label, "n": n, "created_s": created, "scheduler_start_s": ready - started,
            "first_bind_s": first - started, "last_bind_s": last - started,
            "steady": (n - 1) / (last - first) if last > first else float("inf"), "e2e": n / (last - started),
            "per_node": per_node, "deleted_s": 0.0, "reconnects": watch.reconnects, "cpu": cpu,
            "devices": devices}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--scheduler-qps", type=float, default=None,
                    help="kube-scheduler --kube-api-qps/--kube-api-burst (default: its own 50/100; a DRA binding "
                         "takes two writes, the claim's status and the binding, a device-plugin one takes one)")
    ap.add_argument("--pin", action="store_true",
                    help="pin each pod to a node (nodeSelector): the scheduler filters one node per pod, not all")
    args = ap.parse_args()
    extra = {}
    if args.scheduler_qps:
        extra = {"kube-scheduler": [f"--kube-api-qps={args.scheduler_qps:g}",
                                    f"--kube-api-burst={int(args.scheduler_qps)}"]}
    n = args.nodes * PER_NODE
    qps = f"kube-scheduler --kube-api-qps={args.scheduler_qps:g}" if args.scheduler_qps else "kube-scheduler defaults"
    print(f"{describe()}; {args.nodes} x p5.48xlarge all-balanced, {n} MIG devices; {qps}"
          + ("; pods pinned to nodes" if args.pin else ""))
    with tempfile.TemporaryDirectory(prefix="bench-dra-") as tmp:
        t = time.perf_counter()
        cluster = LocalCluster.start(f"p5.48xlarge*{args.nodes}", state_dir=Path(tmp), gpu_allocation="dra",
                                     mig_manager_delay=0.05, timeout=300, extra_args=extra)
        try:
            names = [x.name for x in cluster.list_gpu_nodes()]
            if args.pin:
                NODES[:] = sorted(names)
            for name in names:
                cluster.set_node_label(name, L.MIG_CONFIG, "all-balanced")
            with cluster.admin() as admin:
                deadline = time.monotonic() + 600
                while sum(1 for x in admin.list("Node") if x["metadata"]["labels"].get(L.MIG_CONFIG_STATE)
                          == "success" and x["metadata"]["labels"].get(L.MIG_CONFIG) == "all-balanced") < len(names):
                    assert time.monotonic() < deadline, "nodes not all-balanced after 10 min"
                    time.sleep(0.5)
                dra_cases.wait_pools(admin, names, dra.DRIVER, 120)
                published = sum(len(s["spec"].get("devices") or []) for s in admin.list("ResourceSlice"))
            assert published == n, f"{published} devices published, expected {n}"
            print(f"start + all-balanced: {time.perf_counter() - t:.1f} s; {published} devices published")
            drar = phase(cluster, "DRA", "bench-dra", n, True, args.threads)
            report(drar)
            with cluster.admin() as admin:
                for c in admin.list("DeviceClass"):
                    if c["spec"].get("extendedResourceName", "").startswith("nvidia.com/mig-"):
                        admin.delete("DeviceClass", c["metadata"]["name"])
                for name in names:
                    want = {dra.extended_resource(p): str(k) for p, k in MIX}
                    admin.request("PATCH", f"/api/v1/nodes/{name}/status",
                                  {"status": {"capacity": want, "allocatable": want}},
                                  content_type="application/strategic-merge-patch+json")
            dp = phase(cluster, "DP", "bench-dp", n, False, args.threads)
            report(dp)
        finally:
            cluster.close()
    ratio = drar["steady"] / dp["steady"]
    print(f"claims allocated per second: DRA {drar['steady']:.0f}/s steady ({drar['e2e']:.0f}/s end-to-end), "
          f"device plugin {dp['steady']:.0f}/s steady ({dp['e2e']:.0f}/s); ratio DRA/device plugin {ratio:.2f} "
          f"(target >= {TARGET}); control-plane CPU per pod DRA {cost(drar) * 1000:.1f} ms, device plugin "
          f"{cost(dp) * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
