"""`mig-conformance validate CONFIG.yaml`: check a mig-parted config against a node's GPUs."""

from __future__ import annotations

import argparse

from ..mig.spec import load_spec
from ..node import node_gpus
from ..validation import validate_node
from . import EXIT_FAIL, EXIT_OK
from .output import devices_text, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="validate a mig-parted config for a node",
                       description="Validate a mig-parted v1 file (or a ConfigMap holding one) for a node's GPUs; "
                                   "exit 1 if invalid.")
    p.add_argument("file", metavar="CONFIG.yaml")
    p.add_argument("--config", "-c", metavar="NAME", help="named config (required if the file has several)")
    p.add_argument("--gpu", action="append", metavar="GPU[xN]", help="GPU models in PCI order, e.g. H100-80GBx8")
    p.add_argument("--instance-type", metavar="TYPE", help="EC2 instance type, e.g. p5.48xlarge")
    p.add_argument("--all-configs", action="store_true", help="validate every named config in the file")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    node, gpus = node_gpus(args.gpu, args.instance_type)
    spec = load_spec(args.file)
    names = sorted(spec.configs) if args.all_configs else [args.config]
    reports = [validate_node(spec, name, gpus, node) for name in names]
    if args.json:
        print_json(reports[0].as_dict() if len(reports) == 1 else
                   {"valid": all(r.valid for r in reports), "configs": [r.as_dict() for r in reports]})
    else:
        for r in reports:
            print(f"{r.file}: config '{r.config}' on {node}: {'VALID' if r.valid else 'INVALID'}")
            for g in r.gpus:
                state = ("not selected" if g.mig_enabled is None else
                         "MIG disabled" if not g.mig_enabled else devices_text(g.devices))
                if g.fit is not None and not g.fit.fits:
                    state += " -> not applicable (see errors)"
                print(f"  GPU {g.index} {g.model}: {state}")
            for e in r.errors:
                print(f"  error: {e}")
            for w in r.warnings:
                print(f"  warning: {w}")
    return EXIT_OK if all(r.valid for r in reports) else EXIT_FAIL
