"""Custom: every named config of the user's mig-parted file (--mig-config-file) behaves as validated offline.

One test per node and config (ids like `test_custom_config[NODE[TYPE]-training]`). Each test installs the file as
the cluster's mig-parted ConfigMap and puts the original back when it ends, so later suites see the cluster's own
configs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from mig_conformance.cluster.journal import ChangeKind
from mig_conformance.k8s.node_hardware import node_gpu_models
from mig_conformance.mig.plans import configs_for_node
from mig_conformance.suites._helpers import apply_and_check

if TYPE_CHECKING:
    from mig_conformance.cluster.base import Cluster
    from mig_conformance.k8s.model import GpuNode
    from mig_conformance.k8s.projection import NodeProjection
    from mig_conformance.mig.spec import ConfigSource
    from mig_conformance.plugin.settings import Settings

pytestmark = [pytest.mark.mig_disruptive, pytest.mark.mig_category("custom")]


@pytest.fixture
def user_config_installed(mig_cluster: Cluster, mig_user_config: ConfigSource) -> Iterator[None]:
    """The user's mig-parted file (the file a ConfigMap manifest of theirs holds) as the cluster's mig-parted
    ConfigMap for one test; the original text comes back afterwards."""
    mig_cluster.set_mig_config(mig_user_config.mig_parted_text)
    yield
    mig_cluster.restore(kinds={ChangeKind.MIG_CONFIG})


def test_custom_config(mig_node: GpuNode, mig_custom_config: str, mig_user_config: ConfigSource,
                       mig_reconfigure: Callable[..., GpuNode], mig_expect: Callable[..., NodeProjection],
                       mig_record: Callable[..., None], mig_settings: Settings, mig_cluster: Cluster,
                       request: pytest.FixtureRequest) -> None:
    strategy = mig_settings.strategy or mig_cluster.get_mig_strategy()  # the row names the strategy it ran under
    mig_record(config=mig_custom_config, strategy=strategy)
    if mig_custom_config not in configs_for_node(node_gpu_models(mig_node), mig_user_config.spec):
        pytest.skip(f"config {mig_custom_config} of {mig_user_config.file} selects none of the GPUs of "
                    f"{mig_node.name}")
    request.getfixturevalue("user_config_installed")
    apply_and_check(mig_node, mig_reconfigure, mig_expect, mig_record, "custom", mig_custom_config, strategy)
