"""What AWS says about an EKS cluster: endpoint and CA (`describe_cluster`), managed node groups, and the GPUs of
their instance types (EC2 `describe_instance_types` mapped to the kit's catalog); nodes are matched to their node
group by the `eks.amazonaws.com/nodegroup` label. Calls need eks:DescribeCluster, eks:ListNodegroups,
eks:DescribeNodegroup and ec2:DescribeInstanceTypes (eks:ListClusters only to list clusters in a not-found error).
"""

from __future__ import annotations

import base64
import binascii
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mig_conformance.cluster.eks.credentials import AccessDenied, AwsError, ClusterNotFound, translate
from mig_conformance.cluster.eks.token import AwsIdentity
from mig_conformance.gpus.catalog import Catalog, load_catalog
from mig_conformance.k8s import labels as L
from mig_conformance.k8s.model import GpuNode, Taint

NODEGROUP_LABEL = "eks.amazonaws.com/nodegroup"
KARPENTER_LABEL = "karpenter.sh/nodepool"
EC2_BATCH = 100  # DescribeInstanceTypes accepts at most 100 names per call
PEM_BEGIN = b"-----BEGIN CERTIFICATE-----"
TAINT_EFFECTS = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute", "PREFER_NO_SCHEDULE": "PreferNoSchedule"}


@dataclass(frozen=True)
class ClusterInfo:
    """describe_cluster: where the API server is, its CA (base64 of PEM, as EKS returns it), versions."""

    name: str
    region: str
    arn: str
    endpoint: str
    ca_data: str = field(repr=False)
    version: str
    platform_version: str
    status: str

    def ca_pem(self) -> bytes:
        """The CA certificate (PEM); AwsError when EKS returned something else."""
        try:
            pem = base64.b64decode(self.ca_data, validate=True)
        except (binascii.Error, ValueError):
            pem = b""
        if PEM_BEGIN not in pem:
            raise AwsError(f"EKS cluster {self.name}: certificateAuthority.data is not a base64 PEM certificate")
        return pem


@dataclass(frozen=True)
class Ec2Gpu:
    """The GPUs of one EC2 instance type as EC2 describes them, and the catalog model they map to (None: unknown)."""

    instance_type: str
    name: str
    manufacturer: str
    count: int
    memory_mib: int | None
    catalog_gpu: str | None
    mig_capable: bool | None
    #: the share of one GPU each logical GPU is (1.0: whole GPUs; g6f/gr6f: 0.125 to 0.5 of an L4, no MIG)
    partition: float = 1.0

    def as_dict(self) -> dict[str, Any]:
        return {"instance_type": self.instance_type, "ec2_gpu": self.name, "manufacturer": self.manufacturer,
                "count": self.count, "memory_mib": self.memory_mib, "catalog_gpu": self.catalog_gpu,
                "mig_capable": self.mig_capable, "partition": self.partition}


@dataclass(frozen=True)
class NodeGroup:
    """describe_nodegroup, the parts the kit reports and matches on."""

    name: str
    instance_types: tuple[str, ...]
    labels: Mapping[str, str]
    taints: tuple[Taint, ...]
    ami_type: str | None
    release_version: str | None
    version: str | None
    capacity_type: str | None
    status: str | None
    desired_size: int | None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "instance_types": list(self.instance_types), "ami_type": self.ami_type,
                "release_version": self.release_version, "kubernetes_version": self.version,
                "capacity_type": self.capacity_type, "status": self.status, "desired_size": self.desired_size,
                "labels": dict(self.labels),
                "taints": [{"key": t.key, "value": t.value, "effect": t.effect} for t in self.taints]}


def _nodegroup(raw: Mapping[str, Any]) -> NodeGroup:
    taints = tuple(Taint(t.get("key", ""), t.get("value", "") or "", TAINT_EFFECTS.get(t.get("effect", ""),
                                                                                      t.get("effect", "")))
                   for t in raw.get("taints") or [])
    return NodeGroup(name=raw["nodegroupName"], instance_types=tuple(raw.get("instanceTypes") or ()),
                     labels=dict(raw.get("labels") or {}), taints=taints, ami_type=raw.get("amiType"),
                     release_version=raw.get("releaseVersion"), version=raw.get("version"),
                     capacity_type=raw.get("capacityType"), status=raw.get("status"),
                     desired_size=(raw.get("scalingConfig") or {}).get("desiredSize"))


def ec2_gpu(instance_type: str, info: Mapping[str, Any], catalog: Catalog) -> Ec2Gpu | None:
    """The GPU entry of one DescribeInstanceTypes item (None when the type has no GPU)."""
    gpus = (info.get("GpuInfo") or {}).get("Gpus") or []
    if not gpus:
        return None
    g = gpus[0]
    name = str(g.get("Name", ""))
    memory = (g.get("MemoryInfo") or {}).get("SizeInMiB")
    model = catalog.by_ec2(name, memory) or catalog.by_ec2(name)
    # Fractional types report Count 0 and LogicalGpuCount 1 with a GpuPartitionSize below 1: the node sees one
    # (partial) GPU, which cannot be MIG-partitioned.
    count = sum(int(x.get("Count") or 0) or int(x.get("LogicalGpuCount") or 0) for x in gpus)
    partition = float(g.get("GpuPartitionSize") or 1.0)
    mig_capable = (model.mig_capable and partition >= 1.0) if model else None
    return Ec2Gpu(instance_type, name, str(g.get("Manufacturer", "")), count, memory,
                  model.key if model else None, mig_capable, partition)


def write_ca(pem: bytes, folder: str | Path | None = None) -> Path:
    """Write the CA to a new file readable only by the user (0600); the caller deletes it."""
    fd, path = tempfile.mkstemp(prefix="eks-ca-", suffix=".crt", dir=folder)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, pem)
    finally:
        os.close(fd)
    return Path(path)


class EksApi:
    """EKS and EC2 calls for one region and identity, with actionable errors."""

    def __init__(self, identity: AwsIdentity, catalog: Catalog | None = None) -> None:
        self.identity = identity
        self.region = identity.region
        self.catalog = catalog or load_catalog()

    def _fail(self, exc: BaseException, resource: str | None = None) -> AwsError:
        return translate(exc, profile=self.identity.profile, principal=self.identity.describe(), resource=resource)

    def _client(self, service: str) -> Any:
        return self.identity.client(service)

    def describe_cluster(self, name: str) -> ClusterInfo:
        """Endpoint, CA and versions; ClusterNotFound lists the clusters of the region (when allowed)."""
        from botocore.exceptions import ClientError

        try:
            raw = self._client("eks").describe_cluster(name=name)["cluster"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                raise self._not_found(name) from None
            raise self._fail(exc, f"cluster {name} in {self.region}") from None
        except AwsError:
            raise
        except Exception as exc:
            raise self._fail(exc) from None
        if not raw.get("endpoint"):
            raise AwsError(f"EKS cluster {name} in {self.region} has no API endpoint yet (status "
                           f"{raw.get('status', '?')}); wait until it is ACTIVE")
        return ClusterInfo(name=raw["name"], region=self.region, arn=raw.get("arn", ""), endpoint=raw["endpoint"],
                           ca_data=(raw.get("certificateAuthority") or {}).get("data", ""),
                           version=raw.get("version", ""), platform_version=raw.get("platformVersion", ""),
                           status=raw.get("status", ""))

    def list_clusters(self) -> list[str]:
        try:
            pages = self._client("eks").get_paginator("list_clusters").paginate()
            return sorted(n for page in pages for n in page.get("clusters", []))
        except Exception as exc:
            raise self._fail(exc, f"region {self.region}") from None

    def _not_found(self, name: str) -> ClusterNotFound:
        existing: list[str] | None
        try:
            existing = self.list_clusters()
            there = ", ".join(existing) or "none"
            found = f"clusters there: {there}"
        except AccessDenied as exc:
            existing, found = None, f"cannot list them: {exc.permission} is not allowed"
        except AwsError as exc:
            existing, found = None, f"cannot list them: {exc}"
        return ClusterNotFound(f"EKS cluster '{name}' not found in region {self.region} ({found}); check the "
                               "name and the region of the target", existing)

    def nodegroups(self, cluster: str) -> list[NodeGroup]:
        """Every managed node group, described."""
        eks = self._client("eks")
        try:
            names = [n for page in eks.get_paginator("list_nodegroups").paginate(clusterName=cluster)
                     for n in page.get("nodegroups", [])]
            return [_nodegroup(eks.describe_nodegroup(clusterName=cluster, nodegroupName=n)["nodegroup"])
                    for n in sorted(names)]
        except Exception as exc:
            raise self._fail(exc, f"cluster {cluster}") from None

    def gpus(self, instance_types: Iterable[str]) -> dict[str, Ec2Gpu | None]:
        """GPU facts per instance type (None: no GPU, or EC2 does not know the type)."""
        wanted = sorted(set(instance_types))
        out: dict[str, Ec2Gpu | None] = {}
        for i in range(0, len(wanted), EC2_BATCH):
            out.update(self._gpus_batch(wanted[i:i + EC2_BATCH]))
        return out

    def _gpus_batch(self, names: Sequence[str]) -> dict[str, Ec2Gpu | None]:
        from botocore.exceptions import ClientError

        ec2 = self._client("ec2")
        try:
            items = ec2.describe_instance_types(InstanceTypes=list(names))["InstanceTypes"]
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("InvalidInstanceType", "InvalidParameterValue") and len(names) > 1:
                out: dict[str, Ec2Gpu | None] = {}
                for n in names:  # one unknown name fails the whole call: ask one by one
                    out.update(self._gpus_batch([n]))
                return out
            if code in ("InvalidInstanceType", "InvalidParameterValue"):
                return {names[0]: None}
            raise self._fail(exc) from None
        except Exception as exc:
            raise self._fail(exc) from None
        found: dict[str, Ec2Gpu | None] = {n: None for n in names}
        for item in items:
            found[item["InstanceType"]] = ec2_gpu(item["InstanceType"], item, self.catalog)
        return found

    def discover(self, cluster: str, extra_types: Iterable[str] = ()) -> Discovery:
        """The cluster, its node groups and the GPUs of their instance types (plus `extra_types`, e.g. the
        instance types of nodes that belong to no managed node group)."""
        info = self.describe_cluster(cluster)
        groups = self.nodegroups(cluster)
        types = {t for g in groups for t in g.instance_types} | set(extra_types)
        return Discovery(info, groups, self.gpus(types))


@dataclass
class Discovery:
    """A cluster's AWS side: describe_cluster, node groups, GPUs per instance type."""

    cluster: ClusterInfo
    nodegroups: list[NodeGroup]
    gpus: dict[str, Ec2Gpu | None]

    def nodegroup_of(self, node: GpuNode) -> NodeGroup | None:
        name = node.labels.get(NODEGROUP_LABEL)
        return next((g for g in self.nodegroups if g.name == name), None) if name else None

    def match(self, nodes: Iterable[GpuNode]) -> dict[str, str]:
        """Node name -> its managed node group, `karpenter:<nodepool>` or `unmanaged`."""
        out = {}
        for n in nodes:
            group = self.nodegroup_of(n)
            pool = n.labels.get(KARPENTER_LABEL)
            out[n.name] = group.name if group else f"karpenter:{pool}" if pool else "unmanaged"
        return out

    def node_gpus(self, node: GpuNode) -> Ec2Gpu | None:
        """GPU facts of the node's instance type (its label; else its node group's only instance type)."""
        itype = node.instance_type
        group = self.nodegroup_of(node)
        if not itype and group and len(group.instance_types) == 1:
            itype = group.instance_types[0]
        return self.gpus.get(itype) if itype else None

    def facts(self, nodes: Sequence[GpuNode] = ()) -> dict[str, Any]:
        """The AWS facts of TARGET.yaml (no credentials, no tokens)."""
        c = self.cluster
        matched = self.match(nodes)
        groups = []
        for g in self.nodegroups:
            gpus = [facts.as_dict() for t in g.instance_types if (facts := self.gpus.get(t))]
            groups.append({**g.as_dict(), "gpus": gpus,
                           "nodes": sorted(n for n, owner in matched.items() if owner == g.name)})
        models = sorted({f"{gpu.catalog_gpu or gpu.name}" for gpu in self.gpus.values() if gpu})
        return {"cluster": c.name, "region": c.region, "arn": c.arn, "endpoint": c.endpoint,
                "eks_version": c.version, "platform_version": c.platform_version, "status": c.status,
                "nodegroups": groups,
                "ami_release_versions": sorted({g.release_version for g in self.nodegroups if g.release_version}),
                "gpu_models": models,
                "instance_types": {t: (g.as_dict() if g else None) for t, g in sorted(self.gpus.items())},
                "nodes": dict(sorted(matched.items()))}


def instance_types_of(nodes: Iterable[GpuNode]) -> set[str]:
    return {n.labels[L.INSTANCE_TYPE] for n in nodes if n.labels.get(L.INSTANCE_TYPE)}
