"""The GPU catalog: MIG profile tables per GPU model, loaded from `fixtures/gpus/*.yaml`.

A model's profile table can be shared by several boards (PCI device IDs); each is a `GpuVariant` with its own
PCI ID, NVML name and confirmation (docs/catalog-schema.md). `Catalog.resolve(spec)` gives a (model, variant)
pair, `Catalog.get(spec)` the model alone.

Profile memory depends on the driver. A model's rows are the catalog's driver (`CATALOG_DRIVER_BRANCH`, R580: the
NVML captures) and the driver its own file names; `driver_branches:` overlays list what a source shows under another
branch. `GpuModel.at_driver(version)` is the model as that driver reports it: the overlay's values, and unknown (None,
flagged in every output) where no source exists, never the R580 number (docs/catalog-schema.md#driver-branches).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

from mig_conformance.common.errors import InputError, MigConformanceError, Problem, UnknownNameError
from mig_conformance.common.fields import MappingReader
from mig_conformance.common.identity import ByIdentity
from mig_conformance.common.yaml_source import load_yaml_file
from mig_conformance.gpus.profile_names import ProfileFormatError, ProfileName, parse_profile

ENGINE_KEYS = ("ce", "dec", "enc", "jpeg", "ofa")
#: Value fields of a GI profile row that a variant may leave unconfirmed ("engines" = all ENGINE_KEYS).
ROW_FIELDS = ("sm", "memory_mib", *ENGINE_KEYS, "p2p")
#: Fields a variant's `unconfirmed:` list may name.
VARIANT_FIELDS = frozenset({*ROW_FIELDS, "engines", "id", "placements", "memory_total_mib", "sm_count"})
#: Architectures whose MIG mode change stays pending until a GPU reset. Ampere: MIG User Guide ("Reboot the system
#: or try nvidia-smi --gpu-reset"); "Starting with the Hopper generation of GPUs, enabling MIG mode no longer requires
#: a GPU reset to take effect" (GoogleCloudPlatform/container-engine-accelerators partition_gpu.go @992db812;
#: docs/reference/nvml.md#mig-mode-changes).
MODE_CHANGE_NEEDS_RESET = frozenset({"ampere"})
#: The driver branch the catalog's primary rows describe: the NVML captures of tests/data/captures/ (580.159.04).
CATALOG_DRIVER_BRANCH = 580


@functools.lru_cache(maxsize=256)
def driver_branch(version: str) -> int:
    """The branch of a driver version (`550.54.15` -> 550); ValueError for anything that is not X.Y[.Z]. Cached: every
    simulated node asks it for every GPU on every advertise."""
    parts = version.strip().split(".")
    if not 2 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"driver version must look like 580.159.04, got '{version}'")
    return int(parts[0])


@dataclass(frozen=True)
class DriverBranch:
    """What one source shows of a model under another driver branch: only values it shows are known there."""

    branch: int
    driver: str | None  # the exact driver of the source, when it says
    memory_mib: dict[str, int]  # GI profile name -> memorySizeMB under this branch
    memory_total_mib: int | None
    confirmed: bool
    reason: str | None
    source: str
    derived: tuple[str, ...] = ()


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
    placement_starts: tuple[int, ...] | None = None  # catalog `placements:`; None = the schema formula
    placement_size: int | None = None
    placements_confirmed: bool = True
    placements_reason: str | None = None
    placements_source: str | None = None
    reason: str | None = None  # why the row (its SM count) is not confirmed

    @property
    def placements(self) -> tuple[tuple[int, int], ...]:
        """CI placements (start, size) in compute slices inside the GI: the catalog's, else the formula
        (i x slices, slices) for i < max_instances (docs/catalog-schema.md)."""
        if self.placement_starts is not None and self.placement_size is not None:
            return tuple((s, self.placement_size) for s in self.placement_starts)
        return tuple((i * self.slices, self.slices) for i in range(self.max_instances))

    @property
    def placements_from_catalog(self) -> bool:
        return self.placement_starts is not None


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
    derived: tuple[str, ...] = ()  # fields worked out from this row's observed values by a documented rule

    @property
    def placements(self) -> tuple[tuple[int, int], ...]:
        return tuple((s, self.placement_size) for s in self.placement_starts)

    @property
    def unknown_fields(self) -> tuple[str, ...]:
        """Value fields the catalog leaves null (ROW_FIELDS names)."""
        values = {"sm": self.sm, "memory_mib": self.memory_mib, "p2p": self.p2p, **self.engines.as_dict()}
        return tuple(f for f in ROW_FIELDS if values[f] is None)

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
class GpuVariant:
    """One board (PCI device ID) of a GPU model: what NVML reports for it and how much of the model's table is
    confirmed for it. The primary variant (key = the model's key) is the first PCI ID and NVML name."""

    key: str
    model_key: str
    pci_device_id: str  # 0xDDDDVVVV, as in mig-parted device filters
    nvml_name: str  # what the simulator reports (the model's primary name when `nvml_name_known` is false)
    nvml_name_confirmed: bool
    aliases: tuple[str, ...]
    confirmed: bool
    unconfirmed: tuple[str, ...]  # VARIANT_FIELDS whose model values are not confirmed for this board
    reason: str | None
    source: str
    primary: bool
    nvml_name_known: bool = True

    @property
    def pci_device_id_int(self) -> int:
        return int(self.pci_device_id, 16)

    @property
    def gfd_product(self) -> str:
        """nvidia.com/gpu.product: the NVML name with spaces -> '-' (GFD rule)."""
        return self.nvml_name.replace(" ", "-")

    @functools.cached_property
    def unconfirmed_row_fields(self) -> tuple[str, ...]:
        """ROW_FIELDS whose values this board may not share with the model's table."""
        wanted = set(self.unconfirmed)
        if "engines" in wanted:
            wanted.update(ENGINE_KEYS)
        return tuple(f for f in ROW_FIELDS if f in wanted)

    @property
    def notes(self) -> list[str]:
        """Human-readable notes on what is not confirmed for this board."""
        notes = []
        if not self.confirmed:
            notes.append(f"{self.key} ({self.pci_device_id}): {', '.join(self.unconfirmed)} not confirmed for this "
                         f"board: {self.reason}")
        if not self.nvml_name_known:
            notes.append(f"{self.key}: NVML name of this board unknown; the simulator reports '{self.nvml_name}'")
        elif not self.nvml_name_confirmed:
            notes.append(f"{self.key}: NVML name '{self.nvml_name}' is a naming convention, not captured")
        return notes


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
    variants: tuple[GpuVariant, ...] = ()  # primary first; one per PCI device ID
    nvml_name_confirmed: bool = True
    driver_branches: tuple[DriverBranch, ...] = ()
    #: the driver these values are for (`at_driver`); None = the catalog's rows as they are
    selected_driver: str | None = None
    #: what `at_driver` could not confirm or did not know under `selected_driver` (empty: nothing)
    driver_notes: tuple[str, ...] = ()
    #: the catalog's model this one was made from by `at_driver` (None: this is the catalog's)
    catalog_model: GpuModel | None = field(default=None, compare=False, repr=False)

    def at_driver(self, version: str | None) -> GpuModel:
        """This model as driver `version` reports it (module doc): the model itself for the catalog's branch, the
        branch of its own rows or None; else the branch overlay's values, unknown (None) where it has none."""
        if version is None:
            return self
        base = self.catalog_model or self  # idempotent: always from the catalog's rows, one object per driver
        branch = driver_branch(version)
        own = driver_branch(base.driver) if base.driver else None
        if branch in (CATALOG_DRIVER_BRANCH, own) or (not base.mig_capable and base.memory_total_mib is None):
            return base
        return _at_branch(ByIdentity(base), branch, version)

    @property
    def nvml_name(self) -> str:
        return self.nvml_names[0] if self.nvml_names else self.key

    @property
    def primary_variant(self) -> GpuVariant:
        return self.variants[0] if self.variants else _primary_variant(self)

    def variant(self, key: str) -> GpuVariant | None:
        """The variant with this key (case-insensitive)."""
        return next((v for v in self.variants if v.key.lower() == key.lower()), None)

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
        """Human-readable notes on every row that is not confirmed by an observation (GI rows, catalog CI
        placements); the notes of variants are in `variant_notes`."""
        notes = [f"{self.key} {p.name}: {p.reason}" for p in self.gi_profiles if not p.confirmed]
        notes += [f"{self.key} {ci.name} (in {p.name}) CI placements: {ci.placements_reason}"
                  for p in self.gi_profiles for ci in p.compute_instances if not ci.placements_confirmed]
        if not self.confirmed and not notes:
            notes.append(f"{self.key}: table not confirmed")
        return notes

    @property
    def derived(self) -> list[str]:
        """Notes on row values worked out from observed values by a documented rule (see the row sources)."""
        return [f"{self.key} {p.name}: {', '.join(p.derived)} derived" for p in self.gi_profiles if p.derived]

    @property
    def variant_notes(self) -> list[str]:
        return [n for v in self.variants for n in v.notes]


class Catalog:
    """All known GPU models with lookup by key, alias, NVML name, GFD product, PCI ID or EC2 name.

    Every name also resolves to one variant (`resolve`, `variant`): a variant's own key, aliases and NVML name give
    that variant; the model's key and aliases give its primary variant.
    """

    def __init__(self, gpus: list[GpuModel]) -> None:
        self.gpus: dict[str, GpuModel] = {g.key: g for g in gpus}
        self._variants: dict[str, GpuVariant] = {}
        for g in gpus:
            for v in g.variants:
                names = (v.key, *v.aliases, v.nvml_name, v.gfd_product) if v.nvml_name_known else (v.key, *v.aliases)
                for n in names:
                    self._variants.setdefault(n.lower(), v)
            primary = g.primary_variant
            for n in (g.key, *g.aliases, *g.nvml_names, *g.gfd_products):
                self._variants.setdefault(n.lower(), primary)
            # "NVIDIA-H100-80GB-HBM3-MIG-1g.10gb" style products are resolved in find_variant().
        self._pci: dict[int, GpuVariant] = {}
        for g in gpus:
            for v in g.variants:
                if v.pci_device_id_int:  # 0x0: no published PCI ID (RTXPRO4500-32GB); nothing is found by it
                    self._pci.setdefault(v.pci_device_id_int, v)

    def __iter__(self) -> Iterator[GpuModel]:
        return iter(self.gpus.values())

    def __len__(self) -> int:
        return len(self.gpus)

    def find_variant(self, name: str) -> GpuVariant | None:
        """The variant a GPU spec names (key, alias, NVML name, GFD product or 0xDDDDVVVV PCI ID), or None."""
        wanted = name.strip().lower()
        hit = self._variants.get(wanted)
        if hit is None and "-mig-" in wanted:
            hit = self._variants.get(wanted.split("-mig-")[0])
        if hit is None and re.fullmatch(r"0x[0-9a-f]{8}", wanted):
            hit = self._pci.get(int(wanted, 16))
        return hit

    def find(self, name: str) -> GpuModel | None:
        variant = self.find_variant(name)
        return self.gpus.get(variant.model_key) if variant else None

    def get(self, name: str) -> GpuModel:
        """Resolve a key or alias; UnknownNameError lists the known keys."""
        return self.resolve(name)[0]

    def variant(self, name: str) -> GpuVariant:
        """The variant of a GPU spec; UnknownNameError lists the known keys."""
        return self.resolve(name)[1]

    def resolve(self, name: str) -> tuple[GpuModel, GpuVariant]:
        """(model, variant) of a GPU spec such as `H100-80GB`, `H100-PCIE-80GB` or `NVIDIA H100 PCIe`."""
        variant = self.find_variant(name)
        if variant is None:
            raise UnknownNameError(f"unknown GPU '{name}'; known: {', '.join(sorted(self.gpus))} "
                                   f"(variants: {', '.join(self.variant_keys)})")
        return self.gpus[variant.model_key], variant

    @property
    def variant_keys(self) -> list[str]:
        """Keys of the non-primary variants."""
        return sorted(v.key for g in self.gpus.values() for v in g.variants if not v.primary)

    def model_of(self, variant: GpuVariant) -> GpuModel:
        return self.gpus[variant.model_key]

    def by_pci_id(self, device_id: int) -> GpuModel | None:
        """Model for a 0xDDDDVVVV PCI ID (subsystem ignored)."""
        variant = self.variant_by_pci_id(device_id)
        return self.gpus.get(variant.model_key) if variant else None

    def variant_by_pci_id(self, device_id: int) -> GpuVariant | None:
        """Variant for a 0xDDDDVVVV PCI ID (subsystem ignored)."""
        return self._pci.get(device_id & 0xFFFFFFFF)

    def by_ec2(self, name: str, memory_mib: int | None = None) -> GpuModel | None:
        """Model for an EC2 GpuInfo name (+ per-GPU memory to tell A100 40GB from 80GB)."""
        hits = [g for g in self.gpus.values() for e in g.ec2_names
                if e.name.lower() == name.lower() and (memory_mib is None or e.memory_mib == memory_mib)]
        return hits[0] if len(hits) == 1 else None

    @property
    def mig_capable(self) -> list[GpuModel]:
        return [g for g in self.gpus.values() if g.mig_capable]


@functools.cache
def _at_branch(ref: ByIdentity[GpuModel], branch: int, version: str) -> GpuModel:
    """`GpuModel.at_driver` for a branch other than the rows' own (cached per model, branch and version)."""
    model: GpuModel = ref.obj
    overlay = next((b for b in model.driver_branches if b.branch == branch), None)
    where = f"driver {version}"
    if overlay is None:
        reason = (f"no source gives {model.key} profile memory under driver branch R{branch} ({where}); the catalog's "
                  f"rows are R{CATALOG_DRIVER_BRANCH} (docs/catalog-schema.md#driver-branches)")
        memory: dict[str, int] = {}
        total: int | None = None
        source = ""
        unsure: str | None = reason
    else:
        memory, total, source = overlay.memory_mib, overlay.memory_total_mib, overlay.source
        unsure = None if overlay.confirmed else f"R{branch} values of {model.key} unconfirmed: {overlay.reason}"
    rows = []
    unknown = []
    for p in model.gi_profiles:
        value = memory.get(p.name)
        if value is None:
            unknown.append(p.name)
            why = reason if overlay is None else (f"memory under {where} unknown: the R{branch} source shows only "
                                                  f"{', '.join(memory)}")
            rows.append(replace(p, memory_mib=None, confirmed=False, reason=_join_reasons(p.reason, why)))
        else:
            derived = tuple(dict.fromkeys((*p.derived, *overlay.derived))) if overlay else p.derived
            rows.append(replace(p, memory_mib=value, confirmed=p.confirmed and unsure is None,
                                reason=_join_reasons(p.reason, unsure), source=f"{source} (R{branch}); {p.source}",
                                derived=derived))
    notes = []
    if unknown and model.mig_capable:
        why = f"the R{branch} source shows only {', '.join(memory)}" if overlay else f"no source for branch R{branch}"
        notes.append(f"{model.key} under {where}: memory of {', '.join(unknown)} unknown ({why}): `?` in nvidia-smi, "
                     "their memory labels left out")
    if total is None and model.memory_total_mib is not None:
        notes.append(f"{model.key} under {where}: device memory (nvidia.com/gpu.memory) unknown")
    if unsure and overlay is not None:
        notes.append(unsure)
    return replace(model, gi_profiles=tuple(rows), memory_total_mib=total, selected_driver=version,
                   driver_notes=tuple(notes), confirmed=model.confirmed and not notes, catalog_model=model)


def _join_reasons(*reasons: str | None) -> str | None:
    found = [r for r in reasons if r]
    return "; ".join(dict.fromkeys(found)) or None


_COUNT = re.compile(r"^(?P<name>.+?)(?:[x*](?P<n>\d+))?$")
#: GPUs one (simulated) node may have: PCI bus numbers for that many exist, and no real server has more
MAX_NODE_GPUS = 60


def parse_gpu_specs(specs: Iterable[str], catalog: Catalog | None = None) -> list[GpuVariant]:
    """GPU variants in PCI order from items like `H100-80GBx8`, `H100-PCIE-80GB*2` or comma-separated lists
    (the grammar of node.parse_gpu_list, keeping the variant each item names)."""
    cat = catalog or load_catalog()
    found: list[GpuVariant] = []
    for spec in specs:
        for item in filter(None, (s.strip() for s in spec.split(","))):
            m = _COUNT.match(item)
            assert m is not None
            name, count = m["name"], int(m["n"] or 1)
            if cat.find_variant(item) is not None:  # a name that itself ends in x<digits>
                name, count = item, 1
            if count < 1:
                raise InputError(f"GPU count must be at least 1 in '{item}'")
            if len(found) + count > MAX_NODE_GPUS:
                raise InputError(f"at most {MAX_NODE_GPUS} GPUs per node, got {len(found) + count:,} with '{item}'")
            found.extend([cat.variant(name)] * count)
    if not found:
        raise InputError("no GPUs given")
    return found


def spec_pci_device_id(spec: str, catalog: Catalog | None = None) -> int:
    """The 0xDDDDVVVV PCI device ID a GPU of this spec reports (what mig-parted device filters match): the
    variant's own ID (`H100-PCIE-80GB` -> 0x233110DE), the model's primary ID for a model key (`H100-80GB`)."""
    return (catalog or load_catalog()).variant(spec).pci_device_id_int


def spec_pci_device_ids(specs: Iterable[str], catalog: Catalog | None = None) -> list[int]:
    """`spec_pci_device_id` for each GPU of a GPU list (`parse_gpu_specs` grammar), in PCI order."""
    return [v.pci_device_id_int for v in parse_gpu_specs(specs, catalog)]


def _engines(r: MappingReader) -> Engines:
    vals = {k: r.get(k, int, None) for k in ENGINE_KEYS}
    return Engines(**vals)


def _ci(r: MappingReader) -> CiProfile:
    name = r.get("name", str)
    starts: tuple[int, ...] | None = None
    size = None
    pl_confirmed, pl_reason, pl_source = True, None, None
    if r.value.get("placements") is not None:
        pl = r.child("placements")
        if not isinstance(pl.value, dict):
            raise r.fail("'placements' must be a mapping {starts: [...], size: N, source: ...}", "placements")
        starts = tuple(int(x) for x in pl.get("starts", list))
        size = pl.get("size", int)
        pl_confirmed = pl.get("confirmed", bool, True)
        pl_reason = pl.get("reason", str, None)
        pl_source = pl.get("source", str)
        if not pl_confirmed and not pl_reason:
            raise pl.fail("'reason' is required when 'confirmed' is false", "confirmed")
        if size < 1 or any(x < 0 for x in starts) or not starts:
            raise pl.fail("CI placements need starts >= 0 and size >= 1", "starts")
    return CiProfile(name=name, nvml_index=r.get("nvml_index", int), id=r.get("id", int),
                     slices=r.get("slices", int), max_instances=r.get("max_instances", int),
                     sm=r.get("sm", int, None), default=r.get("default", bool, False),
                     confirmed=r.get("confirmed", bool, True), source=r.get("source", str, ""),
                     placement_starts=starts, placement_size=size, placements_confirmed=pl_confirmed,
                     placements_reason=pl_reason, placements_source=pl_source, reason=r.get("reason", str, None))


_DERIVABLE = frozenset({"memory_mib", "nvml_index", "placements", "sm"})


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
    derived = tuple(r.get("derived", list, []))
    if not set(derived) <= _DERIVABLE:
        raise r.fail(f"'derived' may name {', '.join(sorted(_DERIVABLE))}", "derived")
    return GiProfile(
        name=name, id=r.get("id", int), nvml_index=r.get("nvml_index", int),
        max_instances=r.get("max_instances", int), slices=r.get("slices", int),
        sm=r.get("sm", int, None), memory_mib=r.get("memory_mib", int, None),
        engines=_engines(r.child("engines")) if isinstance(r.value.get("engines"), dict)
        else Engines(None, None, None, None, None),
        p2p=r.get("p2p", bool, None), placement_starts=tuple(int(s) for s in starts),
        placement_size=pl.get("size", int), compute_instances=cis,
        coexists_only_with=tuple(co) if co is not None else None,
        confirmed=confirmed, reason=reason, source=r.get("source", str, ""), parsed=parsed, derived=derived)


def _primary_variant(g: GpuModel) -> GpuVariant:
    """The board of a model's first PCI ID and NVML name (its rows carry their own confirmation)."""
    return GpuVariant(key=g.key, model_key=g.key, pci_device_id=g.pci_device_ids[0] if g.pci_device_ids else "0x0",
                      nvml_name=g.nvml_name, nvml_name_confirmed=g.nvml_name_confirmed, aliases=g.aliases,
                      confirmed=True, unconfirmed=(), reason=None, source=g.source, primary=True)


def _variant(r: MappingReader, model_key: str, pci_ids: tuple[str, ...], nvml_names: tuple[str, ...]) -> GpuVariant:
    key = r.get("key", str)
    pci = r.get("pci_device_id", str)
    try:
        known = int(pci, 16) in {int(p, 16) for p in pci_ids[1:]}
    except ValueError:
        known = False
    if not known:
        raise r.fail(f"variant {key}: pci_device_id {pci} must be one of the model's non-primary pci_device_ids",
                     "pci_device_id")
    name = r.get("nvml_name", str, None)
    if name is not None and name not in nvml_names:
        raise r.fail(f"variant {key}: nvml_name '{name}' must be listed in the model's nvml_names", "nvml_name")
    confirmed = r.get("confirmed", bool)
    unconfirmed = tuple(r.get("unconfirmed", list, []))
    reason = r.get("reason", str, None)
    if not set(unconfirmed) <= VARIANT_FIELDS:
        raise r.fail(f"'unconfirmed' may name {', '.join(sorted(VARIANT_FIELDS))}", "unconfirmed")
    if confirmed == bool(unconfirmed) or (not confirmed and not reason):
        raise r.fail("a variant with confirmed: false needs 'unconfirmed' fields and a 'reason'; "
                     "a confirmed one has neither", "confirmed")
    return GpuVariant(key=key, model_key=model_key, pci_device_id=pci,
                      nvml_name=name if name is not None else (nvml_names[0] if nvml_names else model_key),
                      nvml_name_confirmed=name is not None and r.get("nvml_name_confirmed", bool, True),
                      nvml_name_known=name is not None,
                      aliases=tuple(r.get("aliases", list, [])), confirmed=confirmed, unconfirmed=unconfirmed,
                      reason=reason, source=r.get("source", str), primary=False)


def _driver_branch(r: MappingReader, names: set[str], own: str | None) -> DriverBranch:
    branch = r.get("branch", int)
    if branch == CATALOG_DRIVER_BRANCH or (own and branch == driver_branch(own)):
        raise r.fail(f"branch {branch} is the branch of the rows themselves; an overlay is for another branch",
                     "branch")
    driver = r.get("driver", str, None)
    if driver is not None and driver_branch(driver) != branch:
        raise r.fail(f"driver {driver} is not of branch {branch}", "driver")
    memory = r.get("memory_mib", dict, {})
    unknown = sorted(set(memory) - names)
    if unknown:
        raise r.fail(f"memory_mib names {', '.join(map(str, unknown))}, which this GPU has no GI profile of",
                     "memory_mib")
    if not all(isinstance(v, int) and v > 0 for v in memory.values()):
        raise r.fail("memory_mib values must be MiB (integers > 0)", "memory_mib")
    confirmed = r.get("confirmed", bool)
    reason = r.get("reason", str, None)
    if not confirmed and not reason:
        raise r.fail("'reason' is required when 'confirmed' is false", "confirmed")
    derived = tuple(r.get("derived", list, []))
    if not set(derived) <= {"memory_mib"}:
        raise r.fail("'derived' may name memory_mib", "derived")
    return DriverBranch(branch=branch, driver=driver, memory_mib={str(k): int(v) for k, v in memory.items()},
                        memory_total_mib=r.get("memory_total_mib", int, None), confirmed=confirmed, reason=reason,
                        source=r.get("source", str), derived=derived)


def load_gpu_file(path: str | Path) -> GpuModel:
    """Load and check one catalog file; errors name the file, line and key."""
    doc = load_yaml_file(path)
    if not isinstance(doc.data, dict):
        raise InputError(Problem("a GPU catalog file must be a mapping", MappingReader(doc, ()).location()))
    r = MappingReader(doc, ())
    profiles_raw = r.get("gi_profiles", list, [])
    gis = tuple(_gi(r.child("gi_profiles").child(i)) for i in range(len(profiles_raw)))
    ec2 = tuple(Ec2Name(e["name"], int(e["memory_mib"])) for e in r.get("ec2_names", list, []))
    key = r.get("key", str)
    pci_ids = tuple(r.get("pci_device_ids", list, []))
    nvml_names = tuple(r.get("nvml_names", list, []))
    variants_raw = r.get("variants", list, [])
    variants = tuple(_variant(r.child("variants").child(i), key, pci_ids, nvml_names)
                     for i in range(len(variants_raw)))
    covered = sorted(v.pci_device_id_int for v in variants)
    if variants and covered != sorted(int(p, 16) for p in pci_ids[1:]):
        raise r.fail("'variants' must describe each non-primary PCI device ID exactly once", "variants")
    gpu = GpuModel(
        key=key, description=r.get("description", str, ""),
        aliases=tuple(r.get("aliases", list, [])), nvml_names=nvml_names,
        gfd_products=tuple(r.get("gfd_products", list, [])), ec2_names=ec2,
        pci_device_ids=pci_ids, architecture=r.get("architecture", str, ""),
        mig_capable=r.get("mig_capable", bool), memory_total_mib=r.get("memory_total_mib", int, None),
        sm_count=r.get("sm_count", int, None), memory_slots=r.get("memory_slots", int, None),
        compute_slices=r.get("compute_slices", int, None), driver=r.get("driver", str, None),
        min_driver=r.get("min_driver", str, None), confirmed=r.get("confirmed", bool, True),
        source=r.get("source", str), gi_profiles=gis, file=str(path),
        nvml_name_confirmed=r.get("nvml_name_confirmed", bool, True))
    branches_raw = r.get("driver_branches", list, [])
    branches = tuple(_driver_branch(r.child("driver_branches").child(i), {p.name for p in gis}, gpu.driver)
                     for i in range(len(branches_raw)))
    if len({b.branch for b in branches}) != len(branches):
        raise r.fail("'driver_branches' lists a branch twice", "driver_branches")
    gpu = replace(gpu, variants=(_primary_variant(gpu), *variants), driver_branches=branches)
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


#: The user catalog folders in effect (each holds gpus/*.yaml and/or instance-types.yaml; gpus/user_catalog.py
#: checks and sets them). A process-wide value, not a context variable: the simulators' threads must see it too.
_USER_DIRS: tuple[str, ...] = ()


def user_catalog_dirs() -> tuple[str, ...]:
    """The user catalog folders in effect (absolute paths, in the order given; later ones win)."""
    return _USER_DIRS


def set_user_catalog_dirs(dirs: tuple[str, ...]) -> tuple[str, ...]:
    """Make `dirs` the user catalog folders in effect and return the previous ones; only gpus/user_catalog.py calls
    this, after loading everything once, so a folder with an error is never half in effect."""
    global _USER_DIRS
    previous, _USER_DIRS = _USER_DIRS, tuple(dirs)
    return previous


def user_gpu_dir(folder: str) -> str:
    """Where a user catalog folder keeps its GPU entries (as `capture -o DIR/gpus/` writes them)."""
    return str(Path(folder) / "gpus")


@functools.cache
def _load_dirs(dirs: tuple[str, ...]) -> Catalog:
    """A new Catalog of every entry in `dirs`; an error leaves no catalog. Later folders override earlier ones: an
    entry replaces the one of its key, and its names and PCI IDs resolve to it before an earlier folder's (a user's
    capture of a board is newer evidence than the shipped row)."""
    folders: list[list[GpuModel]] = []
    for d in dirs:
        folders.append([_load_entry(f) for f in sorted(Path(d).glob("*.yaml"))])
    gpus: dict[str, GpuModel] = {}
    for entries in reversed(folders):
        for g in entries:
            gpus.setdefault(g.key, g)
    return Catalog(list(gpus.values()))


def _load_entry(path: Path) -> GpuModel:
    """`load_gpu_file`, with shapes its checks do not expect (a user's file is hostile input) named by file."""
    try:
        return load_gpu_file(path)
    except MigConformanceError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise InputError(f"{path}: not a GPU catalog entry (docs/catalog-schema.md): {type(exc).__name__}: "
                         f"{exc}") from None


def load_catalog(extra_dirs: tuple[str, ...] = (), user_dirs: tuple[str, ...] | None = None) -> Catalog:
    """The shipped catalog, plus the user catalog folders in effect (`user_dirs`, default `user_catalog_dirs()`)
    and `extra_dirs` of entries (e.g. captured ones) that add or override models."""
    users = _USER_DIRS if user_dirs is None else user_dirs
    return _load_dirs((str(catalog_dir()), *(user_gpu_dir(d) for d in users), *extra_dirs))
