"""Where the plugin keeps its run-wide objects on the pytest Config (stash keys shared by hooks and fixtures)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from mig_conformance.plugin.settings import Settings

if TYPE_CHECKING:
    from mig_conformance.plugin.session import MigSession

settings_key = pytest.StashKey[Settings]()
session_key: pytest.StashKey[MigSession] = pytest.StashKey()
#: the user catalog folders in effect before the run's --mig-catalog ones (put back at unconfigure)
catalogs_key = pytest.StashKey[tuple[str, ...]]()
