"""The fixtures the plugin offers (thin wrappers over the run's MigSession; registered by `plugin.hooks`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from mig_conformance.plugin.keys import session_key, settings_key
from mig_conformance.plugin.settings import Settings
from mig_conformance.report.records import ResultRecord

if TYPE_CHECKING:
    from mig_conformance.cluster.base import Cluster
    from mig_conformance.k8s.model import GpuNode
    from mig_conformance.k8s.projection import NodeProjection
    from mig_conformance.mig.spec import ConfigSource
    from mig_conformance.plugin.pods import PodFactory
    from mig_conformance.plugin.session import MigSession

def _session(request: pytest.FixtureRequest) -> MigSession:
    session = request.config.stash.get(session_key, None)
    if session is None:
        pytest.skip("no cluster selected: pass --mig-cluster (e.g. --mig-cluster=sim)")
    return session


@pytest.fixture(scope="session")
def mig_settings(request: pytest.FixtureRequest) -> Settings:
    """The resolved run settings (values and their sources)."""
    return request.config.stash[settings_key]


@pytest.fixture(scope="session")
def mig_cluster(request: pytest.FixtureRequest) -> Cluster:
    """The Cluster under test (one per session); journaled changes are restored when the session ends."""
    return _session(request).cluster


@pytest.fixture(scope="session")
def mig_nodes(request: pytest.FixtureRequest) -> list[GpuNode]:
    """GPU nodes under test (filtered by --mig-instance-type / the clusters file's node selector)."""
    return _session(request).nodes()


@pytest.fixture(scope="session")
def mig_expect(request: pytest.FixtureRequest) -> Callable[..., NodeProjection]:
    """Callable (node, config, strategy=None) -> NodeProjection: what the node should show once labelled `config`,
    projected from what the kit knows of it now (its last reconfiguration in this run, else its labels)."""
    return _session(request).expect


@pytest.fixture(scope="session")
def mig_user_config(request: pytest.FixtureRequest) -> ConfigSource:
    """The user's --mig-config-file, read and parsed once for the run (skips when none was given)."""
    source = _session(request).user_config
    if source is None:
        pytest.skip("no --mig-config-file given: nothing custom to test")
    return source


@pytest.fixture
def mig_pods(request: pytest.FixtureRequest) -> Iterator[PodFactory]:
    """Pod factory in the run namespace; deletes what it created when the test ends."""
    from mig_conformance.plugin.pods import PodFactory

    factory = PodFactory(_session(request))
    yield factory
    factory.cleanup()


@pytest.fixture
def mig_reconfigure(request: pytest.FixtureRequest) -> Callable[..., GpuNode]:
    """Callable (node, config, strategy=None) -> final GpuNode: relabel a node and wait for success|failed."""
    return _session(request).reconfigure


@pytest.fixture
def mig_record(request: pytest.FixtureRequest) -> Callable[..., None]:
    """Callable(**fields) attaching this test's result record (the fields of `report.records.ResultRecord`:
    category, node, instance_type, gpu_model, config, strategy, expected, measured, layout; an unknown field is an
    error). Records travel as a `user_properties` entry, so they reach the controller under xdist."""
    def record(**fields: Any) -> None:
        request.node.user_properties.append(ResultRecord.of(**fields).as_property())
    return record
