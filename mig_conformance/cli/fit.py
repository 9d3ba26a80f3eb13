"""`mig-conformance fit GPU PROFILE=COUNT ...`: does this set of MIG devices fit one GPU, and where."""

from __future__ import annotations

import argparse

from mig_conformance.cli import EXIT_FAIL, EXIT_OK
from mig_conformance.cli.failures import input_failure
from mig_conformance.cli.output import devices_text, print_json
from mig_conformance.common.errors import InputError, MigConformanceError
from mig_conformance.gpus.catalog import load_catalog
from mig_conformance.gpus.profile_names import ProfileFormatError, parse_profile
from mig_conformance.mig.placement import fit


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("fit", help="check that MIG devices fit one GPU",
                       description="Check that PROFILE=COUNT MIG devices fit on one GPU: exit 0 if they do, 1 if "
                                   "not, 2 for an unknown GPU or a malformed PROFILE=COUNT.")
    p.add_argument("gpu", metavar="GPU", help="catalog key or alias, e.g. H100-80GB")
    p.add_argument("devices", metavar="PROFILE=COUNT", nargs="+", help="e.g. 3g.40gb=1 2g.20gb=1 1c.3g.40gb=3")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(run=run)


def parse_counts(items: list[str]) -> dict[str, int]:
    """`PROFILE=COUNT` items; COUNT is a non-negative decimal integer (repeated profiles add up) and PROFILE a MIG
    profile name (go-nvlib's grammar: a malformed name is a usage error, a well-formed one the GPU lacks does not
    fit)."""
    counts: dict[str, int] = {}
    for item in items:
        name, sep, n = item.partition("=")
        name, n = name.strip(), n.strip()
        if not sep or not name or not (n.isascii() and n.isdigit()):
            raise InputError(f"expected PROFILE=COUNT with a non-negative integer COUNT, got '{item}'")
        try:
            parse_profile(name)
        except ProfileFormatError as exc:
            raise InputError(f"'{item}': '{name}' is not a MIG profile name ({exc}), e.g. 3g.40gb or "
                             "1c.3g.40gb") from None
        counts[name] = counts.get(name, 0) + int(n)
    return counts


def run(args: argparse.Namespace) -> int:
    try:
        gpu = load_catalog().get(args.gpu)
        devices = parse_counts(args.devices)
    except MigConformanceError as exc:
        return input_failure(exc, args.json, gpu=args.gpu, fits=False)
    result = fit(gpu, devices)
    if args.json:
        print_json(result.as_dict())
    elif result.fits:
        print(f"fits on {gpu.key}: {devices_text(result.devices)}")
        for p in result.placement:
            devices_in = ", ".join(p.compute_instances)
            print(f"  GI {p.gi_id:2d}  {p.profile:14s} placement {p.start}:{p.size}  devices: {devices_in}")
    else:
        print(f"does not fit on {gpu.key}: {result.reason}")
    if not args.json:
        for note in result.unconfirmed:
            print(f"unconfirmed: {note}")
    return EXIT_OK if result.fits else EXIT_FAIL
