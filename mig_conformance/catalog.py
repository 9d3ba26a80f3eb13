"""The GPU catalog: MIG profile tables per GPU model, loaded from `fixtures/gpus/*.yaml`."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from .errors import InputError, Problem, UnknownNameError
from .fields import MappingReader
from .profiles import ProfileFormatError, ProfileName, parse_profile
from .yamlsource import load_yaml_file

ENGINE_KEYS = ("ce", "dec", "enc", "jpeg", "ofa")


@dataclass(frozen=True)
class Engines:
    """Copy engines, decoders, encoders, JPEG decoders and optical-flow accelerators of an instance."""

    ce: int | None
    dec: int | None
    enc: int | None
    jpeg: int | None
    ofa: int | None

    def as_dict(self) -> dict[str, int | None]:
        return {k: getattr(self, k) for k in ENGINE_KEYS}


@dataclass(frozen=True)
class CiProfile:
    """A compute-instance profile available inside a GPU instance of one GI profile."""

    name: str
    nvml_index: int
    id: int
    slices: int
    max_instances: int
    sm: int | None
    default: bool
    confirmed: bool
    source: str

    @property
    def placements(self) -> tuple[tuple[int, int], ...]:
        """CI placements (start, size) in compute slices inside the GI."""
        return tuple((i * self.slices, self.slices) for i in range(self.max_instances))


@dataclass(frozen=True)
class GiProfile:
    """A GPU-instance profile of one GPU model, as NVML reports it."""

    name: str
    id: int
    nvml_index: int
    max_instances: int
    slices: int
    sm: int | None
    memory_mib: int | None
    engines: Engines
    p2p: bool | None
    placement_starts: tuple[int, ...]
    placement_size: int
    compute_instances: tuple[CiProfile, ...]
    coexists_only_with: tuple[str, ...] | None
    confirmed: bool
    reason: str | None
    source: str
    parsed: ProfileName = field(compare=False)

    @property
    def placements(self) -> tuple[tuple[int, int], ...]:
        return tuple((s, self.placement_size) for s in self.placement_starts)

    def mask(self, start: int) -> int:
        """Bitmask of the memory slots a GI of this profile occupies at `start`."""
        return ((1 << self.placement_size) - 1) << start

    @property
    def default_ci(self) -> CiProfile:
        return next(ci for ci in self.compute_instances if ci.default)

    def ci_for(self, name: ProfileName) -> CiProfile | None:
        """The first CI profile (lowest NVML index, as mig-parted picks) whose name matches."""
        for ci in sorted(self.compute_instances, key=lambda c: c.nvml_index):
            if parse_profile(ci.name).matches(name):
                return ci
        return None


@dataclass(frozen=True)
class Ec2Name:
    name: str
    memory_mib: int


@dataclass(frozen=True)
class GpuModel:
    """One GPU model with its MIG geometry and profile table."""

    key: str
    description: str
    aliases: tuple[str, ...]
    nvml_names: tuple[str, ...]
    gfd_products: tuple[str, ...]
    ec2_names: tuple[Ec2Name, ...]
    pci_device_ids: tuple[str, ...]
    architecture: str
    mig_capable: bool
    memory_total_mib: int | None
    sm_count: int | None
    memory_slots: int | None
    compute_slices: int | None
    driver: str | None
    min_driver: str | None
    confirmed: bool
    source: str
    gi_profiles: tuple[GiProfile, ...]
    file: str = ""

    @property
    def nvml_name(self) -> str:
        return self.nvml_names[0] if self.nvml_names else self.key

    @property
    def pci_device_id(self) -> int:
        """Primary PCI ID as the 32-bit 0xDDDDVVVV number."""
        return int(self.pci_device_ids[0], 16) if self.pci_device_ids else 0

    def profile(self, name: str | ProfileName) -> GiProfile | None:
        """The GI profile whose name matches `name` (a GI name; attribute order ignored)."""
        wanted = parse_profile(name) if isinstance(name, str) else name
        for p in self.gi_profiles:
            if p.parsed.matches(wanted):
                return p
        return None

    def profile_by_id(self, profile_id: int) -> GiProfile | None:
        return self._by_id.get(profile_id)

    def profile_by_index(self, nvml_index: int) -> GiProfile | None:
        return self._by_index.get(nvml_index)

    @functools.cached_property
    def _by_id(self) -> dict[int, GiProfile]:
        """First profile per NVML profile ID (NVML simulators look them up on every call)."""
        out: dict[int, GiProfile] = {}
        for p in self.gi_profiles:
            out.setdefault(p.id, p)
        return out

    @functools.cached_property
    def _by_index(self) -> dict[int, GiProfile]:
        out: dict[int, GiProfile] = {}
        for p in self.gi_profiles:
            out.setdefault(p.nvml_index, p)
        return out

    def resolve(self, name: str | ProfileName) -> tuple[GiProfile, CiProfile] | None:
        """GI and CI profile for a MIG device name (`3g.40gb` or `1c.3g.40gb`), or None."""
        wanted = parse_profile(name) if isinstance(name, str) else name
        gi = self.profile(parse_profile(wanted.gi_name))
        if gi is None:
            return None
        ci = gi.ci_for(wanted)
        return (gi, ci) if ci is not None else None

    @property
    def unconfirmed(self) -> list[str]:
        """Human-readable notes on every row that is not confirmed by an observation."""
        notes = [f"{self.key} {p.name}: {p.reason}" for p in self.gi_profiles if not p.confirmed]
        if not self.confirmed and not notes:
            notes.append(f"{self.key}: table not confirmed")
        return notes

    @property
    def full_mask(self) -> int:
        return (1 << (self.memory_slots or 0)) - 1


class Catalog:
    """All known GPU models with lookup by key, alias, NVML name, GFD product, PCI ID or EC2 name."""

    def __init__(self, gpus: list[GpuModel]) -> None:
        self.gpus: dict[str, GpuModel] = {g.key: g for g in gpus}
        self._names: dict[str, str] = {}
        for g in gpus:
            for n in (g.key, *g.aliases, *g.nvml_names, *g.gfd_products):
                self._names.setdefault(n.lower(), g.key)
            # "NVIDIA-H100-80GB-HBM3-MIG-1g.10gb" style products are resolved in get().
        self._pci: dict[int, str] = {}
        for g in gpus:
            for pid in g.pci_device_ids:
                self._pci.setdefault(int(pid, 16), g.key)

    def __iter__(self):
        return iter(self.gpus.values())

    def __len__(self) -> int:
        return len(self.gpus)

    def find(self, name: str) -> GpuModel | None:
        key = self._names.get(name.strip().lower())
        if key is None and "-MIG-" in name:
            key = self._names.get(name.split("-MIG-")[0].lower())
        return self.gpus.get(key) if key else None

    def get(self, name: str) -> GpuModel:
        """Resolve a key or alias; UnknownNameError lists the known keys."""
        gpu = self.find(name)
        if gpu is None:
            raise UnknownNameError(f"unknown GPU '{name}'; known: {', '.join(sorted(self.gpus))}")
        return gpu

    def by_pci_id(self, device_id: int) -> GpuModel | None:
        """Model for a 0xDDDDVVVV PCI ID (subsystem ignored)."""
        return self.gpus.get(self._pci.get(device_id & 0xFFFFFFFF, ""))

    def by_ec2(self, name: str, memory_mib: int | None = None) -> GpuModel | None:
        """Model for an EC2 GpuInfo name (+ per-GPU memory to tell A100 40GB from 80GB)."""
        hits = [g for g in self.gpus.values() for e in g.ec2_names
                if e.name.lower() == name.lower() and (memory_mib is None or e.memory_mib == memory_mib)]
        return hits[0] if len(hits) == 1 else None

    @property
    def mig_capable(self) -> list[GpuModel]:
        return [g for g in self.gpus.values() if g.mig_capable]


def _engines(r: MappingReader) -> Engines:
    vals = {k: r.get(k, int, None) for k in ENGINE_KEYS}
    return Engines(**vals)


def _ci(r: MappingReader) -> CiProfile:
    name = r.get("name", str)
    return CiProfile(name=name, nvml_index=r.get("nvml_index", int), id=r.get("id", int),
                     slices=r.get("slices", int), max_instances=r.get("max_instances", int),
                     sm=r.get("sm", int, None), default=r.get("default", bool, False),
                     confirmed=r.get("confirmed", bool, True), source=r.get("source", str, ""))


def _gi(r: MappingReader) -> GiProfile:
    name = r.get("name", str)
    try:
        parsed = parse_profile(name)
    except ProfileFormatError as exc:
        raise r.fail(f"invalid profile name '{name}': {exc}", "name") from None
    pl = r.child("placements")
    if not isinstance(pl.value, dict):
        raise r.fail("'placements' must be a mapping {starts: [...], size: N}", "placements")
    starts = pl.get("starts", list)
    cis_raw = r.get("compute_instances", list, [])
    cis = tuple(_ci(r.child("compute_instances").child(i)) for i in range(len(cis_raw)))
    if cis and sum(ci.default for ci in cis) != 1:
        raise r.fail("exactly one compute instance must be 'default: true'", "compute_instances")
    co = r.get("coexists_only_with", list, None)
    confirmed = r.get("confirmed", bool, True)
    reason = r.get("reason", str, None)
    if not confirmed and not reason:
        raise r.fail("'reason' is required when 'confirmed' is false", "confirmed")
    return GiProfile(
        name=name, id=r.get("id", int), nvml_index=r.get("nvml_index", int),
        max_instances=r.get("max_instances", int), slices=r.get("slices", int),
        sm=r.get("sm", int, None), memory_mib=r.get("memory_mib", int, None),
        engines=_engines(r.child("engines")) if isinstance(r.value.get("engines"), dict)
        else Engines(None, None, None, None, None),
        p2p=r.get("p2p", bool, None), placement_starts=tuple(int(s) for s in starts),
        placement_size=pl.get("size", int), compute_instances=cis,
        coexists_only_with=tuple(co) if co is not None else None,
        confirmed=confirmed, reason=reason, source=r.get("source", str, ""), parsed=parsed)


def load_gpu_file(path: str | Path) -> GpuModel:
    """Load and check one catalog file; errors name the file, line and key."""
    doc = load_yaml_file(path)
    if not isinstance(doc.data, dict):
        raise InputError(Problem("a GPU catalog file must be a mapping", MappingReader(doc, ()).location()))
    r = MappingReader(doc, ())
    profiles_raw = r.get("gi_profiles", list, [])
    gis = tuple(_gi(r.child("gi_profiles").child(i)) for i in range(len(profiles_raw)))
    ec2 = tuple(Ec2Name(e["name"], int(e["memory_mib"])) for e in r.get("ec2_names", list, []))
    gpu = GpuModel(
        key=r.get("key", str), description=r.get("description", str, ""),
        aliases=tuple(r.get("aliases", list, [])), nvml_names=tuple(r.get("nvml_names", list, [])),
        gfd_products=tuple(r.get("gfd_products", list, [])), ec2_names=ec2,
        pci_device_ids=tuple(r.get("pci_device_ids", list, [])), architecture=r.get("architecture", str, ""),
        mig_capable=r.get("mig_capable", bool), memory_total_mib=r.get("memory_total_mib", int, None),
        sm_count=r.get("sm_count", int, None), memory_slots=r.get("memory_slots", int, None),
        compute_slices=r.get("compute_slices", int, None), driver=r.get("driver", str, None),
        min_driver=r.get("min_driver", str, None), confirmed=r.get("confirmed", bool, True),
        source=r.get("source", str), gi_profiles=gis, file=str(path))
    if gpu.mig_capable and not (gpu.memory_slots and gpu.compute_slices and gis):
        raise r.fail("a MIG-capable GPU needs memory_slots, compute_slices and gi_profiles")
    for p in gis:
        for s in p.placement_starts:
            if s < 0 or s + p.placement_size > (gpu.memory_slots or 0):
                raise r.fail(f"profile {p.name}: placement {s}:{p.placement_size} outside "
                             f"{gpu.memory_slots} memory slots", "gi_profiles")
    return gpu


def catalog_dir() -> Path:
    """Folder of the shipped GPU catalog files."""
    return Path(str(resources.files("mig_conformance.fixtures").joinpath("gpus")))


@functools.cache
def _load_dirs(dirs: tuple[str, ...]) -> Catalog:
    gpus: dict[str, GpuModel] = {}
    for d in dirs:
        for f in sorted(Path(d).glob("*.yaml")):
            g = load_gpu_file(f)
            gpus[g.key] = g  # later folders override earlier ones
    return Catalog(list(gpus.values()))


def load_catalog(extra_dirs: tuple[str, ...] = ()) -> Catalog:
    """The shipped catalog, plus user folders (e.g. captured entries) that add or override models."""
    return _load_dirs((str(catalog_dir()), *extra_dirs))
