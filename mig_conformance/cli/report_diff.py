"""`mig-conformance report diff A B`: what changed between two report bundles (mig_conformance/report/diff.py)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mig_conformance.cli import EXIT_FAIL, EXIT_OK, EXIT_USAGE
from mig_conformance.cli.output import print_json
from mig_conformance.report.diff import diff_bundles, load_bundle, render_text
from mig_conformance.report.model import ReportFormatError
from mig_conformance.report.render_diff_html import render_diff_html

DESCRIPTION = ("compare two bundles per node category and test (verdicts, values, versions; node names, timings and "
               "backend facts normalised); exit 0 same verdicts, 1 verdicts differ, 2 a missing or invalid bundle")


def register_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundles", nargs="*", metavar="A B", help="with diff: the two bundle folders to compare")
    p.add_argument("--json", action="store_true", help="with diff: print one JSON document")
    p.add_argument("--html", metavar="FILE", help="with diff: also write a self-contained HTML page")


def refuse_options(args: argparse.Namespace) -> None:
    if args.bundles or args.json or args.html:
        args.usage_error("extra arguments: give one bundle folder, or: report diff A B [--json] [--html FILE]")


def _write(path: str, text: str) -> None:
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
    os.replace(tmp, target)


def run(args: argparse.Namespace) -> int:
    if len(args.bundles) != 2:
        args.usage_error(f"report diff takes two bundle folders, got {len(args.bundles)}")
    try:
        a, b = (load_bundle(p) for p in args.bundles)
    except ReportFormatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    d = diff_bundles(a, b)
    if args.html:
        try:
            _write(args.html, render_diff_html(d))
        except OSError as exc:
            print(f"error: {args.html}: cannot write: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_USAGE
    if args.json:
        print_json(d.as_dict())
    else:
        sys.stdout.write(render_text(d))
        if args.html:
            print(f"wrote {args.html}")
    return EXIT_FAIL if d.verdicts_differ else EXIT_OK
