"""Shared fixtures of the kit's own tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mig_conformance.gpus.catalog import Catalog, load_catalog


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
