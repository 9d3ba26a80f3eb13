"""The one rule for tests that need the local control plane's binaries: skip naming what is missing, except under
CI (`CI` set to anything but 0/false), where a missing binary is a failure, never a silent skip."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mig_conformance.cluster.assets import BINARIES, find_assets
from mig_conformance.cluster.base import ClusterError


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def control_plane_assets(module_level: bool = False) -> dict[str, Path]:
    """Paths of etcd, kube-apiserver, kube-scheduler, kube-controller-manager, kwok and kubectl."""
    try:
        return find_assets(BINARIES)
    except ClusterError as exc:
        if in_ci():
            pytest.fail(f"CI: the local control plane binaries are required: {exc}", pytrace=False)
        pytest.skip(f"local control plane binaries not built (scripts/build-k8s-binaries, or mig-conformance cluster "
                    f"install): {exc}",
                    allow_module_level=module_level)
