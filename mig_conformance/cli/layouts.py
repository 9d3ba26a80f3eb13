"""`mig-conformance layouts GPU`: every MIG layout that fits one GPU."""

from __future__ import annotations

import argparse

from ..catalog import load_catalog
from ..placement import enumerate_layouts, maximal_layouts
from .output import devices_text, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("layouts", help="enumerate the layouts that fit one GPU",
                       description="Every non-empty multiset of GPU-instance profiles that fits one GPU.")
    p.add_argument("gpu", metavar="GPU", help="catalog key or alias, e.g. H100-80GB")
    p.add_argument("--maximal", action="store_true", help="only layouts to which nothing more can be added")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    gpu = load_catalog().get(args.gpu)
    layouts = enumerate_layouts(gpu)
    if args.maximal:
        layouts = maximal_layouts(gpu, layouts)
    if args.json:
        print_json({"gpu": gpu.key, "maximal": args.maximal, "count": len(layouts),
                    "layouts": [lay.as_dict() for lay in layouts], "unconfirmed": gpu.unconfirmed})
        return 0
    kind = "maximal layouts" if args.maximal else "layouts"
    print(f"{gpu.key}: {len(layouts)} {kind}")
    for lay in layouts:
        where = " ".join(f"{p}@{s}:{z}" for p, s, z in lay.placement)
        print(f"  {devices_text(lay.devices):48s} {where}")
    for note in gpu.unconfirmed:
        print(f"unconfirmed: {note}")
    return 0
