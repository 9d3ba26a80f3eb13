"""The control-plane tier: every test in this folder needs the local control plane's binaries (a real etcd and
kube-apiserver, see tests/support/control_plane.py), so each one is marked `control_plane` and `slow`."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.control_plane)
            item.add_marker(pytest.mark.slow)
