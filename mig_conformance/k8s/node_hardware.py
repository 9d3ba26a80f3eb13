"""Which GPU models a Kubernetes node has, from its labels (instance type, or GFD product + count)."""

from __future__ import annotations

from mig_conformance.common.errors import InputError
from mig_conformance.gpus.catalog import GpuModel, GpuVariant, load_catalog
from mig_conformance.gpus.instance_types import load_instance_types
from mig_conformance.k8s import labels as L
from mig_conformance.k8s.model import GpuNode


def node_gpu_boards(node: GpuNode) -> list[GpuVariant]:
    """GPU boards in PCI order: from the EC2 instance type if known (its model's primary board), else GFD's product
    and count labels (the board the product names, e.g. `NVIDIA-H100-PCIe`)."""
    itype = node.labels.get(L.INSTANCE_TYPE)
    types = load_instance_types()
    if itype in types:
        return [g.primary_variant for g in types[itype].gpus()]
    product = node.labels.get(L.GPU_PRODUCT)
    count = node.labels.get(L.GPU_COUNT)
    if product and count and count.isdigit():
        board = load_catalog().find_variant(product)
        if board is not None:
            return [board] * int(count)
    raise InputError(f"node {node.name}: cannot tell its GPUs: instance type '{itype}' is not in the catalog and "
                     f"GFD labels {L.GPU_PRODUCT}={product!r} {L.GPU_COUNT}={count!r} do not name a known GPU")


def node_gpu_models(node: GpuNode) -> list[GpuModel]:
    """GPU models in PCI order (`node_gpu_boards`' models)."""
    catalog = load_catalog()
    return [catalog.model_of(b) for b in node_gpu_boards(node)]
