"""`mig-conformance eks-token` (an ExecCredential, as `aws eks get-token` prints it) and `eks-kubeconfig` (a
kubeconfig for kubectl whose exec plugin is this command, so no aws CLI is needed).

eks-token prints a bearer token on stdout: that is the exec-plugin protocol (kubectl reads it); it is meant for
kubectl's exec plugin, not for a terminal or a log. eks-kubeconfig never writes the user's kubeconfig: it refuses
$KUBECONFIG and ~/.kube/config and by default writes into a new private temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from mig_conformance.cli import EXIT_OK, EXIT_USAGE
from mig_conformance.common.private_files import write_private

EXEC_API = "client.authentication.k8s.io/v1beta1"
EXEC_APIS = ("client.authentication.k8s.io/v1beta1", "client.authentication.k8s.io/v1")


def _aws_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cluster-name", required=True, metavar="NAME", help="EKS cluster name")
    p.add_argument("--region", required=True, metavar="REGION", help="AWS region of the cluster, e.g. us-west-2")
    p.add_argument("--role-arn", metavar="ARN", help="IAM role to assume first (session mig-conformance-<id>)")
    p.add_argument("--profile", metavar="NAME", help="AWS profile (default: the default credential chain)")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tok = sub.add_parser("eks-token", help="print an EKS ExecCredential (bearer token) for kubectl's exec plugin",
                         description="Print an ExecCredential JSON with a 15-minute EKS bearer token, as "
                                     "`aws eks get-token` does, without the aws CLI.")
    _aws_args(tok)
    tok.set_defaults(run=run)
    kc = sub.add_parser("eks-kubeconfig", help="write a kubeconfig (0600) for an EKS cluster using eks-token",
                        description="Write a kubeconfig for one EKS cluster whose exec plugin runs "
                                    "`python -m mig_conformance eks-token`; the user's kubeconfig is never touched.")
    _aws_args(kc)
    kc.add_argument("-o", "--output", type=Path, metavar="PATH",
                    help="file to write (default: kubeconfig in a new private temporary folder); an existing "
                         "file is replaced only with --force, and never $KUBECONFIG or ~/.kube/config")
    kc.add_argument("--force", action="store_true", help="replace PATH if it exists")
    kc.set_defaults(run=run)


def exec_credential(token: Any, api_version: str | None = None) -> dict[str, Any]:
    """The ExecCredential document kubectl and the Python client read from an exec plugin."""
    return {"kind": "ExecCredential", "apiVersion": api_version or EXEC_API, "spec": {},
            "status": {"expirationTimestamp": token.expiration_timestamp(), "token": token.value}}


def exec_api_version(env: dict[str, str] | os._Environ[str] | None = None) -> str:
    """The apiVersion kubectl asked for in KUBERNETES_EXEC_INFO, else v1beta1."""
    raw = (os.environ if env is None else env).get("KUBERNETES_EXEC_INFO")
    try:
        version = json.loads(raw).get("apiVersion") if raw else None
    except (ValueError, AttributeError):
        version = None
    return version if version in EXEC_APIS else EXEC_API


def exec_args(cluster: str, region: str, role_arn: str | None, profile: str | None) -> list[str]:
    args = ["-m", "mig_conformance", "eks-token", "--cluster-name", cluster, "--region", region]
    if role_arn:
        args += ["--role-arn", role_arn]
    if profile:
        args += ["--profile", profile]
    return args


def kubeconfig_doc(name: str, endpoint: str, ca_data: str, args: list[str]) -> dict[str, Any]:
    """A one-context kubeconfig with the CA embedded and this kit as exec plugin (no secret in it)."""
    return {"apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": name, "cluster": {"server": endpoint, "certificate-authority-data": ca_data}}],
            "users": [{"name": name, "user": {"exec": {
                "apiVersion": EXEC_API, "command": sys.executable, "args": args, "interactiveMode": "Never",
                "provideClusterInfo": False}}}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
            "current-context": name}


def user_kubeconfigs() -> set[Path]:
    """The files kubectl would use by default ($KUBECONFIG, ~/.kube/config), resolved."""
    from mig_conformance.cluster.kubeconfig import default_kubeconfig

    return {Path(p).expanduser().resolve() for p in default_kubeconfig().split(os.pathsep) if p} | {
        Path("~/.kube/config").expanduser().resolve()}


def write_new_private(path: Path, text: str, force: bool) -> None:
    """Create `path` with mode 0600 (replace it only with force), atomically."""
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists (pass --force to replace it)")
    write_private(path, text)


def _identity(args: argparse.Namespace) -> Any:
    from mig_conformance.cluster.eks.token import AwsIdentity

    return AwsIdentity(args.region, args.profile, args.role_arn, os.environ.get("MIG_CONFORMANCE_RUN_ID"))


def run(args: argparse.Namespace) -> int:
    from mig_conformance.cluster.base import ClusterError
    from mig_conformance.common.extras import require

    require(("boto3", "botocore"), f"mig-conformance {args.command}", "eks")  # MissingExtra: exit 2, one line
    try:
        return _kubeconfig(args) if args.command == "eks-kubeconfig" else _token(args)
    except ClusterError as exc:  # AWS errors: already actionable and free of secrets
        print(f"mig-conformance {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _token(args: argparse.Namespace) -> int:
    from mig_conformance.cluster.eks.token import TokenSource

    token = TokenSource(args.cluster_name, _identity(args)).token()
    print(json.dumps(exec_credential(token, exec_api_version())))
    return EXIT_OK


def _kubeconfig(args: argparse.Namespace) -> int:
    from mig_conformance.cluster.eks.discovery import EksApi

    if args.output is not None and args.output.expanduser().resolve() in user_kubeconfigs():
        print(f"mig-conformance eks-kubeconfig: error: refusing to write {args.output}: it is your kubeconfig; "
              "the kit never changes it (choose another -o PATH)", file=sys.stderr)
        return EXIT_USAGE
    info = EksApi(_identity(args)).describe_cluster(args.cluster_name)
    info.ca_pem()  # a clear error now rather than a TLS failure in kubectl
    name = f"eks-{args.cluster_name}-{args.region}"
    doc = kubeconfig_doc(name, info.endpoint, info.ca_data,
                         exec_args(args.cluster_name, args.region, args.role_arn, args.profile))
    if args.output is not None:
        path = args.output.expanduser()
    else:  # a new folder of mode 0700
        path = Path(tempfile.mkdtemp(prefix="mig-conformance-eks-")) / "kubeconfig"
    import yaml

    try:
        write_new_private(path, yaml.safe_dump(doc, sort_keys=False), args.force)
    except (FileExistsError, OSError) as exc:
        print(f"mig-conformance eks-kubeconfig: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(path)
    print(f"# use it with: KUBECONFIG={path} kubectl get nodes", file=sys.stderr)
    return EXIT_OK
