"""Custom: every named config of the user's mig-parted file (--mig-config-file) on every node it targets.

One test per node and config (ids like `test_custom_config[NODE[TYPE]-training]`) answers two questions, apart:
* conformance: the cluster did what the kit predicted for this config (state, allocatable, GFD labels);
* config verdict: the config works there (mig-manager ends `success` and the kit's validation of the config on the
  node's GPUs finds no error), or, for a config listed with --mig-expect-config-failure, it does not.
The test fails when either answer is no; its record carries both, and the report shows them apart (its Config
verdicts section). Each test installs the file as the cluster's mig-parted ConfigMap and puts the original back
when it ends, so later suites see the cluster's own configs: on GPU Operator v26.3.0+ (custom files only by
name) as the ConfigMap `mig-conformance-config` that spec.migManager.config.name points at, waiting for mig-manager to
restart with it; before, by replacing the text of the ConfigMap the ClusterPolicy names (`Cluster.set_mig_config`).
Before labelling, the test checks that the config is in the file mig-manager now reads on the node."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from mig_conformance.cluster.journal import ChangeKind
from mig_conformance.k8s.node_hardware import node_gpu_models
from mig_conformance.mig.plans import configs_for_node, layout_pictures
from mig_conformance.plugin.checks import expected_failures_origin
from mig_conformance.suites._helpers import projection_problems, record_expectation, report_property, require_config
from mig_conformance.validation.verdict import judge

if TYPE_CHECKING:
    from mig_conformance.cluster.base import Cluster
    from mig_conformance.k8s.model import GpuNode
    from mig_conformance.k8s.projection import NodeProjection
    from mig_conformance.mig.spec import ConfigSource
    from mig_conformance.plugin.settings import Settings

pytestmark = [pytest.mark.mig_disruptive, pytest.mark.mig_category("custom")]


CONFIG_KINDS = {ChangeKind.MIG_CONFIG, ChangeKind.MIG_CONFIG_NAME, ChangeKind.CONFIG_MAP}


@pytest.fixture
def user_config_installed(mig_cluster: Cluster, mig_user_config: ConfigSource,
                          mig_settings: Settings) -> Iterator[str]:
    """The user's mig-parted file (the file a ConfigMap manifest of theirs holds) as the file mig-manager reads for
    one test (yields the ConfigMap holding it); the ClusterPolicy and ConfigMaps come back afterwards."""
    name = mig_cluster.set_mig_config(mig_user_config.mig_parted_text)
    mig_cluster.wait_mig_manager_restarted(mig_settings.timeout)
    yield name
    changed_name = any(c.kind == ChangeKind.MIG_CONFIG_NAME for c in mig_cluster.journal.changes)
    mig_cluster.restore(kinds=CONFIG_KINDS)
    if changed_name:
        mig_cluster.wait_mig_manager_restarted(mig_settings.timeout)


def test_custom_config(mig_node: GpuNode, mig_custom_config: str, mig_user_config: ConfigSource,
                       mig_reconfigure: Callable[..., GpuNode], mig_expect: Callable[..., NodeProjection],
                       mig_record: Callable[..., None], mig_settings: Settings, mig_cluster: Cluster,
                       request: pytest.FixtureRequest) -> None:
    config = mig_custom_config
    strategy = mig_settings.strategy or mig_cluster.get_mig_strategy()  # the row names the strategy it ran under
    mig_record(config=config, strategy=strategy)
    gpus = node_gpu_models(mig_node)
    if config not in configs_for_node(gpus, mig_user_config.spec):
        pytest.skip(f"config {config} of {mig_user_config.file} selects none of the GPUs of {mig_node.name}")
    installed = request.getfixturevalue("user_config_installed")
    require_config(mig_cluster, mig_node, config, report_property(request), installed)
    expected = record_expectation(mig_node, mig_expect, mig_record, "custom", config, strategy)
    node = mig_reconfigure(mig_node, config, strategy)
    measured, want, problems = projection_problems(node, expected, config, strategy)
    # mig-manager's states as watched; a node labelled so already keeps the verdict it had
    states = list(node.mig_states) if node.mig_states is not None else [measured["state"] or "no state"]
    verdict = judge(mig_user_config.spec, config, gpus, node.name, node.instance_type, states,
                    config in mig_settings.expected_config_failures)
    mig_record(category="custom", node=node.name, instance_type=node.instance_type,
               gpu_model=expected.gpus[0].model.key if expected.gpus else None, config=config, strategy=strategy,
               expected=want, measured=measured, layout=layout_pictures(expected.gpus),
               config_verdict={**verdict.as_dict(), "as_predicted": not problems})
    failures = [f"conformance: {p}" for p in problems]
    if not verdict.ok:
        failures += verdict.lines(expected_failures_origin(mig_settings))
        if not problems:
            failures.append("conformance: the cluster did what the kit predicted for this config")
    if failures:
        pytest.fail("\n".join(failures))
