"""The differential tier: NVIDIA's own k8s-device-plugin code (built by scripts/build-difftest) against the kit's
projection (docs/differential.md). Every test in this folder is marked `differential` and `slow`."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.differential)
            item.add_marker(pytest.mark.slow)
