"""`mig-conformance gpus`: the GPU catalog."""

from __future__ import annotations

import argparse

from ..catalog import load_catalog
from .output import print_json, table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gpus", help="list the GPU catalog", description="List the GPU models the kit knows.")
    p.add_argument("gpu", nargs="?", metavar="GPU", help="show one GPU's profile table")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    catalog = load_catalog()
    gpus = [catalog.get(args.gpu)] if args.gpu else sorted(catalog, key=lambda g: (not g.mig_capable, g.key))
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
    if args.gpu:
        return _show(gpus[0])
    rows = [[g.key, "yes" if g.mig_capable else "no", g.pci_device_ids[0] if g.pci_device_ids else "-",
             str(g.memory_total_mib or "?"), str(g.memory_slots or "-"), str(len(g.gi_profiles)),
             "yes" if not g.unconfirmed else f"{len(g.unconfirmed)} rows unconfirmed"] for g in gpus]
    print(table(rows, ["GPU", "MIG", "PCI ID", "MiB", "slots", "profiles", "confirmed"]))
    print("(mig-conformance gpus GPU shows a profile table and what is unconfirmed)")
    return 0


def _show(g) -> int:
    print(f"{g.key}: {g.description}; PCI {', '.join(g.pci_device_ids)}; {g.memory_total_mib or '?'} MiB; "
          f"driver {g.driver or '?'}")
    print(f"source: {g.source}")
    rows = [[p.name, str(p.id), str(p.nvml_index), str(p.max_instances), str(p.sm if p.sm is not None else "?"),
             str(p.memory_mib if p.memory_mib is not None else "?"),
             "/".join("?" if v is None else str(v) for v in p.engines.as_dict().values()),
             "{" + ",".join(map(str, p.placement_starts)) + f"}}:{p.placement_size}",
             ",".join(ci.name for ci in p.compute_instances if not ci.default) or "-"]
            for p in g.gi_profiles]
    print(table(rows, ["profile", "ID", "idx", "max", "SM", "MiB", "CE/DEC/ENC/JPG/OFA", "placements", "CIs"]))
    for note in g.unconfirmed:
        print(f"unconfirmed: {note}")
    return 0
