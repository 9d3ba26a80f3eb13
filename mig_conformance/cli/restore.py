"""`mig-conformance restore JOURNAL...`: put back what a killed run changed, from the journal it left.

The journal names the cluster; it is reopened as the run opened it (or as --cluster/--kubeconfig/--context say)
with changes allowed, every recorded original value is written back and the journal is emptied. Running it again
finds nothing to do (exit 0). Exit 1 when some change could not be restored (it stays in the journal).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mig_conformance.cli import EXIT_FAIL, EXIT_OK
from mig_conformance.cluster.base import (
    KEPT_LAYOUT,
    ClusterError,
    RestoreIncomplete,
    describe_change,
    relabelled_nodes,
    restore_sequence,
    settle_problem,
    unlabelled_nodes,
)
from mig_conformance.cluster.journal import Journal, gone_with_the_run
from mig_conformance.cluster.targets import Target, resolve_target
from mig_conformance.common.errors import InputError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("restore", help="restore the changes a killed run left (from its journal.json)",
                       description=__doc__)
    p.add_argument("journals", nargs="+", metavar="JOURNAL",
                   help="journal.json of a run, or a folder: every *journal*.json in it (a report folder, "
                        ".mig-conformance/)")
    p.add_argument("--cluster", "--mig-cluster", dest="cluster", metavar="TARGET",
                   help="reopen this target instead of the one the journal names")
    p.add_argument("--clusters-file", "--mig-clusters-file", dest="clusters_file", type=Path, metavar="FILE",
                   help="clusters file for names (default: the one the run used, else ./mig-clusters.yaml)")
    p.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig to use (kubeconfig and eks backends)")
    p.add_argument("--context", metavar="NAME",
                   help="kubeconfig context to use (kubeconfig backend; eks: reach the API server through it)")
    p.add_argument("--dry-run", action="store_true", help="print what would be restored; connect to nothing")
    p.add_argument("--timeout", type=float, default=900.0, metavar="S",
                   help="seconds to wait for mig-manager to re-apply the restored configs (0: do not wait)")
    p.set_defaults(run=run)


def journal_files(paths: list[str]) -> list[Path]:
    """The journals named: files as given, folders expanded to their journal*.json (sorted)."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(p.glob("*journal*.json"))
            if not found:
                raise InputError(f"{p}: no *journal*.json in this folder")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise InputError(f"{p}: no such journal file or folder")
    return out


def target_of(journal: Journal, args: argparse.Namespace) -> Target:
    """The target to reopen: --cluster, else what the journal recorded, else its cluster name resolved."""
    recorded = journal.target
    clusters_file = args.clusters_file or Path(recorded.get("clusters_file") or "mig-clusters.yaml")
    if args.cluster:
        target = resolve_target(args.cluster, clusters_file)
    elif recorded.get("kind"):
        target = Target(str(recorded.get("name") or journal.cluster), str(recorded["kind"]),
                        str(recorded.get("arg") or ""), dict(recorded.get("options") or {}), source=str(journal.path))
    elif journal.cluster:
        target = resolve_target(journal.cluster, clusters_file)
    else:
        raise InputError(f"{journal.path}: the journal names no cluster; pass --cluster TARGET")
    options: dict[str, Any] = dict(target.options)
    if args.kubeconfig:
        options["kubeconfig"] = args.kubeconfig
    if args.context:  # eks: the API server through that context instead of the kit's own tokens
        options["kubeconfig_context" if target.kind == "eks" else "context"] = args.context
    if target.kind == "kind":
        options["attach_only"] = True  # never create a cluster or start agents to restore one
    arg = options["context"] if target.kind == "kubeconfig" and options.get("context") else target.arg
    return Target(target.name, target.kind, arg, options, target.source)


def restore_one(path: Path, args: argparse.Namespace) -> int:
    try:
        journal = Journal.load(path)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the journal: {exc}") from None
    if not journal.changes:
        print(f"{path}: nothing to restore")
        return EXIT_OK
    target = target_of(journal, args)
    print(f"{path}: {len(journal.changes)} change(s) of run {journal.run_id or '?'} on {target.name} "
          f"({target.kind})")
    if args.dry_run:
        for change in restore_sequence(journal.changes):
            print(f"  would restore {describe_change(change)}")
        return EXIT_OK
    if gone_with_the_run(target.kind, target.options) and not args.cluster:
        print(f"  nothing to restore: a {target.kind} cluster lived only as long as its run (pass --cluster to "
              "restore these values on another cluster)")
        return EXIT_OK
    from mig_conformance.cluster.registry import open_cluster

    cluster = open_cluster(target, allow_changes=True, journal=journal)
    try:
        relabelled = relabelled_nodes(journal.changes)
        unsettled = unlabelled_nodes(journal.changes)
        for node in unsettled:
            print(f"  NOT SETTLED {node}: {KEPT_LAYOUT}", file=sys.stderr)
        try:
            restored, failures = cluster.restore(namespaces=True), []
        except RestoreIncomplete as exc:
            restored, failures = exc.restored, exc.failures
        for line in restored:
            print(f"  restored {line}")
        for line in failures:
            print(f"  NOT RESTORED {line}", file=sys.stderr)
        if relabelled and args.timeout > 0:
            for node, state in cluster.wait_settled(list(relabelled), args.timeout).items():
                print(f"  mig-manager on {node}: {state}")
                if settle_problem(state, relabelled[node]):
                    unsettled.append(node)
        for leftover in _leftovers(cluster, journal.run_id):
            print(f"  note: {leftover} is still present (deletion in progress?)")
    finally:
        cluster.close()
    if failures:
        print(f"{path}: {len(failures)} change(s) remain in the journal; run this command again", file=sys.stderr)
        return EXIT_FAIL
    if unsettled:
        print(f"{path}: labels restored, but mig-manager did not bring back the original config on "
              f"{', '.join(unsettled)}", file=sys.stderr)
        return EXIT_FAIL
    print(f"{path}: done")
    return EXIT_OK


def _leftovers(cluster: Any, run_id: str) -> list[str]:
    if not run_id:
        return []
    try:
        return list(cluster.leftovers(run_id))
    except ClusterError:
        return []


def run(args: argparse.Namespace) -> int:
    worst = EXIT_OK
    for path in journal_files(args.journals):
        try:
            worst = max(worst, restore_one(path, args))
        except ClusterError as exc:  # cannot open the cluster: nothing was restored, the journal is kept
            print(f"error: {path}: {exc}", file=sys.stderr)
            worst = max(worst, EXIT_FAIL)
    return worst
