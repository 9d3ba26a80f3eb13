"""`mig-conformance validate CONFIG.yaml`: check a mig-parted config against a node's GPUs.

Exit 0 valid, 1 invalid (mig-parted rejects the file, or the config cannot be applied as written), 2 for input
that cannot be used at all: an unreadable file, text that is not YAML, an empty file (nothing but whitespace or
comments), an unknown or missing --config, an unknown GPU or instance type. `-` reads standard input.
"""

from __future__ import annotations

import argparse

from mig_conformance.cli import EXIT_FAIL, EXIT_OK, EXIT_USAGE
from mig_conformance.cli.failures import input_failure
from mig_conformance.cli.output import devices_text, print_json
from mig_conformance.common.errors import InputError, Location, MigConformanceError, Problem
from mig_conformance.gpus.gpu_list import gpu_device_ids, node_gpus
from mig_conformance.mig.spec import Spec, load_spec, spec_name
from mig_conformance.validation import ValidationReport, validate_node
from mig_conformance.validation.availability import mark_not_applicable, mig_unavailable


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("validate", help="validate a mig-parted config for a node",
                       description="Validate a mig-parted v1 file (or a ConfigMap holding one) for a node's GPUs: "
                                   "exit 0 if valid, 1 if invalid, 2 if the input cannot be used.")
    p.add_argument("file", metavar="CONFIG.yaml", help="mig-parted file or ConfigMap manifest; - reads standard input")
    p.add_argument("--config", "-c", metavar="NAME", help="named config (required if the file has several)")
    p.add_argument("--gpu", action="append", metavar="GPU[xN]", help="GPU models in PCI order, e.g. H100-80GBx8")
    p.add_argument("--instance-type", metavar="TYPE", help="EC2 instance type, e.g. p5.48xlarge")
    p.add_argument("--all-configs", action="store_true", help="validate every named config in the file")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(run=run)


def exit_code(reports: list[ValidationReport]) -> int:
    if any(r.input_error for r in reports):
        return EXIT_USAGE
    return EXIT_OK if all(r.valid for r in reports) else EXIT_FAIL


def _mig_parted_line(report: ValidationReport) -> str:
    mp = report.mig_parted
    parts = []
    for label, key, result_key in (("apply", "apply", "apply_result"),
                                   ("assert after apply", "assert_after_apply", "assert_result")):
        result = mp.get(result_key) or {}
        detail = result.get("reason") or (result.get("message") if mp.get(key) == "failure" else None)
        parts.append(f"{label}: {mp.get(key)}" + (f" ({detail})" if detail else ""))
    return "  mig-parted on a fresh node: " + "; ".join(parts)


def print_text(report: ValidationReport, node: str) -> None:
    config = f": config '{report.config}'" if report.config is not None else ""
    print(f"{report.file}{config} on {node}: {'VALID' if report.valid else 'INVALID'}")
    for g in report.gpus:
        state = ("not selected" if g.mig_enabled is None else
                 "MIG disabled" if not g.mig_enabled else devices_text(g.devices))
        if g.fit is not None and not g.fit.fits:
            state += " -> not applicable (see errors)"
        print(f"  GPU {g.index} {g.model}: {state}")
    if report.mig_parted:
        print(_mig_parted_line(report))
    for e in report.errors:
        print(f"  error: {e}")
    for w in report.warnings:
        print(f"  warning: {w}")


def _usable(spec: Spec, args: argparse.Namespace) -> None:
    """InputError (exit 2) for a file with nothing to validate, and for a multi-config file without a choice."""
    if spec.empty:
        raise InputError(Problem("the file is empty (nothing but whitespace or comments): no mig-parted config to "
                                 "check", Location(spec.file)))
    if args.config is None and not args.all_configs and len(spec.configs) > 1 and not spec.problems:
        names = ", ".join(spec.configs)
        raise InputError(Problem(f"{len(spec.configs)} configs in this file: choose one with --config NAME, or "
                                 f"check every one with --all-configs (configs: {names})", Location(spec.file)))


def tally(reports: list[ValidationReport]) -> dict[str, int]:
    """How many configs are valid and invalid (the summary line of --all-configs)."""
    valid = sum(r.valid for r in reports)
    return {"configs": len(reports), "valid": valid, "invalid": len(reports) - valid}


def run(args: argparse.Namespace) -> int:
    if args.all_configs and args.config is not None:
        return input_failure(InputError("--all-configs checks every config of the file: give it or --config "
                                        f"{args.config}, not both"), args.json, valid=False, file=args.file)
    try:
        node, gpus = node_gpus(args.gpu, args.instance_type)
        device_ids = gpu_device_ids(args.gpu)
        spec = load_spec(args.file)
        _usable(spec, args)
    except MigConformanceError as exc:
        return input_failure(exc, args.json, valid=False, file=spec_name(args.file))
    usable = spec.configs and not spec.problems
    names = list(spec.configs) if args.all_configs and usable else [args.config]
    try:
        reports = [validate_node(spec, name, gpus, node, device_ids=device_ids) for name in names]
        unavailable = mig_unavailable(args.instance_type)
        if unavailable:
            reports = [mark_not_applicable(r, unavailable) if not r.input_error else r for r in reports]
    except MigConformanceError as exc:  # e.g. more GPUs than a node can have
        return input_failure(exc, args.json, valid=False, file=spec.file)
    if args.json:
        print_json(reports[0].as_dict() if not (args.all_configs and usable) else
                   {"valid": all(r.valid for r in reports), "tally": tally(reports),
                    "configs": [r.as_dict() for r in reports]})
    else:
        for r in reports:
            print_text(r, node)
        if args.all_configs and usable:
            t = tally(reports)
            print(f"{spec.file} on {node}: {t['configs']} configs: {t['valid']} valid, {t['invalid']} invalid")
    return exit_code(reports)
