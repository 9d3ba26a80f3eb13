"""Fleet specs of the sim backend: `p5.48xlarge*4,p4d.24xlarge` or GPU lists such as `H100-80GBx2+A10G-24GB`.

Each comma-separated item is `NODE[*COUNT][@FLAVOUR]`. NODE is an EC2 instance type from
fixtures/instance-types.yaml, or a GPU list of catalog GPUs joined with `+`, each optionally `xN`
(`H100-80GBx7+A10G-24GB`). FLAVOUR `bottlerocket` makes Bottlerocket nodes (`p5.48xlarge*2@bottlerocket`): MIG from
Bottlerocket's settings at boot, no GPU Operator on them (k8s/bottlerocket.py; sim and local, not kind).
An empty spec is one node of every MIG-capable instance type. A fleet has at most `MAX_NODES` nodes (README,
docs/performance.md: the sim backend creates and reconfigures that many in seconds; the suites then run a few tests
per node).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mig_conformance.cluster.base import ClusterError
from mig_conformance.common.errors import InputError
from mig_conformance.gpus.catalog import GpuModel, load_catalog
from mig_conformance.gpus.gpu_list import parse_gpu_list
from mig_conformance.gpus.instance_types import load_instance_types
from mig_conformance.k8s.node_hardware import without_mig

ZONES = ("us-west-2a", "us-west-2b", "us-west-2c")
REGION = "us-west-2"
MAX_NODES = 10_000  #: the documented cap of a sim/local fleet
LINUX, BOTTLEROCKET = "linux", "bottlerocket"
FLAVOURS = (BOTTLEROCKET,)
_COUNT = re.compile(r"^(?P<node>.+?)\*(?P<n>\d+)$")


@dataclass(frozen=True)
class NodeSpec:
    """One simulated node: name, EC2 instance type (None for a GPU list), GPUs in PCI order, zone."""

    name: str
    instance_type: str | None
    gpus: tuple[GpuModel, ...]
    zone: str
    vcpus: int | None = None
    memory_mib: int | None = None
    os: str = LINUX  #: `linux` (GPU Operator node) or `bottlerocket`


def _flavour(item: str) -> tuple[str, str]:
    """`p5.48xlarge*2@bottlerocket` -> (`p5.48xlarge*2`, `bottlerocket`); no `@` -> linux."""
    node, at, flavour = item.rpartition("@")
    if not at:
        return item, LINUX
    if flavour.strip().lower() not in FLAVOURS:
        raise ClusterError(f"sim fleet item '{item}': unknown node flavour '{flavour}' (known: "
                           f"{', '.join(FLAVOURS)})")
    return node.strip(), flavour.strip().lower()


def default_fleet() -> str:
    """One node of each MIG-capable instance type that offers MIG, in file order."""
    return ",".join(name for name, it in load_instance_types().items()
                    if it.gpu_model().mig_capable and it.mig_available)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _gpus(node: str) -> tuple[GpuModel, ...]:
    try:
        return tuple(parse_gpu_list(node.split("+"), load_catalog()))
    except InputError as exc:
        known = ", ".join(sorted(load_instance_types()))
        raise ClusterError(f"sim fleet item '{node}': not an instance type ({known}) and not a GPU list: "
                           f"{exc}") from None


def _count(item: str) -> int:
    """The node count of a fleet item (`p5.48xlarge*4` -> 4); counts too long to convert are capped above any
    fleet (Python refuses to convert strings of more than 4,300 digits)."""
    m = _COUNT.match(item)
    if not m:
        return 1
    digits = m["n"].lstrip("0") or "0"
    return int(digits) if len(digits) <= 15 else 10**15


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_fleet(spec: str) -> list[NodeSpec]:
    """Nodes of a fleet spec, named `sim-<instance-type>-<n>` (n counts per type), zones round-robin."""
    text = spec.strip() or default_fleet()
    types = load_instance_types()
    nodes: list[NodeSpec] = []
    per_slug: dict[str, int] = {}
    items = text.split(",")
    total = sum(_count(_flavour(item.strip())[0]) for item in items)
    if total > MAX_NODES:
        many = f"{total:,}" if total < 10**12 else "more than a trillion"
        raise ClusterError(f"sim fleet '{_short(spec)}': {many} nodes, more than the cap of {MAX_NODES:,} nodes per "
                           "fleet")
    for raw in items:
        item, flavour = _flavour(raw.strip())
        if not item:
            raise ClusterError(f"sim fleet '{spec}': empty item (expected e.g. p5.48xlarge*4,p4d.24xlarge)")
        m = _COUNT.match(item)
        node, count = (m["node"], _count(item)) if m else (item, 1)
        if count < 1:
            raise ClusterError(f"sim fleet item '{item}': the node count must be at least 1")
        if node in types:
            it = types[node]
            gpus, itype, vcpus, memory = tuple(it.gpus()), node, it.vcpus, it.memory_mib
            if not it.mig_available:  # the platform keeps MIG off (p6e-gb200 with the EKS AMI: CDMM)
                gpus = tuple(without_mig(g) for g in gpus)
        else:
            gpus, itype, vcpus, memory = _gpus(node), None, None, None
        slug = _slug(node) + ("-br" if flavour == BOTTLEROCKET else "")
        for _ in range(count):
            n = per_slug.get(slug, 0)
            per_slug[slug] = n + 1
            nodes.append(NodeSpec(f"sim-{slug}-{n}", itype, gpus, ZONES[len(nodes) % len(ZONES)], vcpus, memory,
                                  flavour))
    return nodes


def refuse_flavours(specs: list[NodeSpec], backend: str) -> None:
    """Backends whose nodes run GPU Operator agents only (kind) refuse `@bottlerocket` items (sim and local
    simulate them)."""
    flavoured = sorted({s.os for s in specs if s.os != LINUX})
    if flavoured:
        raise ClusterError(f"{backend} backend: '@{flavoured[0]}' nodes are simulated by the sim and local backends "
                           f"only (use sim:SPEC or local:SPEC); {backend} runs GPU Operator agents on every node")
