"""Custom: every named config of the user's mig-parted file (--mig-config-file) behaves as validated offline."""

from __future__ import annotations

import pytest

from mig_conformance.mig.spec import load_spec
from mig_conformance.node_models import node_gpu_models
from mig_conformance.plans import configs_for_node

from ._helpers import apply_and_check

pytestmark = [pytest.mark.mig_disruptive, pytest.mark.mig_category("custom")]


def test_custom_configs(mig_node, mig_cluster, mig_settings, mig_reconfigure, mig_expect, mig_record,
                        subtests) -> None:
    if mig_settings.config_file is None:
        pytest.skip("no --mig-config-file given: nothing custom to test")
    spec = load_spec(mig_settings.config_file)
    assert spec.valid, f"{mig_settings.config_file} is not a valid mig-parted file: " + \
        "; ".join(str(p) for p in spec.problems)
    gpus = node_gpu_models(mig_node)
    names = configs_for_node(gpus, spec)
    if not names:
        pytest.skip(f"no config in {mig_settings.config_file} selects the GPUs of {mig_node.name}")
    mig_cluster.set_mig_config(mig_settings.config_file.read_text())
    for name in names:
        with subtests.test(config=name):
            apply_and_check(mig_node, mig_reconfigure, mig_expect, mig_record, "custom", name,
                            mig_settings.strategy)
