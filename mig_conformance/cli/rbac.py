"""`mig-conformance rbac`: the kit's least-privilege RBAC (deploy/rbac.yaml) bound to your subject, for
`kubectl apply -f -` on a real cluster (e.g. the Kubernetes group an EKS access entry maps your IAM role to)."""

from __future__ import annotations

import argparse

import yaml

from mig_conformance.cli import EXIT_OK
from mig_conformance.common.errors import InputError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("rbac", help="print the kit's RBAC (deploy/rbac.yaml) bound to a group, user or "
                                    "ServiceAccount", description=__doc__)
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--group", metavar="NAME", help="a Kubernetes group (e.g. from an EKS access entry)")
    who.add_argument("--user", metavar="NAME", help="a Kubernetes user name")
    who.add_argument("--service-account", metavar="NAMESPACE/NAME", help="a ServiceAccount")
    p.add_argument("--operator-namespace", default="gpu-operator", metavar="NS",
                   help="the GPU Operator's namespace (its mig-parted ConfigMap; default gpu-operator)")
    p.add_argument("--read-only", action="store_true",
                   help="only the mig-conformance-read roles: enough for runs without --mig-allow-reconfigure")
    p.set_defaults(run=run)


def subject(args: argparse.Namespace) -> dict[str, str]:
    """The binding subject the options name (an empty name is a usage error: Kubernetes requires one)."""
    for option, value in (("--group", args.group), ("--user", args.user), ("--service-account", args.service_account)):
        if value is not None and not value.strip():
            raise InputError(f"{option}: a name is required, got '{value}'")
    if args.group is not None:
        return {"kind": "Group", "name": args.group, "apiGroup": "rbac.authorization.k8s.io"}
    if args.user is not None:
        return {"kind": "User", "name": args.user, "apiGroup": "rbac.authorization.k8s.io"}
    namespace, slash, name = args.service_account.partition("/")
    if not (slash and namespace and name):
        raise InputError(f"--service-account '{args.service_account}': expected NAMESPACE/NAME")
    return {"kind": "ServiceAccount", "name": name, "namespace": namespace}


def run(args: argparse.Namespace) -> int:
    from mig_conformance.cluster.local import kit_rbac

    docs = kit_rbac.documents(subjects=[subject(args)], operator_namespace=args.operator_namespace,
                              reconfigure=not args.read_only)
    print(f"# mig-conformance RBAC for {subject(args)['kind']} {subject(args)['name']}"
          f"{' (read-only)' if args.read_only else ''}: kubectl apply -f -")
    print(yaml.safe_dump_all(docs, sort_keys=False), end="")
    return EXIT_OK
