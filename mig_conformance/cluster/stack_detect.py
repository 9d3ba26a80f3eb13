"""Detect a real cluster's GPU stack (read only): the versions `StackProfile` records, each with where it was seen.

Sources, most direct first (what runs beats what is configured):

* the GPU Operator's DaemonSets in its namespace: the image tags of `nvidia-device-plugin-daemonset`,
  `gpu-feature-discovery` and `nvidia-mig-manager` (NVIDIA/gpu-operator assets/state-*/0500_daemonset.yaml names);
* the ClusterPolicy (nvidia.com/v1 clusterpolicies): `spec.devicePlugin/gfd/migManager/driver.version`, and the
  operator's release (its Helm chart label, else the operator Deployment's image: `KubeCluster._operator_version`);
* GPU nodes: `nvidia.com/cuda.driver-version.full` (GFD), `status.nodeInfo.kubeletVersion`, `osImage`
  (Bottlerocket -> gpu_allocation=bottlerocket: its own MIG manager, docs/k8s-semantics.md);
* ResourceSlices of driver `gpu.nvidia.com` (resource.k8s.io/v1) or a GPUCluster (nvidia.com/v1alpha1) ->
  gpu_allocation=dra.

Every read is best effort: a missing permission or API (404) becomes a note, never an error, and nothing is written.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from mig_conformance.cluster.kube import KubeCluster
from mig_conformance.k8s import stack as S
from mig_conformance.k8s import versions as V
from mig_conformance.k8s.labels import GPU_PRESENT

log = logging.getLogger("mig_conformance.cluster")

#: DaemonSet name -> the component its image tag gives (GFD ships with the device plugin's version since v0.15.0).
DAEMONSETS = {"nvidia-device-plugin-daemonset": "device_plugin", "nvidia-mig-manager": "mig_manager",
              "gpu-feature-discovery": "device_plugin"}
#: ClusterPolicy spec section -> component.
POLICY_SECTIONS = {"devicePlugin": "device_plugin", "gfd": "device_plugin", "migManager": "mig_manager",
                   "driver": "driver"}
DRIVER_LABEL = "nvidia.com/cuda.driver-version.full"
DRA_DRIVER = "gpu.nvidia.com"
RESOURCE_SLICES = ("resource.k8s.io", "v1", "resourceslices")
GPU_CLUSTERS = ("nvidia.com", "v1alpha1", "gpuclusters")
CLUSTER_POLICIES = ("nvidia.com", "v1", "clusterpolicies")


@dataclass
class Detected:
    """What detection found: {component: Sourced}, how GPUs are allocated (None: the device plugin, by default),
    and notes on what could not be read or disagreed."""

    components: dict[str, S.Sourced] = field(default_factory=dict)
    allocation: S.Sourced | None = None
    notes: list[str] = field(default_factory=list)

    def found(self, component: str, raw: str | None, source: str) -> None:
        """Record `raw` (an image tag or version) for `component` unless a more direct source already did."""
        if not raw or component in self.components:
            return
        try:
            self.components[component] = S.Sourced(V.canonical(component, raw), f"detected from {source}")
        except ValueError:
            self.notes.append(f"{V.SPELLINGS[component]}: '{raw}' in {source} is not a version")


def _tag(image: str) -> str | None:
    """`nvcr.io/nvidia/k8s-device-plugin:v0.17.4-ubi9` -> `v0.17.4-ubi9` (None without a tag or with a digest)."""
    name = image.rsplit("@", 1)[0] if "@" in image else image
    last = name.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last and "@" not in image else None


def _read(what: str, out: Detected, fn: Callable[..., Any], *args: Any) -> Any:
    """fn(*args) on the raw client; None when it cannot be read: a missing API or CRD (404) says nothing, a missing
    permission or another error is a note (detection is optional: deploy/rbac.yaml grants only what suites need)."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        return fn(*args)
    except ApiException as exc:
        if exc.status == 404:
            return None
        why = "not permitted for this identity" if exc.status in (401, 403) else f"API error {exc.status}"
        out.notes.append(f"{what}: not read ({why}; optional, docs/versions.md#the-stack-profile)")
    except (HTTPError, OSError) as exc:
        out.notes.append(f"{what}: not read ({type(exc).__name__})")
    return None


def _daemonsets(cluster: KubeCluster, out: Detected) -> None:
    apps = cluster._client.AppsV1Api(cluster.api_client)
    found = _read(f"DaemonSets in {cluster.operator_namespace}", out, apps.list_namespaced_daemon_set,
                  cluster.operator_namespace)
    for ds in sorted(found.items if found is not None else [], key=lambda d: d.metadata.name):
        component = DAEMONSETS.get(ds.metadata.name)
        if component is None:
            continue
        for container in ds.spec.template.spec.containers or []:
            tag = _tag(container.image or "")
            if tag:
                out.found(component, tag, f"DaemonSet {cluster.operator_namespace}/{ds.metadata.name} image "
                                          f"{container.image}")
                break


def _policy(cluster: KubeCluster, out: Detected) -> None:
    listed = _read("ClusterPolicy", out, cluster.custom.list_cluster_custom_object, *CLUSTER_POLICIES)
    items = (listed or {}).get("items") or []
    if not items:
        return
    policy: Mapping[str, Any] = items[0]
    name = (policy.get("metadata") or {}).get("name", "?")
    spec = policy.get("spec") or {}
    for section, component in POLICY_SECTIONS.items():
        out.found(component, (spec.get(section) or {}).get("version"),
                  f"ClusterPolicy {name} spec.{section}.version")
    operator = cluster._operator_version(policy)
    out.found("gpu_operator", operator, f"ClusterPolicy {name} (Helm chart label or operator image)")


def _most_common(values: Mapping[str, str], what: str, out: Detected) -> tuple[str, str] | None:
    """The value most nodes show, with the node that shows it first; a note when nodes disagree."""
    if not values:
        return None
    counts = Counter(values.values())
    value = counts.most_common(1)[0][0]
    if len(counts) > 1:
        seen = ", ".join(f"{v} on {c} node(s)" for v, c in sorted(counts.items()))
        out.notes.append(f"{what} differs between GPU nodes ({seen}); the profile records {value}")
    return value, min(n for n, v in values.items() if v == value)


def _nodes(cluster: KubeCluster, out: Detected) -> None:
    listed = _read("nodes", out, cluster.core.list_node)
    nodes = listed.items if listed is not None else []
    gpu = [n for n in nodes if (n.metadata.labels or {}).get(GPU_PRESENT) == "true"
           or any(k.startswith("nvidia.com/") for k in (n.status.capacity or {}))]
    drivers = {n.metadata.name: (n.metadata.labels or {})[DRIVER_LABEL] for n in gpu
               if (n.metadata.labels or {}).get(DRIVER_LABEL)}
    if (found := _most_common(drivers, "nvidia.com/cuda.driver-version.full", out)) is not None:
        out.found("driver", found[0], f"node {found[1]} label {DRIVER_LABEL}")
    infos = {n.metadata.name: n.status.node_info for n in gpu if n.status and n.status.node_info}
    kubelets = {name: i.kubelet_version for name, i in infos.items() if i.kubelet_version}
    if (found := _most_common(kubelets, "kubeletVersion", out)) is not None:
        out.found("kubernetes", found[0], f"node {found[1]} status.nodeInfo.kubeletVersion")
    bottlerocket = sorted(name for name, i in infos.items() if "bottlerocket" in (i.os_image or "").lower())
    if bottlerocket:
        out.allocation = S.Sourced(S.BOTTLEROCKET, f"detected from node {bottlerocket[0]} status.nodeInfo.osImage "
                                                   f"{infos[bottlerocket[0]].os_image!r}")


def _dra(cluster: KubeCluster, out: Detected) -> None:
    def listed(resource: tuple[str, str, str]) -> list[dict[str, Any]]:
        found = _read(f"{resource[2]}.{resource[0]}", out, cluster.custom.list_cluster_custom_object, *resource)
        items: list[dict[str, Any]] = (found or {}).get("items") or []
        return items

    slices = [s for s in listed(RESOURCE_SLICES) if (s.get("spec") or {}).get("driver") == DRA_DRIVER]
    if slices:
        name = min((s.get("metadata") or {}).get("name", "?") for s in slices)
        out.allocation = S.Sourced(S.DRA, f"detected from ResourceSlice {name} (driver {DRA_DRIVER}, "
                                          f"{len(slices)} slice(s))")
        return
    clusters = listed(GPU_CLUSTERS)
    if clusters:
        name = (clusters[0].get("metadata") or {}).get("name", "?")
        out.allocation = S.Sourced(S.DRA, f"detected from GPUCluster {name} (nvidia.com/v1alpha1)")


def detect(cluster: KubeCluster) -> Detected:
    """Everything detection finds on `cluster` (module doc); reads only."""
    out = Detected()
    _daemonsets(cluster, out)  # what runs first, then the nodes' own reports, then what is configured
    _nodes(cluster, out)
    _policy(cluster, out)
    _dra(cluster, out)
    return out


def detect_profile(cluster: KubeCluster,
                   layers: Sequence[tuple[Mapping[str, str], str]] | None = None) -> S.StackProfile:
    """The cluster's profile: chosen versions (`layers`, e.g. `--mig-stack`) over what was detected; unknown
    components stay unknown (never a default) and what could not be read is a note."""
    found = detect(cluster)
    profile = S.resolve(layers or [], found.components, found.allocation, simulated=False)
    return replace(profile, notes=(*profile.notes, *found.notes)) if found.notes else profile
