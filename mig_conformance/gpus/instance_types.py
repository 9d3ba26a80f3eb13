"""EC2 GPU instance types (fixtures/instance-types.yaml, plus user catalogs' instance-types.yaml) mapped to catalog
GPU models.

An instance type whose GPUs are MIG-capable may still not offer MIG (p6e-gb200: the EKS AMI's driver enables CDMM);
`mig_available: false` with a `mig_reason` says so, and every prediction for it is "not applicable" with that reason.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from mig_conformance.common.errors import UnknownNameError
from mig_conformance.common.fields import MappingReader
from mig_conformance.common.yaml_source import load_yaml_file
from mig_conformance.gpus.catalog import MAX_NODE_GPUS, Catalog, GpuModel, load_catalog, user_catalog_dirs

#: What an instance-types file may say of one type (a user's typo is an error, not a silent default).
FIELDS = frozenset({"gpu", "gpu_count", "ec2_gpu_name", "ec2_gpu_memory_mib", "vcpus", "memory_mib", "source",
                    "mig_available", "mig_reason", "mig_reason_source", "min_driver", "notes"})
INSTANCE_TYPES_FILE = "instance-types.yaml"


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
    file: str = ""  # the instance-types file this entry came from
    user: bool = False  # from a user catalog folder (not shipped with the kit)
    mig_available: bool = True
    mig_reason: str | None = None  # why MIG is not available (mig_available false)
    mig_reason_source: str | None = None
    min_driver: str | None = None  # the driver this type needs, when more than the GPU's MIG minimum
    notes: tuple[str, ...] = ()  # caveats every output repeats (e.g. "AWS calls these MIG sizes preliminary")

    def gpu_model(self, catalog: Catalog | None = None) -> GpuModel:
        return (catalog or load_catalog()).get(self.gpu)

    def gpus(self, catalog: Catalog | None = None) -> list[GpuModel]:
        """The node's GPUs in PCI order (all the same model on EC2 GPU instances)."""
        return [self.gpu_model(catalog)] * self.gpu_count

    @property
    def mig_unavailable(self) -> str | None:
        """Why MIG cannot be used on this type (None: it can, as far as the catalog knows)."""
        if self.mig_available:
            return None
        return f"MIG is not available on {self.name}: {self.mig_reason}" + (
            f" ({self.mig_reason_source})" if self.mig_reason_source else "")

    @property
    def origin(self) -> str:
        return f"{'user catalog' if self.user else 'shipped'} {self.file}"


def instance_types_file() -> Path:
    return Path(str(resources.files("mig_conformance.fixtures").joinpath(INSTANCE_TYPES_FILE)))


def user_instance_types_file(folder: str) -> Path:
    return Path(folder) / INSTANCE_TYPES_FILE


def load_instance_types(path: str | None = None, user_dirs: tuple[str, ...] | None = None) -> dict[str, InstanceType]:
    """The instance-type table: `path` alone, or the shipped file plus the `instance-types.yaml` of each user catalog
    folder in effect (`user_dirs`, default `user_catalog_dirs()`), later ones overriding earlier ones by name. Every
    entry must name a GPU of the catalog these folders make."""
    users = user_catalog_dirs() if user_dirs is None else user_dirs
    if path is not None:
        return _load((path,), users)
    files = [str(instance_types_file())]
    files += [str(f) for f in map(user_instance_types_file, users) if f.is_file()]
    return _load(tuple(files), users)


@functools.cache
def _load(files: tuple[str, ...], user_dirs: tuple[str, ...]) -> dict[str, InstanceType]:
    catalog = load_catalog(user_dirs=user_dirs)
    shipped = str(instance_types_file())
    out: dict[str, InstanceType] = {}
    for file in files:
        out.update(_load_file(file, catalog, user=file != shipped))
    return out


def _load_file(file: str, catalog: Catalog, user: bool) -> dict[str, InstanceType]:
    doc = load_yaml_file(file)
    root = MappingReader(doc, ())
    if not isinstance(doc.data, dict):
        raise root.fail("an instance-types file must be a mapping with 'instance_types:'")
    types = root.get("instance_types", dict)
    default_source = root.get("source", str, "")
    out: dict[str, InstanceType] = {}
    for name in types:
        r = root.child("instance_types").child(name)
        if not isinstance(r.value, dict):
            raise r.fail(f"instance type {name}: must be a mapping of {', '.join(sorted(FIELDS))}")
        for key in r.value:
            if key not in FIELDS:
                raise r.fail(f"instance type {name}: unknown field '{key}' (known: {', '.join(sorted(FIELDS))})",
                             str(key))
        if not isinstance(name, str) or not name.strip():
            raise r.fail(f"instance type name must be a non-empty string, got {name!r}")
        gpu = r.get("gpu", str)
        count = r.get("gpu_count", int)
        if not 1 <= count <= MAX_NODE_GPUS:
            raise r.fail(f"instance type {name}: gpu_count must be 1 to {MAX_NODE_GPUS}, got {count}", "gpu_count")
        available = r.get("mig_available", bool, True)
        reason = r.get("mig_reason", str, None)
        if not available and not reason:
            raise r.fail(f"instance type {name}: mig_available: false needs a 'mig_reason'", "mig_available")
        notes = r.get("notes", list, [])
        if not all(isinstance(n, str) for n in notes):
            raise r.fail(f"instance type {name}: notes must be a list of strings", "notes")
        source = r.get("source", str, default_source)
        if user and not source:
            source = f"user catalog {file}"
        it = InstanceType(
            name=str(name), gpu=gpu, gpu_count=count,
            ec2_gpu_name=r.get("ec2_gpu_name", str, ""), ec2_gpu_memory_mib=r.get("ec2_gpu_memory_mib", int, None),
            vcpus=r.get("vcpus", int, None), memory_mib=r.get("memory_mib", int, None), source=source,
            file=file, user=user, mig_available=available, mig_reason=reason,
            mig_reason_source=r.get("mig_reason_source", str, None), min_driver=r.get("min_driver", str, None),
            notes=tuple(notes))
        model = catalog.find(it.gpu)
        if model is None:
            raise r.fail(f"instance type {name}: unknown catalog GPU '{it.gpu}' (known: "
                         f"{', '.join(sorted(catalog.gpus))})", "gpu")
        out[it.name] = it
    return out


def get_instance_type(name: str) -> InstanceType:
    types = load_instance_types()
    if name not in types:
        raise UnknownNameError(f"unknown instance type '{name}'; known: {', '.join(sorted(types))}")
    return types[name]
