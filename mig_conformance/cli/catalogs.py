"""`--catalog DIR` on every command: user catalog folders (gpus/*.yaml, instance-types.yaml) that add to or override
the shipped catalog for this one command (gpus/user_catalog.py)."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator

OPTION = "--catalog"
DEST = "catalog"


def add_catalog_option(parser: argparse.ArgumentParser) -> None:
    """Add --catalog to every command parser below `parser` that runs something (the leaves of sub-commands)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        if not any(OPTION in a.option_strings for a in parser._actions):
            parser.add_argument(OPTION, action="append", metavar="DIR", dest=DEST,
                                help="a user catalog folder (gpus/*.yaml and/or instance-types.yaml) that adds to "
                                     "or overrides the shipped catalog; repeatable, later folders win")
        return
    for action in subs:
        for child in dict.fromkeys(action.choices.values()):
            add_catalog_option(child)


@contextlib.contextmanager
def catalogs_of(args: argparse.Namespace) -> Iterator[None]:
    """The --catalog folders in effect while the command runs (an error in one is a usage error naming file, line
    and key, raised before the command starts)."""
    folders = getattr(args, DEST, None) or []
    if not folders:
        yield
        return
    from mig_conformance.gpus.user_catalog import use_user_catalogs

    with use_user_catalogs(folders, "--catalog"):
        yield
