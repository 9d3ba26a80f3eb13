"""A node's GPUs, from an instance type or a GPU list such as `H100-80GBx8` or `H100-80GB,A10G-24GB`."""

from __future__ import annotations

import re
from collections.abc import Iterable

from .catalog import Catalog, GpuModel, load_catalog
from .errors import InputError
from .instance_types import get_instance_type

_COUNT = re.compile(r"^(?P<name>.+?)(?:[x*](?P<n>\d+))?$")


def parse_gpu_list(specs: Iterable[str], catalog: Catalog | None = None) -> list[GpuModel]:
    """GPUs in PCI order from items like `H100-80GBx8`, `A100-40GB*2` or comma-separated lists."""
    cat = catalog or load_catalog()
    gpus: list[GpuModel] = []
    for spec in specs:
        for item in filter(None, (s.strip() for s in spec.split(","))):
            m = _COUNT.match(item)
            assert m is not None
            name, count = m["name"], int(m["n"] or 1)
            if cat.find(item) is not None:  # a key that itself ends in x<digits>
                name, count = item, 1
            if count < 1:
                raise InputError(f"GPU count must be at least 1 in '{item}'")
            gpus.extend([cat.get(name)] * count)
    if not gpus:
        raise InputError("no GPUs given")
    return gpus


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
