"""`mig-conformance eks-token` / `eks-kubeconfig` and the user's kubeconfig staying byte-identical (moto, offline)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import stat
import sys
from pathlib import Path

import pytest

pytest.importorskip("boto3")
pytest.importorskip("moto")

import boto3
import yaml

from mig_conformance.cli import main
from mig_conformance.cluster.eks import token as T
from support.eks_webhook import isolate_aws_env, make_tls

REGION = "us-west-2"
CLUSTER = "prod-gpu"
ENDPOINT = "https://127.0.0.1:9"  # nothing listens: no test may reach a network


@pytest.fixture
def ca_pem(tmp_path: Path) -> bytes:
    return make_tls(tmp_path / "ca")[0].read_bytes()


@pytest.fixture
def cluster(aws: None, ca_pem: bytes) -> None:
    """An EKS cluster in moto whose endpoint and CA are patched to usable values."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.eks.models import eks_backends

    boto3.client("eks", region_name=REGION).create_cluster(
        name=CLUSTER, version="1.31", roleArn="arn:aws:iam::123456789012:role/eks",
        resourcesVpcConfig={"subnetIds": ["subnet-1"]})
    c = eks_backends[DEFAULT_ACCOUNT_ID][REGION].clusters[CLUSTER]
    c.endpoint, c.certificate_authority = ENDPOINT, {"data": base64.b64encode(ca_pem).decode()}


# ---- eks-token -----------------------------------------------------------------------------------------------
def test_eks_token_prints_an_exec_credential(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    assert main(["eks-token", "--cluster-name", CLUSTER, "--region", REGION]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["kind"] == "ExecCredential"
    assert doc["apiVersion"] == "client.authentication.k8s.io/v1beta1"
    assert doc["spec"] == {}
    assert set(doc["status"]) == {"expirationTimestamp", "token"}
    assert doc["status"]["token"].startswith("k8s-aws-v1.")
    assert "sts.us-west-2.amazonaws.com" in T.decode(doc["status"]["token"])
    expires = dt.datetime.strptime(doc["status"]["expirationTimestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    assert dt.timedelta(minutes=13, seconds=58) <= expires - before <= dt.timedelta(minutes=14, seconds=2)


def test_eks_token_answers_the_api_version_kubectl_asks_for(aws: None, capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBERNETES_EXEC_INFO", json.dumps({"kind": "ExecCredential", "spec": {"interactive": False},
                                                          "apiVersion": "client.authentication.k8s.io/v1"}))
    assert main(["eks-token", "--cluster-name", CLUSTER, "--region", REGION]) == 0
    assert json.loads(capsys.readouterr().out)["apiVersion"] == "client.authentication.k8s.io/v1"


def test_eks_token_with_a_role(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    role = "arn:aws:iam::123456789012:role/mig-validator"
    assert main(["eks-token", "--cluster-name", CLUSTER, "--region", REGION, "--role-arn", role]) == 0
    url = T.decode(json.loads(capsys.readouterr().out)["status"]["token"])
    assert "X-Amz-Security-Token=" in url and "X-Amz-Credential=ASIA" in url


def test_eks_token_without_credentials_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    isolate_aws_env(monkeypatch, tmp_path)
    assert main(["eks-token", "--cluster-name", CLUSTER, "--region", REGION]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "mig-conformance eks-token: error: no AWS credentials found" in err
    assert "Traceback" not in err


# ---- eks-kubeconfig ------------------------------------------------------------------------------------------
def test_kubeconfig_is_private_and_uses_this_kit_as_exec_plugin(cluster: None, tmp_path: Path, ca_pem: bytes,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "out" / "eks.kubeconfig"
    path.parent.mkdir()
    role = "arn:aws:iam::123456789012:role/mig-validator"
    assert main(["eks-kubeconfig", "--cluster-name", CLUSTER, "--region", REGION, "--role-arn", role,
                 "--profile", "gpu", "-o", str(path)]) == 2, "profile 'gpu' does not exist"
    assert "AWS profile 'gpu' is not configured" in capsys.readouterr().err
    assert not path.exists()
    assert main(["eks-kubeconfig", "--cluster-name", CLUSTER, "--region", REGION, "--role-arn", role,
                 "-o", str(path)]) == 0
    assert capsys.readouterr().out.strip() == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = yaml.safe_load(path.read_text())
    (c,) = doc["clusters"]
    assert c["cluster"]["server"] == ENDPOINT
    assert base64.b64decode(c["cluster"]["certificate-authority-data"]) == ca_pem
    exec_ = doc["users"][0]["user"]["exec"]
    assert exec_["apiVersion"] == "client.authentication.k8s.io/v1beta1"
    assert exec_["command"] == sys.executable
    assert exec_["args"] == ["-m", "mig_conformance", "eks-token", "--cluster-name", CLUSTER, "--region", REGION,
                             "--role-arn", role]
    assert doc["current-context"] == doc["contexts"][0]["name"]
    assert "k8s-aws-v1" not in path.read_text() and "FOOBAR" not in path.read_text()
    # an existing file is only replaced with --force
    assert main(["eks-kubeconfig", "--cluster-name", CLUSTER, "--region", REGION, "-o", str(path)]) == 2
    assert "exists (pass --force" in capsys.readouterr().err
    assert main(["eks-kubeconfig", "--cluster-name", CLUSTER, "--region", REGION, "-o", str(path), "--force"]) == 0
    assert "--role-arn" not in path.read_text()


def test_kubeconfig_goes_to_a_private_temp_folder_by_default(cluster: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eks-kubeconfig", "--cluster-name", CLUSTER, "--region", REGION]) == 0
    path = Path(capsys.readouterr().out.strip())
    try:
        assert path.name == "kubeconfig" and path.parent.name.startswith("mig-conformance-eks-")
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        path.unlink()
        path.parent.rmdir()


def test_kubeconfig_refuses_the_users_own_kubeconfig(cluster: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    own = tmp_path / ".kube" / "config"
    own.parent.mkdir()
    own.write_text("apiVersion: v1\nkind: Config\n")
    other = tmp_path / "other-config"
    monkeypatch.setenv("KUBECONFIG", f"{other}{os.pathsep}{own}")
    for target in (own, other):
        assert main(["eks-kubeconfig", "--cluster-name", CLUSTER, "--region", REGION, "-o", str(target),
                     "--force"]) == 2
        assert "it is your kubeconfig" in capsys.readouterr().err
    assert own.read_text() == "apiVersion: v1\nkind: Config\n" and not other.exists()


@pytest.mark.slow  # the client runs the exec plugin (this kit) in a subprocess
def test_the_kubernetes_client_runs_the_exec_plugin(cluster: None, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """The written kubeconfig works with the official client: it runs `python -m mig_conformance eks-token`
    (a subprocess: the fake keys come from the environment, presigning needs no network)."""
    from kubernetes.config import new_client_from_config

    path = tmp_path / "kc"
    assert main(["eks-kubeconfig", "--cluster-name", CLUSTER, "--region", REGION, "-o", str(path)]) == 0
    client = new_client_from_config(config_file=str(path), persist_config=False)
    header = client.configuration.auth_settings()["BearerToken"]["value"]
    assert header.startswith("Bearer k8s-aws-v1.")
    assert "X-Amz-SignedHeaders=host%3Bx-k8s-aws-id" in T.decode(header.split(" ", 1)[1])
    assert client.configuration.host == ENDPOINT
    client.close()


# ---- the user's kubeconfig is never touched ------------------------------------------------------------------
def test_users_kubeconfig_is_byte_identical_after_an_eks_open_and_close(cluster: None, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from mig_conformance.cluster.journal import Journal
    from mig_conformance.cluster.registry import open_cluster
    from mig_conformance.cluster.targets import resolve_target

    home = tmp_path / "home"
    kube = home / ".kube"
    kube.mkdir(parents=True)
    config = kube / "config"
    config.write_text("# mine\napiVersion: v1\nkind: Config\ncurrent-context: work\ncontexts: []\n"
                      "users: [{name: me, user: {token: decoy-7f3a}}]\n")
    config.chmod(0o600)
    before = hashlib.sha256(config.read_bytes()).hexdigest(), config.stat().st_mtime_ns, sorted(os.listdir(kube))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    clusters = tmp_path / "mig-clusters.yaml"
    clusters.write_text(yaml.safe_dump({"eks-prod": {
        "backend": "eks", "cluster": CLUSTER, "region": REGION, "namespace": "gpu-operator",
        "node_selector": {"nvidia.com/gpu.present": "true"}, "description": "production GPUs"}}))
    target = resolve_target("eks-prod", clusters)
    c = open_cluster(target, journal=Journal(run_id="20261124-120000-abcdef"))
    assert c.kind == "eks" and c.operator_namespace == "gpu-operator"
    assert c.api_client.configuration.host == ENDPOINT
    header = c.api_client.configuration.get_api_key_with_prefix("BearerToken")
    assert header.startswith("Bearer k8s-aws-v1.")
    ca_file = Path(c.api_client.configuration.ssl_ca_cert)
    assert stat.S_IMODE(ca_file.stat().st_mode) == 0o600
    assert c.facts["identity"] == "arn:aws:sts::123456789012:user/moto"
    assert "k8s-aws-v1" not in json.dumps(c.facts) and "FOOBAR" not in json.dumps(c.facts)
    c.close()
    assert not ca_file.exists()
    after = hashlib.sha256(config.read_bytes()).hexdigest(), config.stat().st_mtime_ns, sorted(os.listdir(kube))
    assert after == before
    assert sorted(os.listdir(home)) == [".kube"]
