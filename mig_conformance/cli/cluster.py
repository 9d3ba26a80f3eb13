"""`mig-conformance cluster up|status|down`: a local Kubernetes cluster with simulated GPU nodes, for kubectl,
the official Python client and `pytest --mig-cluster=local`. State lives next to the kubeconfig, in PATH.d/.
`cluster install` builds the binaries it runs (cluster/local/build.py)."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from mig_conformance.cli import EXIT_FAIL, EXIT_OK, EXIT_USAGE
from mig_conformance.cli.output import table
from mig_conformance.cluster.base import ClusterError
from mig_conformance.common.errors import InputError
from mig_conformance.common.private_files import write_private
from mig_conformance.k8s import stack

CLUSTER_FILE = "cluster.json"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("cluster", help="start, inspect or stop a local Kubernetes cluster with simulated GPU nodes",
                       description="A real control plane (etcd, kube-apiserver, kube-controller-manager, "
                                   "kube-scheduler) on 127.0.0.1 with kwok GPU nodes, the GPU Operator's objects and "
                                   "simulated agents. Binaries: `mig-conformance cluster install` or $MIG_K8S_ASSETS.")
    verbs = p.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True
    install = verbs.add_parser(
        "install", help="build the local control plane's binaries from pinned Go modules (once; needs Go >= 1.21)",
        description="Build etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and kwok from the "
                    "Go modules pinned in the kit into a cache folder, with progress (step k/6). Resumable (a killed "
                    "build continues) and idempotent (a second run does nothing). Needs Go >= 1.21, which fetches "
                    "the pinned toolchain itself; the first build takes 6-15 minutes on 2 idle cores and about "
                    "6 GB of disk. Exit 0 when the binaries are there, 1 when the build failed, 2 when Go is "
                    "missing or too old.")
    install.add_argument("--cache-dir", type=Path, default=None, metavar="DIR",
                         help="cache root (default $XDG_CACHE_HOME/mig-conformance, else ~/.cache/mig-conformance); "
                              "binaries go to DIR/k8s/<version>/bin, Go's caches to DIR/go")
    install.add_argument("--force", action="store_true", help="rebuild even when the binaries are up to date")
    install.add_argument("--check", action="store_true",
                         help="build nothing: exit 0 when the binaries are available, 1 otherwise")
    install.add_argument("--regenerate", action="store_true",
                         help="maintainers, in a checkout: rewrite the tools modules' go.mod/go.sum from the upstream "
                              "go.mod files of the versions in versions.env, then build")
    up = verbs.add_parser("up", help="start a cluster in the background; returns once it is ready")
    up.add_argument("--backend", choices=("local",), default="local", help="cluster kind (only: local)")
    up.add_argument("--nodes", default="p5.48xlarge", metavar="SPEC",
                    help="GPU nodes, e.g. p5.48xlarge*2,p4d.24xlarge (default p5.48xlarge)")
    up.add_argument("--strategy", choices=("none", "single", "mixed"), default="mixed",
                    help="the ClusterPolicy's spec.mig.strategy (default mixed)")
    up.add_argument("--gpu-taint", action="store_true", help="taint GPU nodes nvidia.com/gpu=true:NoSchedule")
    up.add_argument("--gpu-allocation", choices=("device-plugin", "dra"), default="device-plugin",
                    help="dra: GPU nodes run NVIDIA's DRA driver (ResourceSlices, claims) instead of the device plugin")
    up.add_argument("--dynamic-mig", action="store_true",
                    help="with --gpu-allocation dra: the driver's DynamicMIG gate (alpha): partitionable devices")
    up.add_argument("--mig-manager-delay", type=float, default=None, metavar="S",
                    help="seconds mig-manager stays pending/rebooting (agents' default when not given)")
    up.add_argument("--no-agents", action="store_true", help="do not start the simulated GPU Operator agents")
    up.add_argument("--stack", metavar="COMPONENT=VERSION,...",
                    help="the GPU stack the agents behave as, e.g. gpu-operator=v26.3.1,driver=550.54.15 (default: "
                         "the newest GA releases; docs/versions.md); runs against the cluster detect it")
    up.add_argument("--timeout", type=float, default=60.0, metavar="S", help="readiness timeout per component")
    down = verbs.add_parser("down", help="stop the cluster of a kubeconfig and remove its data (logs stay)")
    status = verbs.add_parser("status", help="processes, API health and GPU nodes (exit 1 when not healthy)")
    status.add_argument("--json", action="store_true", help="one JSON document instead of text")
    for q in (up, down, status):
        q.add_argument("--kubeconfig", required=True, type=Path, metavar="PATH",
                       help="the cluster's kubeconfig (state in PATH.d/)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return {"install": _install, "up": _up, "down": _down, "status": _status}[args.verb](args)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


# ---- install ----------------------------------------------------------------------------------------------
def _install(args: argparse.Namespace) -> int:
    from mig_conformance.cluster.local import build, pins
    from mig_conformance.cluster.local.toolcache import user_cache_root

    root: Path = args.cache_dir if args.cache_dir is not None else user_cache_root()
    checkout = pins.in_checkout()
    if args.regenerate and not checkout:
        return _fail(f"--regenerate rewrites the tools modules in {pins.TOOLS}: only in a checkout of mig-conformance")
    try:
        if args.check:
            available, what = build.check(root)
            again = "mig-conformance cluster install" + (f" --cache-dir {args.cache_dir}" if args.cache_dir else "")
            print(f"cluster install: {what}" + ("" if available else f"; build them with: {again}"))
            return EXIT_OK if available else EXIT_FAIL
        build.build(root, force=args.force,
                    regenerate="always" if args.regenerate else "auto" if checkout else "never")
    except build.GoUnavailable as exc:
        return _fail(str(exc))
    except build.BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print("cluster install: the binaries built so far are kept; run the command again to continue",
              file=sys.stderr)
        return EXIT_FAIL
    except (pins.PinsError, OSError) as exc:
        return _fail(f"cluster install: {exc}")
    except KeyboardInterrupt:
        print("\ncluster install: interrupted; the binaries built so far are kept: run the command again to continue",
              file=sys.stderr)
        return 130
    return EXIT_OK


# ---- up ---------------------------------------------------------------------------------------------------
def _up(args: argparse.Namespace) -> int:
    from mig_conformance.common.extras import require_backend

    require_backend("local", "mig-conformance cluster up")  # MissingExtra: exit 2 with the install hint
    from mig_conformance.cluster.assets import find_assets
    from mig_conformance.cluster.local import nodes, processes
    from mig_conformance.cluster.local.backend import LocalCluster, state_dir_for
    from mig_conformance.cluster.local.controlplane import BINARIES, ControlPlane

    t0 = time.monotonic()
    path: Path = args.kubeconfig.expanduser().absolute()
    state = state_dir_for(path)
    if (state / "controlplane.json").exists():
        try:
            running = [p for p in ControlPlane.load(state).procs.values() if processes.alive(p)]
        except (ClusterError, OSError, ValueError) as exc:
            return _fail(f"{state / 'controlplane.json'} cannot be read ({exc}); if no cluster runs there, remove "
                         f"{state} and try again")
        if running:
            return _fail(f"a local cluster is already running for {path} ({len(running)} processes, e.g. "
                         f"{running[0].name} pid {running[0].pid}); stop it with: mig-conformance cluster down "
                         f"--kubeconfig {path}")
    elif path.exists():
        return _fail(f"{path} exists and is not the kubeconfig of a local cluster (no {state}); "
                     "choose another --kubeconfig path")
    markers = ("controlplane.json", "processes.json", CLUSTER_FILE)
    if state.exists() and not any((state / marker).exists() for marker in markers):
        return _fail(f"{state} exists and is not the state folder of a local cluster (it is never deleted); "
                     "choose another --kubeconfig path")
    try:
        nodes.plan(args.nodes, args.gpu_taint)
    except ClusterError as exc:
        return _fail(f"--nodes {args.nodes!r}: {exc}")
    try:
        profile = stack.resolve([(stack.parse_choices(args.stack, "--stack"), "option --stack")])
    except InputError as exc:
        return _fail(str(exc))
    try:
        assets = find_assets(BINARIES)
    except ClusterError as exc:
        return _fail(str(exc))
    if state.exists():
        shutil.rmtree(state)  # a stopped cluster's leftovers (checked above to be one)
    try:
        cluster = LocalCluster.start(args.nodes, state_dir=state, strategy=args.strategy, gpu_taint=args.gpu_taint,
                                     mig_manager_delay=args.mig_manager_delay,
                                     agents=False if args.no_agents else "auto", assets=assets, detach=True,
                                     timeout=args.timeout, name=f"local@{path}", stack=profile,
                                     gpu_allocation=args.gpu_allocation, dynamic_mig=args.dynamic_mig)
    except ClusterError as exc:
        return _fail(f"cluster up failed (everything it started was stopped; logs in {state / 'logs'}):\n{exc}")
    except OSError as exc:  # e.g. the --kubeconfig folder is a file
        return _fail(f"cluster up failed: {exc}")
    try:
        plane = cluster.plane
        write_private(path, plane.admin_kubeconfig.read_bytes())  # never readable by others, not even briefly
        seconds = time.monotonic() - t0
        info = {"backend": "local", "nodes": args.nodes, "strategy": args.strategy, "gpu_taint": args.gpu_taint,
                "gpu_allocation": args.gpu_allocation, "dynamic_mig": args.dynamic_mig,
                "agents": cluster.facts["local"]["agents"], "kubeconfig": str(path), "ready_seconds": round(seconds, 2)}
        (state / CLUSTER_FILE).write_text(json.dumps(info, indent=1))
        node_names = [n.name for n in cluster.list_gpu_nodes()]
    finally:
        cluster.close()  # closes the client only: the processes were detached
    v = plane.versions
    print(f"local cluster ready in {seconds:.1f}s")
    print(f"  kubeconfig  {path}")
    print(f"  API server  {plane.server} (Kubernetes {v.get('kubernetes')}, etcd {v.get('etcd')}, "
          f"kwok {v.get('kwok')})")
    print(f"  nodes       {len(node_names)} ({args.nodes}), MIG strategy {args.strategy}, "
          f"GPU taint {'yes' if args.gpu_taint else 'no'}, GPU allocation {args.gpu_allocation}"
          + (" (dynamic MIG)" if args.dynamic_mig else ""))
    print("  processes   " + ", ".join(f"{p.name} {p.pid}" for p in plane.procs.values()))
    print(f"  stack       {stack.as_argument(profile)}")
    print(f"  logs        {plane.logs}/")
    print(f"  kit identity ServiceAccount mig-conformance/mig-conformance ({state / 'mig-conformance.kubeconfig'})")
    print(f"  try         kubectl --kubeconfig {path} get nodes")
    print(f"  stop        mig-conformance cluster down --kubeconfig {path}")
    return EXIT_OK


def _plane_of(args: argparse.Namespace) -> tuple[Path, Any]:
    """The kubeconfig path given and the ControlPlane whose state lives beside it; ClusterError when none."""
    from mig_conformance.cluster.local.backend import state_dir_for
    from mig_conformance.cluster.local.controlplane import ControlPlane

    path: Path = args.kubeconfig.expanduser().absolute()
    state = state_dir_for(path)
    try:
        return path, ControlPlane.load(state)
    except ClusterError:
        raise ClusterError(f"no local cluster for {path} (no state in {state})") from None


# ---- down -------------------------------------------------------------------------------------------------
def _down(args: argparse.Namespace) -> int:
    from mig_conformance.cluster.local import processes

    try:
        path, plane = _plane_of(args)
    except ClusterError as exc:
        return _fail(str(exc))
    running = [p for p in plane.procs.values() if processes.alive(p)]
    t0 = time.monotonic()
    plane.stop()
    path.unlink(missing_ok=True)
    if running:
        print(f"stopped {len(running)} processes ({', '.join(f'{p.name} {p.pid}' for p in running)}) "
              f"in {time.monotonic() - t0:.1f}s")
    else:
        print("the cluster was not running; cleaned up its state")
    print(f"removed {path}; logs kept in {plane.logs}/")
    return EXIT_OK


# ---- status -----------------------------------------------------------------------------------------------
def _status(args: argparse.Namespace) -> int:
    from mig_conformance.cli.failures import report_failure
    from mig_conformance.cluster.local.rest import RestError

    try:
        path, plane = _plane_of(args)
    except ClusterError as exc:  # with --json still one JSON document
        return report_failure(exc, args.json, EXIT_USAGE, healthy=False)
    health = plane.health()
    procs = [{"name": n, "pid": p.pid, "health": health[n]} for n, p in plane.procs.items()]
    doc: dict[str, Any] = {"kubeconfig": str(path), "server": plane.server, "versions": plane.versions,
                           "processes": procs, "nodes": [], "api": "unreachable"}
    if health.get("kube-apiserver") == "ok":
        try:
            with plane.admin() as admin:
                doc["nodes"] = [_node_row(n) for n in admin.list("Node")]
                doc["api"] = "ok"
        except (RestError, OSError) as exc:
            doc["api"] = f"error: {exc}"
    healthy = doc["api"] == "ok" and all(h in ("ok", "running") for h in health.values())
    doc["healthy"] = healthy
    if args.json:
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print_status(doc)
    return EXIT_OK if healthy else EXIT_FAIL


def _node_row(node: dict[str, Any]) -> dict[str, Any]:
    labels = node["metadata"].get("labels") or {}
    conds = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions") or []}
    alloc = node.get("status", {}).get("allocatable") or {}
    return {"name": node["metadata"]["name"], "instance_type": labels.get("node.kubernetes.io/instance-type"),
            "ready": conds.get("Ready", "Unknown"), "mig_config": labels.get("nvidia.com/mig.config"),
            "mig_state": labels.get("nvidia.com/mig.config.state"),
            "nvidia": {k: v for k, v in sorted(alloc.items()) if k.startswith("nvidia.com/")}}


def _print_status(doc: dict[str, Any]) -> None:
    v = doc["versions"]
    print(f"local cluster {doc['kubeconfig']}: {'healthy' if doc['healthy'] else 'NOT healthy'}")
    print(f"API server {doc['server']}: {doc['api']} (Kubernetes {v.get('kubernetes')}, etcd {v.get('etcd')}, "
          f"kwok {v.get('kwok')})")
    print(table([[p["name"], str(p["pid"]), p["health"]] for p in doc["processes"]], ["PROCESS", "PID", "HEALTH"]))
    if doc["nodes"]:
        print()
        rows = [[n["name"], n["instance_type"] or "-", n["ready"], n["mig_config"] or "-", n["mig_state"] or "-",
                 ", ".join(f"{k.removeprefix('nvidia.com/')}={q}" for k, q in n["nvidia"].items()) or "-"]
                for n in doc["nodes"]]
        print(table(rows, ["NODE", "TYPE", "READY", "MIG.CONFIG", "STATE", "NVIDIA ALLOCATABLE"]))
