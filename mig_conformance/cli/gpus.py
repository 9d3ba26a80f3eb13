"""`mig-conformance gpus`: the GPU catalog, its board variants and what is not confirmed.

`gpus` lists the models and the board variants (PCI IDs) that share their tables; `gpus GPU` shows one profile
table (GPU = a model key, a variant such as H100-PCIE-80GB, an alias, NVML name or PCI ID). Values the catalog
does not know print as `?` (for a variant also those it does not confirm for that board); `unconfirmed:` lines
give the reasons, `derived:` lines the values worked out from observed ones by a documented rule.
"""

from __future__ import annotations

import argparse
from typing import Any

from mig_conformance.cli.failures import input_failure
from mig_conformance.cli.output import print_json, table
from mig_conformance.common.errors import MigConformanceError
from mig_conformance.gpus.catalog import ENGINE_KEYS, Catalog, GiProfile, GpuModel, GpuVariant, load_catalog
from mig_conformance.gpus.provenance import gpu_provenance


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("gpus", help="list the GPU catalog", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("gpu", nargs="?", metavar="GPU", help="show one GPU's profile table (model or board variant)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(run=run)


def _variant_dict(v: GpuVariant) -> dict[str, Any]:
    return {"key": v.key, "model": v.model_key, "primary": v.primary, "pci_device_id": v.pci_device_id,
            "nvml_name": v.nvml_name, "nvml_name_known": v.nvml_name_known,
            "nvml_name_confirmed": v.nvml_name_confirmed,
            "aliases": list(v.aliases), "confirmed": v.confirmed, "unconfirmed": list(v.unconfirmed),
            "reason": v.reason, "notes": v.notes, "source": v.source}


def _shown(g: GpuModel, variant: GpuVariant, p: GiProfile) -> dict[str, Any]:
    """A profile row as this board's values: None where the catalog does not know or confirm it."""
    hidden = set(variant.unconfirmed_row_fields)
    engines = {k: None if k in hidden else v for k, v in p.engines.as_dict().items()}
    return {"name": p.name, "id": p.id, "nvml_index": p.nvml_index, "max_instances": p.max_instances,
            "slices": p.slices, "sm": None if "sm" in hidden else p.sm,
            "memory_mib": None if "memory_mib" in hidden else p.memory_mib, "engines": engines,
            "placements": [list(x) for x in p.placements], "confirmed": p.confirmed and variant.confirmed,
            "reason": p.reason, "derived": list(p.derived),
            "compute_instances": [{"name": ci.name, "placements": [list(x) for x in ci.placements],
                                   "placements_from_catalog": ci.placements_from_catalog,
                                   "placements_confirmed": ci.placements_confirmed} for ci in p.compute_instances]}


def _model_dict(g: GpuModel, variant: GpuVariant | None = None) -> dict[str, Any]:
    shown = variant or g.primary_variant
    return {"key": g.key, "description": g.description, "nvml_names": list(g.nvml_names),
            "pci_device_ids": list(g.pci_device_ids), "mig_capable": g.mig_capable,
            "memory_total_mib": g.memory_total_mib, "memory_slots": g.memory_slots,
            "compute_slices": g.compute_slices, "driver": g.driver, "confirmed": g.confirmed,
            "unconfirmed": g.unconfirmed + (shown.notes if variant else g.variant_notes), "derived": g.derived,
            "source": g.source, "provenance": gpu_provenance(g).as_dict(), "variant": shown.key,
            "variants": [_variant_dict(v) for v in g.variants],
            "profiles": [_shown(g, shown, p) for p in g.gi_profiles]}


def run(args: argparse.Namespace) -> int:
    catalog = load_catalog()
    if args.gpu:
        try:
            model, variant = catalog.resolve(args.gpu)
        except MigConformanceError as exc:
            return input_failure(exc, args.json, gpu=args.gpu)
        if args.json:
            print_json({"gpus": [_model_dict(model, variant)]})
            return 0
        return _show(model, variant)
    gpus = sorted(catalog, key=lambda g: (not g.mig_capable, g.key))
    if args.json:
        print_json({"gpus": [_model_dict(g) for g in gpus]})
        return 0
    return _list(catalog, gpus)


def _list(catalog: Catalog, gpus: list[GpuModel]) -> int:
    rows = [[g.key, "yes" if g.mig_capable else "no", g.pci_device_ids[0] if g.pci_device_ids else "-",
             str(g.memory_total_mib or "?"), str(g.memory_slots or "-"), str(len(g.gi_profiles)),
             _confirmed_text(g)] for g in gpus]
    print(table(rows, ["GPU", "MIG", "PCI ID", "MiB", "slots", "profiles", "confirmed"]))
    variants = [v for g in gpus for v in g.variants if not v.primary]
    if variants:
        print()
        print("Board variants (share the table of their GPU; their own PCI ID and NVML name):")
        print(table([[v.key, v.model_key, v.pci_device_id, v.nvml_name if v.nvml_name_known else "?",
                      "yes" if v.confirmed else f"no: {', '.join(v.unconfirmed)}"] for v in variants],
                    ["variant", "GPU", "PCI ID", "NVML name", "confirmed"]))
    users = [gpu_provenance(g) for g in gpus if gpu_provenance(g).origin != "shipped"]
    if users:
        print()
        print("Not shipped with the kit (they add to or override the shipped entries):")
        for prov in users:
            print(f"  {prov.line()}")
    print("(mig-conformance gpus GPU shows a profile table and what is unconfirmed)")
    return 0


def _cell(value: int | None) -> str:
    return "?" if value is None else str(value)


def _show(g: GpuModel, variant: GpuVariant) -> int:
    name = variant.nvml_name if variant.nvml_name_known else "?"
    board = "" if variant.primary else f" (board {variant.key}, NVML name {name})"
    memory = g.memory_total_mib if "memory_total_mib" not in variant.unconfirmed else None
    print(f"{g.key}: {g.description}{board}; PCI {variant.pci_device_id}"
          f"; {memory or '?'} MiB; driver {g.driver or '?'}")
    if variant.primary and len(g.pci_device_ids) > 1:
        print(f"other boards: {', '.join(f'{v.key} ({v.pci_device_id})' for v in g.variants[1:])}")
    print(f"source: {g.source}")
    print(f"catalog: {gpu_provenance(g).line()}")
    if not variant.primary:
        print(f"board source: {variant.source}")
    rows = []
    for p in g.gi_profiles:
        row = _shown(g, variant, p)
        cis = [ci.name + (f" @{{{','.join(str(s) for s, _ in ci.placements)}}}:{ci.placements[0][1]}"
                          if ci.placements_from_catalog else "")
               for ci in p.compute_instances if not ci.default or ci.placements_from_catalog]
        rows.append([p.name, str(p.id), str(p.nvml_index), str(p.max_instances), _cell(row["sm"]),
                     _cell(row["memory_mib"]), "/".join(_cell(row["engines"][k]) for k in ENGINE_KEYS),
                     "{" + ",".join(map(str, p.placement_starts)) + f"}}:{p.placement_size}",
                     ", ".join(cis) or "-"])
    print(table(rows, ["profile", "ID", "idx", "max", "SM", "MiB", "CE/DEC/ENC/JPG/OFA", "placements", "CIs"]))
    for note in [*g.unconfirmed, *variant.notes]:
        print(f"unconfirmed: {note}")
    for note in g.derived:
        print(f"derived: {note}")
    return 0


def _confirmed_text(gpu: GpuModel) -> str:
    """'yes', or what is not: GI rows and CI placements counted apart (notes are listed below the table)."""
    rows = sum(not p.confirmed for p in gpu.gi_profiles)
    placements = sum(not ci.placements_confirmed for p in gpu.gi_profiles for ci in p.compute_instances)
    parts = [f"{rows} of {len(gpu.gi_profiles)} rows unconfirmed"] if rows else []
    parts += [f"{placements} CI placement{'s' if placements != 1 else ''} unconfirmed"] if placements else []
    if not parts and gpu.unconfirmed:
        parts = ["table unconfirmed"]
    return ", ".join(parts) or "yes"
