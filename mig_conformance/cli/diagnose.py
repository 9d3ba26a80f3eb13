"""`mig-conformance diagnose --cluster NAME`: the field diagnostics of the `diagnose` suite, printed.

Strictly read-only on every backend: the cluster is opened without changes allowed and read with get/list only
(nodes, the GPU Operator's pods, DaemonSets, ConfigMaps and events, the ClusterPolicy, ResourceSlices). Each finding
names its node, the evidence, the upstream issue it matches and the recovery step. Exit 0: no findings; 1: findings;
2: usage, or a cluster that cannot be read; 3: internal error.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from mig_conformance.cli import EXIT_FAIL, EXIT_OK, EXIT_USAGE
from mig_conformance.cli.failures import report_failure
from mig_conformance.cli.output import print_json, table
from mig_conformance.cluster.base import Cluster, ClusterError
from mig_conformance.common.errors import InputError
from mig_conformance.diagnose.context import PENDING_THRESHOLD_S
from mig_conformance.diagnose.finding import Finding
from mig_conformance.k8s.stack import StackProfile

log = logging.getLogger("mig_conformance.cli")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("diagnose", help="read-only field diagnostics of a cluster's MIG setup", description=__doc__)
    p.add_argument("--cluster", "--mig-cluster", dest="cluster", metavar="TARGET",
                   help="the cluster: a clusters-file name or sim[:SPEC], kubeconfig:CONTEXT, eks:CLUSTER@REGION, "
                        "... (default: $MIG_CLUSTER)")
    p.add_argument("--clusters-file", "--mig-clusters-file", dest="clusters_file", type=Path, metavar="FILE",
                   help="clusters file for names (default: $MIG_CLUSTERS_FILE, else ./mig-clusters.yaml)")
    p.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig to use (kubeconfig and eks backends)")
    p.add_argument("--context", metavar="NAME",
                   help="kubeconfig context (kubeconfig backend; eks: reach the API server through it)")
    p.add_argument("--pending-threshold", type=float, default=PENDING_THRESHOLD_S, metavar="S",
                   help=f"seconds in pending before mig-manager counts as wedged (default {PENDING_THRESHOLD_S:.0f})")
    p.add_argument("--json", action="store_true", help="one JSON document: findings and what was read")
    p.set_defaults(run=run)


def _open(args: argparse.Namespace) -> Any:
    from mig_conformance.cluster.registry import open_cluster
    from mig_conformance.cluster.targets import Target, resolve_target

    name = args.cluster or os.environ.get("MIG_CLUSTER")
    if not name:
        raise InputError("no cluster given: pass --cluster NAME (or set MIG_CLUSTER)")
    clusters_file = args.clusters_file or Path(os.environ.get("MIG_CLUSTERS_FILE") or "mig-clusters.yaml")
    target = resolve_target(name, clusters_file)
    options = dict(target.options)
    if args.kubeconfig:
        options["kubeconfig"] = args.kubeconfig
    if args.context:  # eks: the API server through that context instead of the kit's own tokens
        options["kubeconfig_context" if target.kind == "eks" else "context"] = args.context
    if target.kind == "kind":
        options["attach_only"] = True  # never create a cluster or start agents to diagnose one
    arg = options["context"] if target.kind == "kubeconfig" and options.get("context") else target.arg
    return open_cluster(Target(target.name, target.kind, arg, options, target.source), allow_changes=False)


def _text(findings: list[Finding], nodes: int, problems: tuple[str, ...]) -> str:
    if not findings:
        lines = [f"no findings on {nodes} GPU node(s)"]
    else:
        rows = [[f.node or "(cluster)", f.severity, f.id, f.title] for f in findings]
        lines = [table(rows, ["NODE", "SEVERITY", "FINDING", "WHAT"]), ""]
        for f in findings:
            lines += [f.line(), *(f"  {k}: {v}" for k, v in f.evidence.items()),
                      f"  upstream: {', '.join(f.upstream)}", f"  recovery: {f.recovery}",
                      *(f"  note: {n}" for n in f.notes), ""]
        lines.append(f"{len(findings)} finding(s) on {nodes} GPU node(s)")
    lines += [f"note: could not read {p}" for p in problems]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from mig_conformance.diagnose.run import diagnose, gpu_nodes
    from mig_conformance.diagnose.snapshot import read_snapshot

    if args.pending_threshold < 0:
        return report_failure(InputError("--pending-threshold must be >= 0 seconds"), args.json, EXIT_USAGE)
    try:
        cluster = _open(args)
    except InputError as exc:
        return report_failure(exc, args.json, EXIT_USAGE)
    except ClusterError as exc:
        return report_failure(exc, args.json, EXIT_USAGE)
    try:
        snapshot = read_snapshot(cluster, getattr(cluster, "operator_namespace", "gpu-operator"))
        profile = _stack(cluster)
    except ClusterError as exc:  # unreachable, or a permission the read needs is missing (named in the message)
        return report_failure(exc, args.json, EXIT_USAGE, cluster=cluster.name)
    finally:
        cluster.close()
    findings = diagnose(snapshot, profile, pending_threshold_s=args.pending_threshold)
    nodes = len(gpu_nodes(snapshot))
    if args.json:
        print_json({"cluster": cluster.name, "gpu_nodes": nodes, "findings": [f.as_dict() for f in findings],
                    "unread": list(snapshot.problems)})
    else:
        print(_text(findings, nodes, snapshot.problems))
        sys.stdout.flush()
    return EXIT_FAIL if findings else EXIT_OK


def _stack(cluster: Cluster) -> StackProfile:
    """The versions the findings are judged by: a real cluster's detected (reads only; best effort: what cannot be
    read stays unknown), a simulated one's chosen profile."""
    from mig_conformance.cluster.kube import KubeCluster

    if isinstance(cluster, KubeCluster):
        try:
            return cluster.detect_stack()
        except ClusterError as exc:
            log.warning("stack detection failed: %s", exc)
    return cluster.stack
