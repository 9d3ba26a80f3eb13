"""Shared fixtures of the kit's own tests (every tier: tests/unit, tests/plugin, tests/control_plane).

`tests/support` is imported as the package `support`: pytest puts this folder (the one of this conftest.py, which
is not a package) on sys.path when it imports this file, before any test module of a tier folder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mig_conformance.gpus.catalog import Catalog, load_catalog
from mig_conformance.plugin.settings import SETTINGS
from mig_conformance.simulators import nvml as nv


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """moto's AWS (EKS, EC2, STS) with nothing of the developer's AWS setup leaking in."""
    from moto import mock_aws

    from support.eks_webhook import isolate_aws_env

    isolate_aws_env(monkeypatch, tmp_path)
    with mock_aws():
        yield


@pytest.fixture
def tester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """pytester for runs of pytest with the kit's plugin (in process or as a subprocess), isolated from the caller's
    environment: no PYTEST_ADDOPTS and none of the settings' variables (MIG_CLUSTER, MIG_REPORT, ...)."""
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    for spec in SETTINGS:
        if spec.env:
            monkeypatch.delenv(spec.env, raising=False)
    return pytester


@pytest.fixture
def nvml_node() -> Iterator[Callable[..., nv.NvmlSimulator]]:
    """Factory of simulated nodes installed behind the NVML simulator module (as pynvml is used: module-level
    calls), initialised; the previous one comes back afterwards."""
    previous = nv.use(None)

    def make(*gpus: str) -> nv.NvmlSimulator:
        sim = nv.NvmlSimulator(list(gpus))
        nv.use(sim)
        sim.nvmlInit()
        return sim

    yield make
    nv.use(previous)
