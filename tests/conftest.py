"""Shared fixtures of the kit's own tests."""

from __future__ import annotations

import pytest

from mig_conformance.catalog import Catalog, load_catalog


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog()
