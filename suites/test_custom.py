"""Custom: every named config of the user's mig-parted file (--mig-config-file) behaves as validated offline.

One test per node and config (ids like `test_custom_config[NODE[TYPE]-training]`). Each test installs the file as
the cluster's mig-parted ConfigMap and puts the original back when it ends, so later suites see the cluster's own
configs."""

from __future__ import annotations

import pytest

from mig_conformance.k8s.node_gpus import node_gpu_models
from mig_conformance.mig.plans import configs_for_node
from mig_conformance.mig.spec import load_spec, mig_parted_file_text
from mig_conformance.suites._helpers import apply_and_check

pytestmark = [pytest.mark.mig_disruptive, pytest.mark.mig_category("custom")]


@pytest.fixture
def user_config_installed(mig_cluster, mig_settings):
    """The user's file (or the file a ConfigMap manifest of theirs holds) as the mig-parted ConfigMap for one test;
    the original text comes back afterwards."""
    path = mig_settings.config_file
    mig_cluster.set_mig_config(mig_parted_file_text(path.read_text(), str(path)))
    yield
    mig_cluster.restore(kinds={"mig-config"})


def test_custom_config(mig_node, mig_custom_config, mig_settings, mig_reconfigure, mig_expect, mig_record,
                       request) -> None:
    spec = load_spec(mig_settings.config_file)
    if mig_custom_config not in configs_for_node(node_gpu_models(mig_node), spec):
        pytest.skip(f"config {mig_custom_config} of {mig_settings.config_file.name} selects none of the GPUs of "
                    f"{mig_node.name}")
    request.getfixturevalue("user_config_installed")
    apply_and_check(mig_node, mig_reconfigure, mig_expect, mig_record, "custom", mig_custom_config,
                    mig_settings.strategy)
