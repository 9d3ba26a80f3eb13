"""`mig-conformance gpus`: the GPU catalog."""

from __future__ import annotations

import argparse

from ..catalog import load_catalog
from .output import print_json, table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gpus", help="list the GPU catalog", description="List the GPU models the kit knows.")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    catalog = load_catalog()
    gpus = sorted(catalog, key=lambda g: (not g.mig_capable, g.key))
    if args.json:
        print_json({"gpus": [{
            "key": g.key, "description": g.description, "nvml_names": list(g.nvml_names),
            "pci_device_ids": list(g.pci_device_ids), "mig_capable": g.mig_capable,
            "memory_total_mib": g.memory_total_mib, "memory_slots": g.memory_slots,
            "compute_slices": g.compute_slices, "driver": g.driver, "confirmed": g.confirmed,
            "unconfirmed": g.unconfirmed, "source": g.source,
            "profiles": [{"name": p.name, "id": p.id, "nvml_index": p.nvml_index, "max_instances": p.max_instances,
                          "slices": p.slices, "sm": p.sm, "memory_mib": p.memory_mib,
                          "engines": p.engines.as_dict(), "placements": [list(x) for x in p.placements],
                          "confirmed": p.confirmed} for p in g.gi_profiles]}
            for g in gpus]})
        return 0
    rows = [[g.key, "yes" if g.mig_capable else "no", g.pci_device_ids[0] if g.pci_device_ids else "-",
             str(g.memory_total_mib or "?"), ",".join(p.name for p in g.gi_profiles) or "-",
             "yes" if g.confirmed else "partly"] for g in gpus]
    print(table(rows, ["GPU", "MIG", "PCI ID", "MiB", "profiles", "confirmed"]))
    for g in gpus:
        for note in g.unconfirmed:
            print(f"unconfirmed: {note}")
    return 0
