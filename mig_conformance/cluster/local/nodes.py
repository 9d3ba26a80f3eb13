"""kwok-managed GPU nodes named and labelled like EKS managed-node-group nodes.

A spec is the sim backend's fleet spec (`p5.48xlarge*2,p4d.24xlarge`, or GPU lists such as `H100-80GBx2`). Nodes
are named `ip-10-0-<a>-<b>.us-west-2.compute.internal` (one /19 subnet per zone, as an EKS VPC has), carry the
instance type, zone, hostname and node-group labels, `nvidia.com/gpu.present=true`, optionally the
`nvidia.com/gpu` NoSchedule taint, and CPU/memory/pods capacity of the instance type. A node that is a GPU list
rather than an instance type gets the annotation `mig-conformance.io/gpus` (read by the simulated agents).
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from mig_conformance.cluster.base import ClusterError
from mig_conformance.cluster.local.kwok_stages import NODE_ANNOTATION
from mig_conformance.cluster.sim.fleet import BOTTLEROCKET, REGION, ZONES, NodeSpec, parse_fleet
from mig_conformance.cluster.sim.node import DEFAULT_PODS
from mig_conformance.k8s import bottlerocket as br
from mig_conformance.k8s import labels as L

GPUS_ANNOTATION = "mig-conformance.io/gpus"
NODEGROUP = "eks.amazonaws.com/nodegroup"
CAPACITY_TYPE = "eks.amazonaws.com/capacityType"
HOSTNAME = "kubernetes.io/hostname"
#: What a node that is only a GPU list (no instance type) gets.
DEFAULT_VCPUS, DEFAULT_MEMORY_MIB = 32, 256 * 1024
_PER_ZONE = 32 * 240  # hosts per /19 subnet that this naming hands out


@dataclass(frozen=True)
class LocalNode:
    """A node to register: its name, IP and the API object."""

    name: str
    ip: str
    spec: NodeSpec
    body: dict[str, Any]


def gpu_list(spec: NodeSpec) -> str:
    """Catalog GPU list of a node, runs of one model joined: `H100-80GBx2+A10G-24GB`."""
    parts = []
    for key, run in itertools.groupby(g.key for g in spec.gpus):
        n = len(list(run))
        parts.append(f"{key}x{n}" if n > 1 else key)
    return "+".join(parts)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def node_body(spec: NodeSpec, name: str, ip: str, gpu_taint: bool, bottlerocket_settings: str = "") -> dict[str, Any]:
    """The Node object (metadata, spec, status with capacity and addresses); a Bottlerocket node (`@bottlerocket`)
    also its osImage and, for the agents, its user data (`bottlerocket_settings`, TOML text)."""
    group = f"gpu-{_slug(spec.instance_type or gpu_list(spec))}"
    labels = {
        HOSTNAME: name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
        L.ZONE: spec.zone, "topology.kubernetes.io/region": REGION,
        NODEGROUP: group, CAPACITY_TYPE: "ON_DEMAND", L.GPU_PRESENT: "true",
    }
    annotations = {NODE_ANNOTATION[0]: NODE_ANNOTATION[1]}
    if spec.instance_type:
        labels[L.INSTANCE_TYPE] = spec.instance_type
    else:
        annotations[GPUS_ANNOTATION] = gpu_list(spec)
    instance_id = "i-" + hashlib.sha256(name.encode()).hexdigest()[:17]
    capacity = {"cpu": str(spec.vcpus or DEFAULT_VCPUS), "memory": f"{spec.memory_mib or DEFAULT_MEMORY_MIB}Mi",
                "pods": str(DEFAULT_PODS), "ephemeral-storage": "200Gi"}
    node_spec: dict[str, Any] = {"providerID": f"aws:///{spec.zone}/{instance_id}"}
    if gpu_taint:
        node_spec["taints"] = [{"key": L.GPU_TAINT_KEY, "value": "true", "effect": "NoSchedule"}]
    addresses = [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name},
                 {"type": "InternalDNS", "address": name}]
    status: dict[str, Any] = {"capacity": capacity, "allocatable": dict(capacity), "addresses": addresses}
    if spec.os == BOTTLEROCKET:
        status["nodeInfo"] = {"osImage": br.SIMULATED_OS_IMAGE}
        annotations[br.SETTINGS_ANNOTATION] = bottlerocket_settings
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels, "annotations": annotations},
        "spec": node_spec,
        "status": status,
    }


def plan(fleet: str, gpu_taint: bool = False, start: int = 0, bottlerocket_settings: str = "") -> list[LocalNode]:
    """The nodes of a fleet spec; `start` offsets the per-zone host numbers (for adding nodes later);
    `bottlerocket_settings`: the user data (TOML text) of its `@bottlerocket` nodes."""
    specs = parse_fleet(fleet)
    per_zone: dict[str, int] = {}
    nodes = []
    for spec in specs:
        zone_index = ZONES.index(spec.zone)
        k = per_zone.get(spec.zone, start)
        per_zone[spec.zone] = k + 1
        if k >= _PER_ZONE:
            raise ClusterError(f"local backend: more than {_PER_ZONE} nodes in zone {spec.zone}")
        a, b = 32 * zone_index + k // 240, 10 + k % 240
        name = f"ip-10-0-{a}-{b}.{REGION}.compute.internal"
        ip = f"10.0.{a}.{b}"
        nodes.append(LocalNode(name, ip, spec, node_body(spec, name, ip, gpu_taint, bottlerocket_settings)))
    return nodes


def register(api: Any, nodes: Sequence[LocalNode]) -> None:
    """Create the Node objects (an existing node of the same name is an error)."""
    for node in nodes:
        api.create(node.body)


def names(nodes: Iterable[LocalNode]) -> list[str]:
    return [n.name for n in nodes]


NOT_READY_TAINTS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")


def unready(node: dict[str, Any]) -> str | None:
    """Why a node cannot take pods yet (kwok has not made it Ready, or the not-ready taint is still on), or None."""
    conds = {c.get("type"): c.get("status") for c in node.get("status", {}).get("conditions") or []}
    if conds.get("Ready") != "True":
        return f"Ready={conds.get('Ready', 'unknown')}"
    taints = [t["key"] for t in node.get("spec", {}).get("taints") or [] if t.get("key") in NOT_READY_TAINTS]
    return f"taint {taints[0]}" if taints else None


def wait_ready(api: Any, wanted: Iterable[str], timeout: float) -> None:
    """Wait until every named node is Ready and untainted by the node lifecycle controller."""
    want = set(wanted)
    deadline = time.monotonic() + timeout
    while True:
        found = {n["metadata"]["name"]: n for n in api.list("Node")}
        waiting = {name: "missing" if name not in found else unready(found[name]) for name in want}
        waiting = {k: v for k, v in waiting.items() if v}
        if not waiting:
            return
        if time.monotonic() >= deadline:
            some = ", ".join(f"{k} ({v})" for k, v in sorted(waiting.items())[:5])
            raise ClusterError(f"local backend: {len(waiting)} node(s) not ready after {timeout:.0f}s: {some}; "
                               "see the kwok and kube-controller-manager logs")
        time.sleep(0.1)
