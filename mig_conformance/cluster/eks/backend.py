"""The `eks` backend: an EKS cluster reached with nothing but AWS credentials (docs/eks.md).

`describe_cluster` gives the endpoint and CA (written to a 0600 temporary file, deleted on close); the API client
sends a bearer token made in-process (`aws.token`) and renewed before it expires. The user's kubeconfig is never
read or written (unless `kubeconfig_context` names a context to use instead of tokens; then it is only read).
`describe()` adds the AWS facts: EKS and platform versions, node groups with AMI/release versions, GPU models.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mig_conformance.cluster.base import ClusterError
from mig_conformance.cluster.journal import Journal
from mig_conformance.cluster.kube import KubeCluster
from mig_conformance.cluster.targets import check_backend_options

log = logging.getLogger("mig_conformance.cluster")

RBAC_HINT = "bind it to ClusterRole mig-conformance-read (and -reconfigure) from deploy/rbac.yaml; see docs/eks.md"


class EksCluster(KubeCluster):
    """A KubeCluster over EKS with in-process IAM tokens and AWS discovery."""

    kind = "eks"

    def __init__(self, name: str, api_client: Any, *, api: Any, info: Any, identity: Any, tokens: Any = None,
                 ca_file: Path | None = None, allow_changes: bool = False, journal: Journal | None = None,
                 operator_namespace: str | None = None, config_map: str | None = None,
                 pod_image: str | None = None, facts: Mapping[str, Any] | None = None) -> None:
        super().__init__(name, api_client, allow_changes=allow_changes, journal=journal,
                         operator_namespace=operator_namespace, config_map=config_map, pod_image=pod_image,
                         facts=facts)
        self.api = api
        self.info = info
        self.identity = identity
        self.tokens = tokens
        self.ca_file = ca_file

    def __repr__(self) -> str:
        return f"EksCluster(name={self.name!r}, cluster={self.info.name!r}, region={self.info.region!r})"

    @classmethod
    def open(cls, name: str, cluster: str, region: str, *, profile: str | None = None, role_arn: str | None = None,
             allow_changes: bool = False, journal: Journal | None = None, config_map: str | None = None,
             operator_namespace: str | None = None, pod_image: str | None = None,
             kubeconfig_context: str | None = None, kubeconfig: str | None = None, run_id: str | None = None,
             clock: Any = time.time) -> EksCluster:
        """Check the credentials, describe the cluster, build a client that authenticates with fresh tokens."""
        from mig_conformance.cluster.eks.discovery import EksApi, write_ca
        from mig_conformance.cluster.eks.token import AwsIdentity, TokenSource

        identity = AwsIdentity(region, profile, role_arn, run_id or (journal.run_id if journal else None), clock)
        arn = identity.caller_arn()  # expired or missing credentials fail here, clearly
        api = EksApi(identity)
        info = api.describe_cluster(cluster)
        facts = {"platform": "eks", "eks_cluster": cluster, "region": region, "server": info.endpoint,
                 "identity": arn, **({"profile": profile} if profile else {}),
                 **({"role_arn": role_arn} if role_arn else {})}
        if kubeconfig_context:
            from mig_conformance.cluster.kubeconfig import new_api_client

            api_client = new_api_client(kubeconfig_context, kubeconfig)
            facts["kubeconfig_context"] = kubeconfig_context
            if kubeconfig:
                facts["kubeconfig"] = kubeconfig
            return cls(name, api_client, api=api, info=info, identity=identity, allow_changes=allow_changes,
                       journal=journal, operator_namespace=operator_namespace, config_map=config_map,
                       pod_image=pod_image, facts=facts)
        tokens = TokenSource(cluster, identity, clock)
        ca_file = write_ca(info.ca_pem())
        try:
            api_client = _api_client(info.endpoint, ca_file, tokens)
        except BaseException:
            ca_file.unlink(missing_ok=True)
            raise
        return cls(name, api_client, api=api, info=info, identity=identity, tokens=tokens, ca_file=ca_file,
                   allow_changes=allow_changes, journal=journal, operator_namespace=operator_namespace,
                   config_map=config_map, pod_image=pod_image, facts=facts)

    # ---- facts ------------------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["platform"] = "eks"
        try:
            nodes = self.list_gpu_nodes()
        except ClusterError:
            nodes = []
        from mig_conformance.cluster.eks.discovery import instance_types_of

        try:
            discovery = self.api.discover(self.info.name, instance_types_of(nodes))
        except ClusterError as exc:
            info["eks_error"] = str(exc)
            return info
        aws = discovery.facts(nodes)
        info["eks"] = aws
        info["versions"] = {"kubernetes": info.get("kubernetes_version"), **info.get("versions", {}),
                            "eks": aws["eks_version"], "platform": aws["platform_version"],
                            "ami_release": aws["ami_release_versions"]}
        info["gpu_models"] = aws["gpu_models"]
        for entry in info.get("nodes", []):
            node = next((n for n in nodes if n.name == entry["name"]), None)
            gpu = discovery.node_gpus(node) if node else None
            entry["nodegroup"] = aws["nodes"].get(entry["name"])
            entry["catalog_gpu"] = gpu.catalog_gpu if gpu else None
            entry["gpu_count"] = gpu.count if gpu else None
        return info

    # ---- errors -----------------------------------------------------------------------------------------
    def _api_error(self, exc: Any, call: str) -> ClusterError:
        status = getattr(exc, "status", 0)
        who = self.identity.describe()
        if status == 401:
            return ClusterError(f"{self.name}: the EKS API server did not accept the IAM identity {who}: it needs "
                                f"an EKS access entry (or aws-auth mapping) in cluster {self.info.name}, or its "
                                "credentials expired; see docs/eks.md")
        if status == 403:
            from mig_conformance.cluster.kube import PERMISSIONS

            need = PERMISSIONS.get(call, call)
            return ClusterError(f"{self.name}: access denied: the Kubernetes user of {who} needs permission to "
                                f"{need}: {RBAC_HINT}")
        return super()._api_error(exc, call)

    def close(self) -> None:
        super().close()
        if self.ca_file is not None:
            self.ca_file.unlink(missing_ok=True)


def _api_client(endpoint: str, ca_file: Path, tokens: Any) -> Any:
    """An ApiClient of its own Configuration (the default configuration and kubeconfig are untouched)."""
    from kubernetes import client

    config = client.Configuration()
    config.host = endpoint.rstrip("/")
    config.ssl_ca_cert = str(ca_file)
    config.verify_ssl = True
    tokens.install(config)
    return client.ApiClient(config)


def open_eks(name: str, arg: str, allow_changes: bool, options: Mapping[str, Any]) -> EksCluster:
    """Registry entry point: `eks:CLUSTER@REGION` or a clusters-file entry (cluster, region, profile, role_arn...)."""
    check_backend_options("eks", options)
    opts = dict(options)
    from_arg, _, region_arg = arg.partition("@")
    cluster = opts.pop("cluster", None) or from_arg
    region = opts.pop("region", None) or region_arg
    if not cluster or not region:
        raise ClusterError(f"target '{name}': the eks backend needs a cluster and a region (eks:CLUSTER@REGION)")
    return EksCluster.open(name, cluster, region, allow_changes=allow_changes, **opts)
