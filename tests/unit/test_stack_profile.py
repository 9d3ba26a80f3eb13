"""The stack profile reaches the backends: `cluster.stack` on sim and local, the agents' `--stack`."""

from __future__ import annotations

from pathlib import Path

import pytest

from mig_conformance.cluster.local.backend import agents_command
from mig_conformance.cluster.local.controlplane import ControlPlane
from mig_conformance.cluster.sim.backend import SimCluster
from mig_conformance.common.errors import InputError
from mig_conformance.k8s import stack
from mig_conformance.simulators.agents.__main__ import options, parser

OLD = "gpu-operator=v25.3.4,driver=550.54.15"


def _profile(text: str = OLD) -> stack.StackProfile:
    return stack.resolve([(stack.parse_choices(text, "option --mig-stack"), "option --mig-stack")])


def test_default_is_the_newest_ga_release() -> None:
    p = stack.default()
    assert (p.gpu_operator.value, p.mig_manager.value, p.device_plugin.value, p.driver.value) == (
        "v26.7.0", "v0.15.0", "v0.20.0", "580.159.04")
    assert SimCluster("p5.48xlarge").stack == p


def test_a_chosen_operator_brings_its_components_with_sources() -> None:
    p = _profile()
    assert (p.mig_manager.value, p.device_plugin.value, p.driver.value) == ("v0.12.3", "v0.17.4", "550.54.15")
    assert p.driver.source == "option --mig-stack"
    assert "values.yaml @v25.3.4" in p.device_plugin.source
    assert not p.generates_per_node_config() and p.generates_per_node_config().value is False


def test_sim_cluster_behaves_as_its_stack() -> None:
    c = SimCluster("p5.48xlarge", stack=_profile())
    assert c.stack.device_plugin.value == "v0.17.4" and c.plugin_version == "v0.17.4" and c.driver == "550.54.15"
    assert c.describe()["stack"]["driver"] == {"value": "550.54.15", "source": "option --mig-stack"}
    # the backend's own options (clusters-file keys driver/device_plugin_version) override the profile's two
    c = SimCluster("p5.48xlarge", stack=_profile(), device_plugin_version="v0.19.3")
    assert c.stack.device_plugin.value == "v0.19.3" and c.stack.device_plugin.source == "sim backend option"
    assert c.stack.gpu_operator.value == "v25.3.4"


def test_agents_take_the_stack_on_their_command_line(tmp_path: Path) -> None:
    argv = agents_command(ControlPlane(tmp_path), stack=_profile())
    text = argv[argv.index("--stack") + 1]
    assert text == "kubernetes=v1.37.2,gpu-operator=v25.3.4,mig-manager=v0.12.3,device-plugin=v0.17.4,driver=550.54.15"
    opts = options(parser().parse_args(["--kubeconfig", "k", "--stack", text]))
    assert (opts.driver, opts.device_plugin_version, opts.stack.mig_manager.value) == ("550.54.15", "v0.17.4",
                                                                                       "v0.12.3")
    plain = options(parser().parse_args(["--kubeconfig", "k", "--device-plugin-version", "v0.18.1"]))
    assert plain.stack.gpu_operator.value == "v26.7.0" and plain.device_plugin_version == "v0.18.1"


@pytest.mark.parametrize("text, message", [
    ("gpu-operator", "is not COMPONENT=VERSION"),
    ("cuda=12.0", "unknown stack component 'cuda'"),
    ("gpu-allocation=dra", "detected on real clusters, never chosen"),
    ("device-plugin=latest", "must look like v1.2.3"),
    ("device-plugin=v0.14.5", "older than the oldest release the kit models"),
    ("gpu-operator=v99.1.0", "not a release the kit knows"),
])
def test_bad_choices_name_their_origin(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        _profile(text)
    assert "option --mig-stack" in str(info.value)
