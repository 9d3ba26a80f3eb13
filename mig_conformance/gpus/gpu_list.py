"""A node's GPUs, from an instance type or a GPU list such as `H100-80GBx8` or `H100-80GB,A10G-24GB`."""

from __future__ import annotations

from collections.abc import Iterable

from mig_conformance.common.errors import InputError
from mig_conformance.gpus.catalog import Catalog, GpuModel, load_catalog, parse_gpu_specs
from mig_conformance.gpus.device_ids import DeviceID
from mig_conformance.gpus.instance_types import get_instance_type


def parse_gpu_list(specs: Iterable[str], catalog: Catalog | None = None) -> list[GpuModel]:
    """GPU models in PCI order from items like `H100-80GBx8`, `A100-40GB*2` or comma-separated lists (the grammar
    of `catalog.parse_gpu_specs`, which also keeps each item's board variant)."""
    cat = catalog or load_catalog()
    return [cat.gpus[v.model_key] for v in parse_gpu_specs(specs, cat)]


def gpu_device_ids(gpu: Iterable[str] | None, catalog: Catalog | None = None) -> list[DeviceID] | None:
    """The PCI device IDs the GPUs of a `--gpu` list report (a variant's own, e.g. H100-PCIE-80GB -> 0x233110DE);
    None without a list (instance types use the models' primary IDs)."""
    items = list(gpu or [])
    return [DeviceID.from_int(v.pci_device_id_int) for v in parse_gpu_specs(items, catalog)] if items else None


def node_gpus(gpu: Iterable[str] | None = None, instance_type: str | None = None,
              catalog: Catalog | None = None) -> tuple[str, list[GpuModel]]:
    """(description, GPUs) for exactly one of --gpu / --instance-type."""
    gpu = list(gpu or [])
    if bool(gpu) == bool(instance_type):
        raise InputError("give exactly one of --gpu GPU[xN] or --instance-type TYPE")
    if instance_type:
        it = get_instance_type(instance_type)
        return instance_type, it.gpus(catalog)
    gpus = parse_gpu_list(gpu, catalog)
    return ",".join(gpu), gpus
