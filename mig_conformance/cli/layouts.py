"""`mig-conformance layouts GPU`: every MIG layout that fits one GPU."""

from __future__ import annotations

import argparse

from mig_conformance.cli import EXIT_FAIL, EXIT_OK
from mig_conformance.cli.failures import input_failure
from mig_conformance.cli.output import devices_text, print_json
from mig_conformance.common.errors import MigConformanceError
from mig_conformance.gpus.catalog import load_catalog
from mig_conformance.mig.placement import enumerate_layouts, maximal_layouts


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("layouts", help="enumerate the layouts that fit one GPU",
                       description="Every non-empty multiset of GPU-instance profiles that fits one GPU: exit 0, "
                                   "1 for a GPU that is not MIG capable, 2 for an unknown GPU.")
    p.add_argument("gpu", metavar="GPU", help="catalog key or alias, e.g. H100-80GB")
    p.add_argument("--maximal", action="store_true", help="only layouts to which nothing more can be added")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        gpu = load_catalog().get(args.gpu)
    except MigConformanceError as exc:
        return input_failure(exc, args.json, gpu=args.gpu, count=0, layouts=[])
    if not gpu.mig_capable:
        reason = f"{gpu.key} is not MIG capable: it has no MIG layouts"
        if args.json:
            print_json({"gpu": gpu.key, "mig_capable": False, "maximal": args.maximal, "count": 0, "layouts": [],
                        "reason": reason, "unconfirmed": gpu.unconfirmed})
        else:
            print(reason)
        return EXIT_FAIL
    layouts = enumerate_layouts(gpu)
    if args.maximal:
        layouts = maximal_layouts(gpu, layouts)
    if args.json:
        print_json({"gpu": gpu.key, "mig_capable": True, "maximal": args.maximal, "count": len(layouts),
                    "layouts": [lay.as_dict() for lay in layouts], "unconfirmed": gpu.unconfirmed})
        return EXIT_OK
    kind = "maximal layouts" if args.maximal else "layouts"
    print(f"{gpu.key}: {len(layouts)} {kind}")
    for lay in layouts:
        where = " ".join(f"{p}@{s}:{z}" for p, s, z in lay.placement)
        print(f"  {devices_text(lay.devices):48s} {where}")
    for note in gpu.unconfirmed:
        print(f"unconfirmed: {note}")
    return EXIT_OK
