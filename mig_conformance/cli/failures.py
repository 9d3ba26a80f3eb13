"""Errors of CLI commands: `error:` lines on stderr, or with --json exactly one JSON document on stdout."""

from __future__ import annotations

import sys
from typing import Any

from mig_conformance.cli import EXIT_USAGE
from mig_conformance.cli.output import print_json
from mig_conformance.common.errors import InputError, MigConformanceError, Problem


def problems_of(exc: MigConformanceError) -> list[Problem]:
    return list(exc.problems) if isinstance(exc, InputError) else [Problem(str(exc))]


def report_failure(exc: MigConformanceError, as_json: bool, code: int, **fields: Any) -> int:
    """Report `exc`: `{"error": ..., "errors": [...], **fields}` on stdout with --json, else `error:` lines on
    stderr. Returns `code`."""
    problems = problems_of(exc)
    if as_json:
        print_json({**fields, "error": str(problems[0]) if problems else str(exc),
                    "errors": [p.as_dict() for p in problems]})
    else:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
    return code


def input_failure(exc: MigConformanceError, as_json: bool, **fields: Any) -> int:
    """Input that cannot be used (see `report_failure`): EXIT_USAGE."""
    return report_failure(exc, as_json, EXIT_USAGE, **fields)
