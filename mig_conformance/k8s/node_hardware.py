"""Which GPU models a Kubernetes node has, from its labels (instance type, or GFD product + count)."""

from __future__ import annotations

from dataclasses import replace

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
    """GPU models in PCI order (`node_gpu_boards`' models); on an instance type without MIG (p6e-gb200 with the EKS
    AMI: CDMM) they are not MIG capable there, whatever the model can do elsewhere."""
    catalog = load_catalog()
    models = [catalog.model_of(b) for b in node_gpu_boards(node)]
    return [without_mig(g) for g in models] if node_mig_unavailable(node) else models


def node_mig_unavailable(node: GpuNode) -> str | None:
    """Why MIG is not available on the node's instance type (instance-types `mig_available: false`), or None."""
    it = load_instance_types().get(node.labels.get(L.INSTANCE_TYPE, ""))
    return it.mig_unavailable if it is not None else None


def not_applicable_note(node: GpuNode) -> str:
    """' (not applicable: <why>)' for a node whose instance type has no MIG, else ''; for skip reasons."""
    why = node_mig_unavailable(node)
    return f" (not applicable: {why})" if why else ""


def without_mig(model: GpuModel) -> GpuModel:
    """The model as a platform that does not let it run MIG shows it: no MIG capability, no MIG profiles."""
    return replace(model, mig_capable=False, gi_profiles=())
