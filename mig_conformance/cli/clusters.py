"""`mig-conformance clusters list|show NAME`: the named targets of a clusters file."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

from mig_conformance.cli import EXIT_OK, EXIT_USAGE
from mig_conformance.cli.output import table
from mig_conformance.cluster.targets import Target, load_clusters_file
from mig_conformance.common.errors import InputError

DEFAULT_FILE = "mig-clusters.yaml"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("clusters", help="list or show the named clusters of a clusters file",
                       description="Named cluster targets from the clusters file (--mig-clusters-file of pytest; "
                                   f"default: $MIG_CLUSTERS_FILE, else ./{DEFAULT_FILE}). Schema errors exit 2 "
                                   "naming the file, line and key.")
    verbs = p.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True
    lst = verbs.add_parser("list", help="one line per cluster: name, backend, target, description")
    show = verbs.add_parser("show", help="every setting of one cluster, as YAML")
    show.add_argument("name", metavar="NAME", help="a name from the clusters file")
    for q in (lst, show):
        q.add_argument("--clusters-file", type=Path, metavar="FILE",
                       help=f"clusters file (default: $MIG_CLUSTERS_FILE, else ./{DEFAULT_FILE})")
        q.set_defaults(run=run)


def clusters_file(given: Path | None) -> Path:
    """The file to read: the option, then $MIG_CLUSTERS_FILE, then ./mig-clusters.yaml."""
    return given or Path(os.environ.get("MIG_CLUSTERS_FILE") or DEFAULT_FILE)


def target_summary(t: Target) -> str:
    """One short phrase saying what a target points at."""
    o = t.options
    if t.kind == "eks":
        extra = "".join(f", {k} {o[k]}" for k in ("profile", "role_arn") if o.get(k))
        return f"EKS cluster {o['cluster']} in {o['region']}{extra}"
    if t.kind == "kubeconfig":
        return f"context {o['context']} of {o.get('kubeconfig') or '$KUBECONFIG or ~/.kube/config'}"
    if t.kind == "kind":
        config = f" from {o['config']}" if o.get("config") else ""
        keep = ", kept" if o.get("keep") else ""
        return f"kind cluster {o['name']}{config}{keep}"
    return f"{t.kind} nodes {o['nodes']}" if o.get("nodes") else f"{t.kind} (default fleet)"


def run(args: argparse.Namespace) -> int:
    path = clusters_file(args.clusters_file)
    if not path.is_file():
        print(f"error: clusters file {path} does not exist (pass --clusters-file or set MIG_CLUSTERS_FILE)",
              file=sys.stderr)
        return EXIT_USAGE
    targets = load_clusters_file(path)  # InputError (file, line, key) -> exit 2 in cli.main
    if args.verb == "show":
        return _show(path, targets, args.name)
    if not targets:
        print(f"no clusters in {path}")
        return EXIT_OK
    rows = [[t.name, t.kind, target_summary(t), str(t.options.get("description", ""))] for t in targets.values()]
    print(table(rows, ["NAME", "BACKEND", "TARGET", "DESCRIPTION"]))
    return EXIT_OK


def _show(path: Path, targets: dict[str, Target], name: str) -> int:
    if name not in targets:
        raise InputError(f"{path}: no cluster named '{name}' (names there: {', '.join(sorted(targets)) or 'none'})")
    t = targets[name]
    settings = {"backend": t.kind, **{k: v for k, v in t.options.items() if k != "backend"}}
    doc = {t.name: settings}
    print(f"# from {path}")
    print(yaml.safe_dump(doc, sort_keys=False, default_flow_style=False).rstrip())
    return EXIT_OK
