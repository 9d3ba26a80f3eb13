"""EKS discovery against moto (EKS, EC2, STS): node groups -> instance types -> catalog GPUs, node matching, the
facts that go into TARGET.yaml, and the errors (cluster not found lists the region's clusters; access denied names
the permission)."""

from __future__ import annotations

import base64
import stat
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("boto3")
pytest.importorskip("moto")

import boto3
from botocore.stub import Stubber

from mig_conformance.cluster.eks.credentials import AccessDenied, AwsError, ClusterNotFound
from mig_conformance.cluster.eks.discovery import EksApi, write_ca
from mig_conformance.cluster.eks.token import AwsIdentity
from mig_conformance.k8s.model import GpuNode, Taint

REGION = "us-west-2"
CLUSTER = "prod-gpu"
SCALING = {"minSize": 0, "maxSize": 4, "desiredSize": 2}  # always explicit: moto shares a mutable default


def create_cluster(name: str = CLUSTER, region: str = REGION, version: str = "1.31") -> dict[str, Any]:
    eks = boto3.client("eks", region_name=region)
    return eks.create_cluster(name=name, version=version, roleArn="arn:aws:iam::123456789012:role/eks-cluster",
                              resourcesVpcConfig={"subnetIds": ["subnet-1", "subnet-2"]})["cluster"]


def create_nodegroup(name: str, types: list[str], cluster: str = CLUSTER, **kw: Any) -> None:
    boto3.client("eks", region_name=REGION).create_nodegroup(
        clusterName=cluster, nodegroupName=name, instanceTypes=types, scalingConfig=dict(SCALING),
        subnets=["subnet-1"], nodeRole="arn:aws:iam::123456789012:role/eks-node", **kw)


@pytest.fixture
def fleet(aws: None) -> None:
    create_cluster()
    create_nodegroup("gpu-p5", ["p5.48xlarge"], amiType="AL2_x86_64_GPU", releaseVersion="1.31.0-20261101",
                     labels={"nvidia.com/mig.config": "all-balanced", "team": "ml"},
                     taints=[{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}])
    create_nodegroup("gpu-p4d", ["p4d.24xlarge"], amiType="AL2_x86_64_GPU", releaseVersion="1.31.0-20261015",
                     labels={"nvidia.com/mig.config": "all-disabled"})
    create_nodegroup("system", ["m5.large"], releaseVersion="1.31.0-20261101")


def api() -> EksApi:
    return EksApi(AwsIdentity(REGION))


def node(name: str, **labels: str) -> GpuNode:
    return GpuNode(name, {"nvidia.com/gpu.present": "true", **labels}, {}, {})


def test_node_groups_map_to_catalog_gpus(fleet: None) -> None:
    d = api().discover(CLUSTER)
    groups = {g.name: g for g in d.nodegroups}
    assert set(groups) == {"gpu-p5", "gpu-p4d", "system"}
    p5 = groups["gpu-p5"]
    assert p5.instance_types == ("p5.48xlarge",)
    assert p5.labels == {"nvidia.com/mig.config": "all-balanced", "team": "ml"}
    assert p5.taints == (Taint("nvidia.com/gpu", "true", "NoSchedule"),)
    assert (p5.ami_type, p5.release_version, p5.desired_size) == ("AL2_x86_64_GPU", "1.31.0-20261101", 2)
    h100, a100 = d.gpus["p5.48xlarge"], d.gpus["p4d.24xlarge"]
    assert h100 is not None and (h100.catalog_gpu, h100.count, h100.name, h100.memory_mib) == ("H100-80GB", 8,
                                                                                              "H100", 81920)
    assert a100 is not None and (a100.catalog_gpu, a100.count, a100.memory_mib) == ("A100-40GB", 8, 40960)
    assert h100.mig_capable and a100.mig_capable
    assert d.gpus["m5.large"] is None


def test_nodes_are_matched_to_their_node_group_by_label(fleet: None) -> None:
    d = api().discover(CLUSTER)
    nodes = [node("ip-10-0-1-1", **{"eks.amazonaws.com/nodegroup": "gpu-p5",
                                    "node.kubernetes.io/instance-type": "p5.48xlarge"}),
             node("ip-10-0-1-2", **{"eks.amazonaws.com/nodegroup": "gpu-p4d"}),
             node("ip-10-0-1-3", **{"karpenter.sh/nodepool": "gpu-spot"}),
             node("ip-10-0-1-4")]
    assert d.match(nodes) == {"ip-10-0-1-1": "gpu-p5", "ip-10-0-1-2": "gpu-p4d", "ip-10-0-1-3": "karpenter:gpu-spot",
                              "ip-10-0-1-4": "unmanaged"}
    gpu = d.node_gpus(nodes[1])  # no instance-type label: its node group's only type
    assert gpu is not None and gpu.catalog_gpu == "A100-40GB"
    assert d.node_gpus(nodes[3]) is None


def test_target_facts(fleet: None) -> None:
    nodes = [node("n1", **{"eks.amazonaws.com/nodegroup": "gpu-p5"}),
             node("n2", **{"eks.amazonaws.com/nodegroup": "gpu-p5"})]
    facts = api().discover(CLUSTER).facts(nodes)
    assert facts["eks_version"] == "1.31"
    assert facts["platform_version"].startswith("eks.")
    assert facts["gpu_models"] == ["A100-40GB", "H100-80GB"]
    assert facts["ami_release_versions"] == ["1.31.0-20261015", "1.31.0-20261101"]
    p5 = next(g for g in facts["nodegroups"] if g["name"] == "gpu-p5")
    assert p5["nodes"] == ["n1", "n2"]
    assert p5["gpus"] == [{"instance_type": "p5.48xlarge", "ec2_gpu": "H100", "manufacturer": "NVIDIA", "count": 8,
                           "memory_mib": 81920, "catalog_gpu": "H100-80GB", "mig_capable": True, "partition": 1.0}]
    assert p5["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]
    assert facts["nodes"] == {"n1": "gpu-p5", "n2": "gpu-p5"}
    assert facts["instance_types"]["m5.large"] is None


def test_fractional_gpu_types_are_one_partial_gpu_without_mig(aws: None) -> None:
    """g6f/gr6f: EC2 says Count 0, LogicalGpuCount 1 and a GpuPartitionSize below 1 (moto carries the real data)."""
    fractional = [t for t, g in api().gpus(["g6f.large", "g6f.xlarge", "g6f.2xlarge", "g6.xlarge"]).items()
                  if g is not None and g.partition < 1.0]
    assert fractional, "moto should know g6f types"
    for name in fractional:
        gpu = api().gpus([name])[name]
        assert gpu.count == 1 and gpu.catalog_gpu == "L4-24GB" and gpu.mig_capable is False
    assert api().gpus(["g6.xlarge"])["g6.xlarge"].partition == 1.0


def test_unknown_instance_types_do_not_hide_the_known_ones(fleet: None) -> None:
    gpus = api().gpus(["p5.48xlarge", "zz9.bogus", "p4de.24xlarge"])
    assert gpus["zz9.bogus"] is None
    assert gpus["p5.48xlarge"] is not None and gpus["p5.48xlarge"].catalog_gpu == "H100-80GB"
    assert gpus["p4de.24xlarge"] is not None and gpus["p4de.24xlarge"].catalog_gpu == "A100-80GB"


def test_describe_cluster_endpoint_ca_and_versions(fleet: None) -> None:
    info = api().describe_cluster(CLUSTER)
    assert info.endpoint.startswith("https://") and info.region == REGION and info.status == "ACTIVE"
    assert info.version == "1.31" and info.platform_version
    with pytest.raises(AwsError, match="not a base64 PEM certificate"):
        info.ca_pem()  # moto's CA is random text


def test_ca_file_is_private(tmp_path: Path) -> None:
    pem = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    path = write_ca(pem, tmp_path)
    assert path.read_bytes() == pem
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_cluster_not_found_lists_the_clusters_of_the_region(aws: None) -> None:
    create_cluster("alpha")
    create_cluster("beta")
    create_cluster("elsewhere", region="eu-west-1")
    with pytest.raises(ClusterNotFound) as info:
        api().describe_cluster("prod-gpu")
    assert info.value.existing == ["alpha", "beta"]
    assert "EKS cluster 'prod-gpu' not found in region us-west-2 (clusters there: alpha, beta)" in str(info.value)


def test_cluster_not_found_without_list_permission_says_so(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    eks = boto3.Session(aws_access_key_id="AKIASTUB", aws_secret_access_key="x" * 40,
                        region_name=REGION).client("eks")
    stub = Stubber(eks)
    stub.add_client_error("describe_cluster", service_error_code="ResourceNotFoundException", http_status_code=404,
                          service_message="No cluster found for name: prod-gpu.")
    stub.add_client_error("list_clusters", service_error_code="AccessDeniedException", http_status_code=403,
                          service_message="not authorized to perform: eks:ListClusters")
    a = api()
    monkeypatch.setattr(a, "_client", lambda service: eks)
    with stub, pytest.raises(ClusterNotFound) as info:
        a.describe_cluster("prod-gpu")
    assert info.value.existing is None
    assert "cannot list them: eks:ListClusters is not allowed" in str(info.value)


@pytest.mark.parametrize(("operation", "call", "permission"), [
    ("describe_cluster", lambda a: a.describe_cluster(CLUSTER), "eks:DescribeCluster"),
    ("list_nodegroups", lambda a: a.nodegroups(CLUSTER), "eks:ListNodegroups"),
])
def test_access_denied_names_the_permission(aws: None, monkeypatch: pytest.MonkeyPatch, operation: str, call: Any,
                                            permission: str) -> None:
    eks = boto3.Session(aws_access_key_id="AKIASTUB", aws_secret_access_key="x" * 40,
                        region_name=REGION).client("eks")
    stub = Stubber(eks)
    stub.add_client_error(operation, service_error_code="AccessDeniedException", http_status_code=403,
                          service_message=f"User: arn:aws:iam::123456789012:user/dev is not authorized to perform: "
                                          f"{permission}")
    a = api()
    monkeypatch.setattr(a, "_client", lambda service: eks)
    with stub, pytest.raises(AccessDenied) as info:
        call(a)
    assert info.value.permission == permission
    assert f"needs the IAM permission {permission}" in str(info.value)
    assert "docs/eks.md" in str(info.value)


def test_describe_instance_types_denied(fleet: None, monkeypatch: pytest.MonkeyPatch) -> None:
    ec2 = boto3.Session(aws_access_key_id="AKIASTUB", aws_secret_access_key="x" * 40,
                        region_name=REGION).client("ec2")
    stub = Stubber(ec2)
    stub.add_client_error("describe_instance_types", service_error_code="UnauthorizedOperation",
                          http_status_code=403, service_message="You are not authorized to perform this operation.")
    a = api()
    real = a._client
    monkeypatch.setattr(a, "_client", lambda service: ec2 if service == "ec2" else real(service))
    with stub, pytest.raises(AccessDenied, match="ec2:DescribeInstanceTypes"):
        a.discover(CLUSTER)


def test_eks_cluster_describe_adds_the_aws_facts(fleet: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """EksCluster.describe() on top of KubeCluster's: versions, node groups, per-node node group and GPU."""
    from mig_conformance.cluster.eks.backend import EksCluster
    from mig_conformance.cluster.kube import KubeCluster

    nodes = [node("ip-10-0-1-1", **{"eks.amazonaws.com/nodegroup": "gpu-p5",
                                    "node.kubernetes.io/instance-type": "p5.48xlarge"})]
    monkeypatch.setattr(KubeCluster, "describe", lambda self: {
        "backend": "eks", "kubernetes_version": "v1.31.4-eks-1234",
        "nodes": [{"name": "ip-10-0-1-1", "instance_type": "p5.48xlarge", "driver": "570.86.15"}]})
    monkeypatch.setattr(EksCluster, "list_gpu_nodes", lambda self, selector=None: nodes)
    a = api()
    c = EksCluster("eks-prod", api_client=None, api=a, info=a.describe_cluster(CLUSTER), identity=a.identity)
    info = c.describe()
    assert info["platform"] == "eks"
    assert info["versions"]["kubernetes"] == "v1.31.4-eks-1234" and info["versions"]["eks"] == "1.31"
    assert info["versions"]["platform"].startswith("eks.")
    assert info["versions"]["ami_release"] == ["1.31.0-20261015", "1.31.0-20261101"]
    assert info["gpu_models"] == ["A100-40GB", "H100-80GB"]
    assert info["nodes"][0] | {"nodegroup": "gpu-p5", "catalog_gpu": "H100-80GB", "gpu_count": 8} == info["nodes"][0]
    assert "cluster=" in repr(c) and "token" not in repr(c).lower()


def test_open_cluster_with_an_unknown_eks_cluster(aws: None) -> None:
    from mig_conformance.cluster.registry import open_cluster

    create_cluster("alpha")
    with pytest.raises(ClusterNotFound, match=r"'nope' not found in region us-west-2 \(clusters there: alpha\)"):
        open_cluster("eks:nope@us-west-2")


def test_open_cluster_rejects_unknown_options(aws: None) -> None:
    from mig_conformance.cluster.base import ClusterError
    from mig_conformance.cluster.registry import open_cluster

    with pytest.raises(ClusterError, match=r"eks backend: unknown option.*context"):
        open_cluster("eks:prod@us-west-2", context="x")


def test_moto_ca_is_replaced_by_a_real_pem_when_patched(fleet: None) -> None:
    """The helper other EKS tests use: patch moto's cluster endpoint and CA."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.eks.models import eks_backends

    pem = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    c = eks_backends[DEFAULT_ACCOUNT_ID][REGION].clusters[CLUSTER]
    c.endpoint, c.certificate_authority = "https://127.0.0.1:6443", {"data": base64.b64encode(pem).decode()}
    info = api().describe_cluster(CLUSTER)
    assert (info.endpoint, info.ca_pem()) == ("https://127.0.0.1:6443", pem)
