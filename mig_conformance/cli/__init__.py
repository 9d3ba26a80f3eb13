"""The `mig-conformance` command line. Exit codes: 0 ok/valid/fits, 1 invalid/does not fit, 2 usage or input error."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from mig_conformance.common.errors import InputError, MigConformanceError

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2

# Each command lives in its own module exposing register(subparsers) and run(args) -> int.
COMMAND_MODULES = (
    "gpus", "layouts", "fit", "validate", "smi", "capture", "mig_parted", "expect", "report", "clusters", "restore",
    "cluster", "eks_token", "rbac",
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # usage errors exit 2 with a clear line, as argparse does
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from mig_conformance import __version__

    parser = _Parser(prog="mig-conformance", description=__doc__)
    parser.add_argument("--version", action="version", version=f"mig-conformance {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.endswith(f".cli.{name}"):
                continue  # command not built yet
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except InputError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    except MigConformanceError as exc:
        from mig_conformance.cluster.base import ClusterError

        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAIL if isinstance(exc, ClusterError) else EXIT_USAGE  # a cluster that failed, not bad usage
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
