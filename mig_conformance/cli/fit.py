"""`mig-conformance fit GPU PROFILE=COUNT ...`: does this set of MIG devices fit one GPU, and where."""

from __future__ import annotations

import argparse

from ..catalog import load_catalog
from ..errors import InputError
from ..placement import fit
from . import EXIT_FAIL, EXIT_OK
from .output import devices_text, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fit", help="check that MIG devices fit one GPU",
                       description="Check that PROFILE=COUNT MIG devices fit on one GPU; exit 1 if not.")
    p.add_argument("gpu", metavar="GPU", help="catalog key or alias, e.g. H100-80GB")
    p.add_argument("devices", metavar="PROFILE=COUNT", nargs="+", help="e.g. 3g.40gb=1 2g.20gb=1 1c.3g.40gb=3")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(run=run)


def parse_counts(items: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        name, sep, n = item.partition("=")
        if not sep or not n.strip().lstrip("-").isdigit():
            raise InputError(f"expected PROFILE=COUNT, got '{item}'")
        counts[name.strip()] = counts.get(name.strip(), 0) + int(n)
    return counts


def run(args: argparse.Namespace) -> int:
    gpu = load_catalog().get(args.gpu)
    result = fit(gpu, parse_counts(args.devices))
    if args.json:
        print_json(result.as_dict())
    elif result.fits:
        print(f"fits on {gpu.key}: {devices_text(result.devices)}")
        for p in result.placement:
            devices = ", ".join(p.compute_instances)
            print(f"  GI {p.gi_id:2d}  {p.profile:14s} placement {p.start}:{p.size}  devices: {devices}")
    else:
        print(f"does not fit on {gpu.key}: {result.reason}")
    if not args.json:
        for note in result.unconfirmed:
            print(f"unconfirmed: {note}")
    return EXIT_OK if result.fits else EXIT_FAIL
