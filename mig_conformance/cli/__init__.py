"""The `mig-conformance` command line. Exit codes (docs/hardening.md#exit-codes): 0 ok/valid/fits, 1 invalid/does
not fit, 2 usage error or unusable input, 3 internal error (a bug of the kit; never 1, which means INVALID)."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from mig_conformance.common.errors import MigConformanceError

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
#: set to 1 to see the traceback of an internal error
DEBUG_ENV = "MIG_CONFORMANCE_DEBUG"

# Each command lives in its own module exposing register(subparsers) and run(args) -> int.
COMMAND_MODULES = (
    "gpus", "layouts", "fit", "validate", "smi", "capture", "mig_parted", "expect", "report", "clusters", "restore",
    "cluster", "eks_token", "rbac", "generate_config", "diagnose",
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # usage errors exit 2 with a clear line, as argparse does
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


class _CommandParser(_Parser):
    """A command's parser: an argument it does not know is its own usage error, shown with its own usage (argparse
    hands unknown arguments up to the top-level parser, which would print the top-level usage)."""

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


def build_parser() -> argparse.ArgumentParser:
    from mig_conformance import __version__

    parser = _Parser(prog="mig-conformance", description=__doc__)
    parser.add_argument("--version", action="version", version=f"mig-conformance {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_CommandParser)
    sub.required = True
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.endswith(f".cli.{name}"):
                continue  # command not built yet
            raise
        module.register(sub)
    from mig_conformance.cli.catalogs import add_catalog_option

    add_catalog_option(parser)
    return parser


def internal_error(exc: BaseException, as_json: bool = False) -> int:
    """A bug of the kit: one line naming the exception, where to report it and how to see the traceback; exit 3."""
    message = " ".join(str(exc).split())
    if len(message) > 300:
        message = message[:297] + "..."
    line = f"internal error: {type(exc).__name__}" + (f": {message}" if message else "")
    if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
        traceback.print_exception(exc, file=sys.stderr)
    if as_json:
        from mig_conformance.cli.output import print_json

        print_json({"error": line, "errors": [{"message": line}], "internal_error": True})
    print(line, file=sys.stderr)
    print(f"this is a bug in mig-conformance, not a problem of your input or cluster: please report it with the "
          f"command line ({DEBUG_ENV}=1 prints the traceback; see docs/hardening.md#internal-errors)",
          file=sys.stderr)
    return EXIT_INTERNAL


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # the reader went away (`| head`): nothing more to say, and no noise at exit
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _main(argv: Sequence[str] | None) -> int:
    args: argparse.Namespace | None = None
    try:
        args = build_parser().parse_args(argv)
        from mig_conformance.cli.catalogs import catalogs_of

        with catalogs_of(args):
            return int(args.run(args))
    except BrokenPipeError:
        raise
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # every error ends in one exit code and a line or two, never a traceback
        command = " ".join(filter(None, (getattr(args, "command", None), getattr(args, "verb", None))))
        return _failure(exc, bool(getattr(args, "json", False)), f"mig-conformance {command}".strip())


def _failure(exc: Exception, as_json: bool, command: str) -> int:
    """The exit code and message of an exception a command did not handle itself (an optional module that is not
    installed is a usage error with the install hint, see common/extras.py)."""
    from mig_conformance.common.extras import missing_extra

    missing = missing_extra(exc, command)
    if missing is not None:
        exc = missing
    if isinstance(exc, MigConformanceError):
        from mig_conformance.cli.failures import report_failure
        from mig_conformance.cluster.base import ClusterError

        code = EXIT_FAIL if isinstance(exc, ClusterError) else EXIT_USAGE  # a cluster that failed, not bad usage
        return report_failure(exc, as_json, code)
    return internal_error(exc, as_json)
