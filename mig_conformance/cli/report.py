"""`mig-conformance report DIR`: re-render report.md and report.html of a bundle from its summary.json;
`mig-conformance report diff A B`: compare two bundles (cli/report_diff.py)."""

from __future__ import annotations

import argparse
import sys

from mig_conformance.cli import EXIT_OK, EXIT_USAGE, report_diff
from mig_conformance.report.bundle import rerender
from mig_conformance.report.model import ReportFormatError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("report", help="re-render report.md/report.html from a bundle's summary.json",
                       description="Re-create report.md and report.html in DIR from DIR/summary.json "
                                   "(and DIR/TARGET.yaml when present). Exit 2 if DIR holds no valid summary. "
                                   "`report diff A B`: " + report_diff.DESCRIPTION)
    p.add_argument("dir", metavar="DIR", help="a report bundle folder (or: diff A B)")
    report_diff.register_options(p)
    p.set_defaults(run=run, usage_error=p.error)


def run(args: argparse.Namespace) -> int:
    if args.dir == "diff" and args.bundles:
        return report_diff.run(args)
    report_diff.refuse_options(args)
    try:
        written = rerender(args.dir)
    except ReportFormatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"error: {args.dir}: cannot write the report: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for path in written:
        print(f"wrote {path}")
    return EXIT_OK
