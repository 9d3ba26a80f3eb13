"""EC2 GPU instance types (fixtures/instance-types.yaml) mapped to catalog GPU models."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from mig_conformance.common.errors import UnknownNameError
from mig_conformance.common.fields import MappingReader
from mig_conformance.common.yaml_source import load_yaml_file
from mig_conformance.gpus.catalog import Catalog, GpuModel, load_catalog


@dataclass(frozen=True)
class InstanceType:
    """An EC2 instance type with its GPUs as EC2 describes them and as the catalog models them."""

    name: str
    gpu: str
    gpu_count: int
    ec2_gpu_name: str
    ec2_gpu_memory_mib: int | None
    vcpus: int | None
    memory_mib: int | None
    source: str

    def gpu_model(self, catalog: Catalog | None = None) -> GpuModel:
        return (catalog or load_catalog()).get(self.gpu)

    def gpus(self, catalog: Catalog | None = None) -> list[GpuModel]:
        """The node's GPUs in PCI order (all the same model on EC2 GPU instances)."""
        return [self.gpu_model(catalog)] * self.gpu_count


def instance_types_file() -> Path:
    return Path(str(resources.files("mig_conformance.fixtures").joinpath("instance-types.yaml")))


@functools.cache
def load_instance_types(path: str | None = None) -> dict[str, InstanceType]:
    """Load the instance-type table; every entry must name a catalog GPU."""
    file = path or str(instance_types_file())
    doc = load_yaml_file(file)
    root = MappingReader(doc, ())
    types = root.get("instance_types", dict)
    catalog = load_catalog()
    out: dict[str, InstanceType] = {}
    for name in types:
        r = root.child("instance_types").child(name)
        it = InstanceType(
            name=str(name), gpu=r.get("gpu", str), gpu_count=r.get("gpu_count", int),
            ec2_gpu_name=r.get("ec2_gpu_name", str), ec2_gpu_memory_mib=r.get("ec2_gpu_memory_mib", int, None),
            vcpus=r.get("vcpus", int, None), memory_mib=r.get("memory_mib", int, None),
            source=r.get("source", str, root.get("source", str, "")))
        if catalog.find(it.gpu) is None:
            raise r.fail(f"instance type {name}: unknown catalog GPU '{it.gpu}'", "gpu")
        out[it.name] = it
    return out


def get_instance_type(name: str) -> InstanceType:
    types = load_instance_types()
    if name not in types:
        raise UnknownNameError(f"unknown instance type '{name}'; known: {', '.join(sorted(types))}")
    return types[name]
