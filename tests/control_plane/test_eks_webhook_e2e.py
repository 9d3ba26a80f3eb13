"""EKS end to end without AWS: token -> real kube-apiserver -> suites.

The `local` backend's kube-apiserver authenticates bearer tokens with a token webhook of these tests
(tests/support/eks_webhook.py) that accepts only well-formed EKS tokens for the expected cluster name, verifying
their SigV4 signature itself against the fake keys (moto's); moto's EKS `describe_cluster` is patched to point at
that API server. The whole path: the eks backend, token refresh past 15 simulated minutes, kubectl through
`eks-kubeconfig`, and `pytest --mig-cluster=<clusters-file entry>` with a role, read-only, whose report bundle must
hold no token or key. The webhook on its own (accepts / rejects): tests/unit/test_eks_webhook.py.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("boto3")
pytest.importorskip("moto")
pytest.importorskip("cryptography")

import boto3
import botocore.auth
import yaml
from moto import mock_aws

from mig_conformance.cluster.base import ClusterError
from mig_conformance.cluster.local.backend import LocalCluster
from support.control_plane import control_plane_assets
from support.eks_identities import (
    ACCOUNT,
    ADMIN,
    ADMIN_GROUP,
    CLUSTER,
    GROUP,
    MOTO_ARN,
    NODEGROUP,
    REGION,
    ROLE,
    STRANGER,
    URL_B64,
    USERS,
    moto_keys,
    moto_secrets,
    tamper,
    token_at,
)
from support.eks_webhook import Verifier, Webhook, apiserver_args, isolate_aws_env


# ---- through a real API server ----------------------------------------------------------------------------------
@dataclass
class Env:
    local: Any
    webhook: Webhook
    folder: Path


def _rbac() -> list[dict[str, Any]]:
    """deploy/rbac.yaml: the kit's ServiceAccount as the local backend wants it, the validators' group bound to the
    read-only roles only (a read-only run must need nothing more), the admins' group also to -reconfigure."""
    from mig_conformance.cluster.local import kit_rbac

    sa = {"kind": "ServiceAccount", "name": kit_rbac.KIT_SA, "namespace": kit_rbac.KIT_NAMESPACE}
    group = {"kind": "Group", "name": GROUP, "apiGroup": "rbac.authorization.k8s.io"}
    admins = {"kind": "Group", "name": ADMIN_GROUP, "apiGroup": "rbac.authorization.k8s.io"}
    base = [d for d in kit_rbac.load() if d["kind"] in ("Namespace", "ServiceAccount")]
    read = kit_rbac.documents(subjects=[sa, group], reconfigure=False)
    recon = [d for d in kit_rbac.documents(subjects=[sa, admins]) if d["metadata"]["name"] == kit_rbac.RECONFIGURE]
    return base + read + recon


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    control_plane_assets()
    local_cls = LocalCluster
    folder = tmp_path_factory.mktemp("eks-e2e")
    with pytest.MonkeyPatch.context() as mp:
        isolate_aws_env(mp, folder)
        with mock_aws(), Webhook(Verifier(CLUSTER, REGION, moto_keys, USERS), folder / "webhook") as hook:
            local = local_cls.start("p5.48xlarge", state_dir=folder / "local", rbac_docs=_rbac(), strategy="mixed",
                                    default_config="all-balanced",
                                    extra_args={"kube-apiserver": apiserver_args(hook.kubeconfig(folder / "wh.yaml"))})
            try:
                _eks_in_moto(local)
                yield Env(local, hook, folder)
            finally:
                local.close()


def _eks_in_moto(local: Any) -> None:
    """The EKS cluster moto describes: endpoint and CA of the local API server; one p5 node group."""
    from moto.eks.models import eks_backends

    eks = boto3.client("eks", region_name=REGION)
    eks.create_cluster(name=CLUSTER, version="1.37", roleArn=f"arn:aws:iam::{ACCOUNT}:role/eks",
                       resourcesVpcConfig={"subnetIds": ["subnet-1"]})
    eks.create_nodegroup(clusterName=CLUSTER, nodegroupName=NODEGROUP, instanceTypes=["p5.48xlarge"],
                         scalingConfig={"minSize": 1, "maxSize": 1, "desiredSize": 1}, subnets=["subnet-1"],
                         nodeRole=f"arn:aws:iam::{ACCOUNT}:role/node", amiType="AL2023_x86_64_NVIDIA",
                         releaseVersion="1.37.0-20261101", labels={"nvidia.com/mig.config": "all-balanced"})
    c = eks_backends[ACCOUNT][REGION].clusters[CLUSTER]
    c.endpoint = local.plane.server
    c.certificate_authority = {"data": base64.b64encode(local.plane.pki.ca.cert.read_bytes()).decode()}


def open_eks(**options: Any) -> Any:
    from mig_conformance.cluster.eks.backend import EksCluster

    return EksCluster.open(f"eks:{CLUSTER}@{REGION}", CLUSTER, REGION, **options)


def raw_call(env: Env, token: str) -> int:
    """Status of GET /api/v1/nodes with this bearer token."""
    ctx = ssl.create_default_context(cafile=str(env.local.plane.pki.ca.cert))
    req = urllib.request.Request(env.local.plane.server + "/api/v1/nodes", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_eks_backend_reads_the_cluster_with_tokens(env: Env) -> None:
    seen = len(env.webhook.reviews)
    c = open_eks()
    try:
        nodes = c.list_gpu_nodes()
        assert [n.labels["eks.amazonaws.com/nodegroup"] for n in nodes] == [NODEGROUP]
        info = c.describe()
    finally:
        c.close()
    assert info["kubernetes_version"].startswith("v1.37")
    assert info["eks"]["nodes"] == {nodes[0].name: NODEGROUP}
    assert info["gpu_models"] == ["H100-80GB"]
    assert info["nodes"][0]["catalog_gpu"] == "H100-80GB" and info["nodes"][0]["gpu_count"] == 8
    assert info["versions"]["ami_release"] == ["1.37.0-20261101"]
    assert info["gpu_operator"], "the ClusterPolicy was read with the group's RBAC"
    new = env.webhook.reviews[seen:]
    assert new and all(r.accepted and r.arn == MOTO_ARN for r in new)
    assert "k8s-aws-v1" not in json.dumps(info) and URL_B64 not in json.dumps(info)


@pytest.mark.parametrize(("make", "reason"), [
    (lambda: tamper(token_at(CLUSTER)), "signature"),
    (lambda: token_at("another-cluster"), "signature"),
    (lambda: token_at(CLUSTER, dt.datetime.now(dt.UTC) - dt.timedelta(minutes=16)), "expired"),
], ids=["tampered", "other-cluster", "expired"])
def test_api_server_refuses_bad_tokens(env: Env, make: Any, reason: str) -> None:
    assert raw_call(env, token_at(CLUSTER)) == 200
    assert raw_call(env, make()) == 401
    assert not env.webhook.reviews[-1].accepted and reason in env.webhook.reviews[-1].reason


def test_unmapped_identity_gets_an_access_entry_hint(env: Env) -> None:
    c = open_eks(role_arn=STRANGER)
    try:
        with pytest.raises(ClusterError, match=r"did not accept the IAM identity .*stranger.*access entry"):
            c.list_gpu_nodes()
    finally:
        c.close()


def test_missing_rbac_names_the_permission(env: Env) -> None:
    c = open_eks(allow_changes=True)
    try:
        node = c.list_gpu_nodes()[0].name
        with pytest.raises(ClusterError, match="needs permission to patch nodes: bind it to ClusterRole "
                                               "mig-conformance-read"):
            c._write_node_label(node, "x", "y")
    finally:
        c.close()


class SimClock:
    """One simulated clock for botocore's signing time, the TokenSource and the webhook."""

    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC).replace(microsecond=0)

    def seconds(self) -> float:
        return self.now.timestamp()

    def aware(self) -> dt.datetime:
        return self.now


def test_runs_longer_than_15_minutes_keep_working(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = SimClock()
    monkeypatch.setattr(botocore.auth, "get_current_datetime",
                        lambda remove_tzinfo=True: clock.now.replace(tzinfo=None) if remove_tzinfo else clock.now)
    monkeypatch.setattr(env.webhook.verifier, "now", clock.aware)
    c = open_eks(clock=clock.seconds)
    try:
        assert c.list_gpu_nodes()
        first = c.tokens.token()
        for minutes in (5, 5, 6):  # 16 simulated minutes, a request every few
            clock.now += dt.timedelta(minutes=minutes)
            assert c.list_gpu_nodes()
        # kube-apiserver caches successful authentications for 10 s of real time, so ask the webhook directly:
        # at t0+16 min the first token is refused, and the server had the webhook check the renewed one.
        assert env.webhook.review(first.value) == {"authenticated": False,
                                                   "error": "token expired (signed more than 15 minutes ago)"}
        renewed = c.tokens.token()
        assert renewed.value != first.value and c.tokens.issued_count == 2
        digest = hashlib.sha256(renewed.value.encode()).hexdigest()
        assert any(r.accepted and r.token_sha256 == digest for r in env.webhook.reviews)
        assert c.list_gpu_nodes()
    finally:
        c.close()


def test_kubectl_works_with_the_written_kubeconfig(env: Env, tmp_path: Path) -> None:
    from mig_conformance.cli import main
    from mig_conformance.cluster.assets import find_assets

    kubectl = find_assets(["kubectl"])["kubectl"]
    path = tmp_path / "eks.kubeconfig"
    assert main(["eks-kubeconfig", "--cluster-name", CLUSTER, "--region", REGION, "-o", str(path)]) == 0
    run_env = {**os.environ, "HOME": str(tmp_path)}  # kubectl's cache goes there, not to the real home
    out = subprocess.run([str(kubectl), "--kubeconfig", str(path), "get", "nodes", "-o", "name"],
                         capture_output=True, text=True, timeout=60, env=run_env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("node/ip-10-0-")
    # the exec plugin is its only credential (an identical token signed in the same second may be served from the
    # API server's 10 s authentication cache, so the webhook is not necessarily asked again)
    assert set(yaml.safe_load(path.read_text())["users"][0]["user"]) == {"exec"}
    denied = subprocess.run([str(kubectl), "--kubeconfig", str(path), "label", "node", out.stdout.split("/")[1].strip(),
                             "x=y"], capture_output=True, text=True, timeout=60, env=run_env)
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower()


def test_kubeconfig_context_option_reads_but_never_writes_the_kubeconfig(env: Env, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """`kubeconfig_context`: connect through a context of the user's kubeconfig (here one eks-kubeconfig wrote)
    instead of in-process tokens; AWS discovery still runs, and the file stays byte-identical."""
    from mig_conformance.cli import main

    path = tmp_path / "config"
    assert main(["eks-kubeconfig", "--cluster-name", CLUSTER, "--region", REGION, "-o", str(path)]) == 0
    context = yaml.safe_load(path.read_text())["current-context"]
    before = path.read_bytes(), path.stat().st_mtime_ns
    monkeypatch.setenv("KUBECONFIG", str(path))
    c = open_eks(kubeconfig_context=context)
    try:
        assert c.tokens is None and c.ca_file is None
        assert [n.labels["eks.amazonaws.com/nodegroup"] for n in c.list_gpu_nodes()] == [NODEGROUP]
        info = c.describe()
        assert info["kubeconfig_context"] == context and info["eks"]["nodes"]
    finally:
        c.close()
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


def test_restore_after_a_killed_run_reopens_eks_with_the_role(env: Env, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A run (role mig-admin, reconfigure allowed) changes a label and dies; `mig-conformance restore JOURNAL`
    reopens the same EKS cluster with the same role from the journal alone and puts the label back."""
    from mig_conformance.cli import main
    from mig_conformance.cluster.journal import Journal

    key = "mig-conformance.e2e/probe"
    path = tmp_path / "journal.json"
    target = {"name": "eks-admin", "kind": "eks", "arg": CLUSTER,
              "options": {"backend": "eks", "cluster": CLUSTER, "region": REGION, "role_arn": ADMIN}}
    c = open_eks(role_arn=ADMIN, allow_changes=True, journal=Journal(path, "20261124-090000-e2e", "eks-admin", target))
    node = c.list_gpu_nodes()[0].name
    c.set_node_label(node, key, "changed")
    assert c.get_node(node).labels[key] == "changed"
    c.close()  # killed: nothing restored
    assert json.loads(path.read_text())["changes"] == [
        {"kind": "node-label", "target": node, "key": key, "original": None}]
    assert main(["restore", str(path)]) == 0, capsys.readouterr().err
    assert f"restored node {node} label {key}(removed)" in capsys.readouterr().out
    check = open_eks()
    try:
        assert key not in check.get_node(node).labels
    finally:
        check.close()
    assert json.loads(path.read_text())["changes"] == []


def _bundle_text(folder: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(folder.rglob("*")) if p.is_file())


def test_pytest_run_through_eks_read_only(env: Env, tester: pytest.Pytester) -> None:
    """`pytest --mig-cluster=eks-e2e` (a clusters-file entry with a role): read-only suites pass over the token
    path, TARGET.yaml has the EKS facts, no token or key is anywhere in the bundle, ~/.kube/config untouched."""
    home_config = tester.path / ".kube" / "config"  # pytester points HOME at its folder
    home_config.parent.mkdir()
    home_config.write_text("# the user's\napiVersion: v1\nkind: Config\nusers: [{name: u, user: {token: decoy}}]\n")
    before = hashlib.sha256(home_config.read_bytes()).hexdigest(), home_config.stat().st_mtime_ns
    tester.makefile(".yaml", **{"mig-clusters": yaml.safe_dump({"eks-e2e": {
        "backend": "eks", "cluster": CLUSTER, "region": REGION, "role_arn": ROLE, "namespace": "gpu-operator",
        "description": "EKS through the token webhook"}})})
    seen = len(env.webhook.reviews)
    result = tester.runpytest("--mig-cluster=eks-e2e", "--mig-clusters-file=mig-clusters.yaml",
                                "--mig-report=out", "-rs", "-p", "no:cacheprovider")
    out = result.stdout.str()
    assert result.ret == 0, out[-4000:]
    result.stdout.fnmatch_lines(["*mig-conformance mode: eks: read-only*"])
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 2 and not outcomes.get("failed") and not outcomes.get("errors"), outcomes
    assert "changes the cluster eks-e2e; run with --mig-allow-reconfigure" in out
    bundle = tester.path / "out"
    summary = json.loads((bundle / "summary.json").read_text())
    target = yaml.safe_load((bundle / "TARGET.yaml").read_text())
    text = json.dumps(target)
    assert NODEGROUP in text and "H100-80GB" in text and "1.37.0-20261101" in text, text[:2000]
    assert target["versions"]["kubernetes"] == "v1.37.2", "the live API server's version, not EKS's"
    assert target["versions"]["platform"] == "eks.4"
    # the driver the nodes run (GFD's labels), the operator's components (ClusterPolicy), the Kubernetes release
    assert target["versions"]["driver"] == "580.159.04", target["versions"]
    facts = target["cluster"]["facts"]
    assert facts["eks"]["nodes"] == {facts["nodes"][0]["name"]: NODEGROUP}
    assert facts["identity"].endswith(f":assumed-role/mig-validator/mig-conformance-{summary['run_id']}")
    new = env.webhook.reviews[seen:]
    session = f"mig-conformance-{summary['run_id']}"
    assert new and all(r.accepted for r in new)
    assert all(r.arn == f"arn:aws:sts::{ACCOUNT}:assumed-role/mig-validator/{session}" for r in new)
    everything = _bundle_text(bundle) + out
    for secret in ("k8s-aws-v1", URL_B64, "X-Amz-Signature", *moto_secrets()):
        assert secret not in everything, f"{secret[:12]}... leaked into the bundle or the output"
    assert (hashlib.sha256(home_config.read_bytes()).hexdigest(), home_config.stat().st_mtime_ns) == before
    assert sorted(os.listdir(home_config.parent)) == ["config"]
