"""The two models of a node agree: the projection (`expect`, `mig_expect`: mig-parted in closed form) and the `sim`
cluster (mig-parted's command code on simulated NVML, the device plugin and GFD reading NVML back).

Generated cases: a node of one or two catalog GPU models, a mig-parted file of one to three named configs whose
entries mix device filters and index lists, MIG modes, canonical and non-canonical device names (`1c.1g.10gb`,
CI profiles, `+me`), zero and huge counts and names no GPU has; then a sequence of label values (repeats, unknown
names) and strategy changes, under a device-plugin release (v0.15.0 .. v0.20.0) and a driver (R580, R550 with its
overlays, R570/R595 without a source). After every step both models must show the same state sequence, verdict,
allocatable (zeros included), GFD labels and per-GPU MIG devices. `MIG_AGREE_EXAMPLES` raises the case count (CI runs
2,000).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mig_conformance.cluster.sim.backend import SimCluster
from mig_conformance.gpus.catalog import GpuModel, load_catalog
from mig_conformance.gpus.device_ids import DeviceID
from mig_conformance.k8s import labels as L
from mig_conformance.k8s import versions
from mig_conformance.k8s.device_plugin import DEFAULT_VERSION
from mig_conformance.k8s.projection import NodeState, project_node
from mig_conformance.mig.spec import parse_installed_config

CATALOG = load_catalog()
MIG_MODELS = sorted(CATALOG.mig_capable, key=lambda g: g.key)
OTHER_MODELS = [g for g in CATALOG if not g.mig_capable][:1]
EXAMPLES = int(os.environ.get("MIG_AGREE_EXAMPLES", "2000"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=os.environ.get("MIG_AGREE_RANDOM") is None,
                    database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FOREIGN_FILTER = "0x12345678"
UNKNOWN_NAMES = ("9g.99gb", "1g.1gb", "not-a-profile", "1g.10gb+gfx")
#: every device-plugin release some GPU Operator release ships (versions.OPERATOR_RELEASES), oldest first
PLUGIN_VERSIONS = sorted({r.device_plugin for r in versions.OPERATOR_RELEASES.values()}, key=versions.release)
#: the catalog's branch, one with overlays, and two without a source (their memory is unknown in both models)
DRIVERS = ("580.159.04", "550.54.15", "570.124.06", "595.91.07")


def _names(model: GpuModel) -> list[str]:
    """Device names a config may use on this model: GI and CI profiles, and other spellings of them."""
    names = {ci.name for gi in model.gi_profiles for ci in gi.compute_instances} | {gi.name for gi in model.gi_profiles}
    spellings = {f"{gi.slices}c.{gi.name}" for gi in model.gi_profiles if "+" not in gi.name and "-" not in gi.name}
    return sorted(names | spellings)


@dataclass
class Case:
    gpu_keys: list[str]
    strategy: str
    with_reboot: bool
    reset_works: bool
    config_text: str
    steps: list[tuple[str, str]] = field(default_factory=list)  # ("label", value) | ("strategy", value)
    plugin_version: str = DEFAULT_VERSION
    driver: str = DRIVERS[0]

    @property
    def gpus(self) -> list[GpuModel]:
        return [CATALOG.get(k) for k in self.gpu_keys]


@st.composite
def entries(draw: st.DrawFn, gpus: list[GpuModel]) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if draw(st.integers(0, 3)) == 0:
        entry["devices"] = sorted(draw(st.sets(st.integers(0, len(gpus)), min_size=1, max_size=len(gpus) + 1)))
    else:
        entry["devices"] = "all"
    if draw(st.integers(0, 3)) == 0:
        ids = [str(DeviceID.from_int(g.pci_device_id)) for g in gpus] + [FOREIGN_FILTER]
        entry["device-filter"] = draw(st.sampled_from(ids))
    entry["mig-enabled"] = draw(st.booleans())
    if entry["mig-enabled"] or draw(st.booleans()):
        pool = sorted({n for g in gpus if g.mig_capable for n in _names(g)} | set(UNKNOWN_NAMES))
        keys = draw(st.lists(st.sampled_from(pool), max_size=3, unique=True))
        counts = st.one_of(st.integers(0, 3), st.integers(0, 8), st.just(99))
        entry["mig-devices"] = {k: draw(counts) for k in keys}
    return entry


@st.composite
def cases(draw: st.DrawFn) -> Case:
    first = draw(st.sampled_from(MIG_MODELS))
    second = draw(st.sampled_from([first, first, *MIG_MODELS, *OTHER_MODELS]))
    gpus = [first, second]
    names = [f"c{i}" for i in range(draw(st.integers(1, 3)))]
    configs = {n: draw(st.lists(entries(gpus), min_size=1, max_size=3)) for n in names}
    text = yaml.safe_dump({"version": "v1", "mig-configs": configs}, sort_keys=False)
    case = Case([g.key for g in gpus], draw(st.sampled_from(["none", "single", "mixed"])), draw(st.booleans()),
                draw(st.booleans()), text, plugin_version=draw(st.sampled_from(PLUGIN_VERSIONS)),
                driver=draw(st.sampled_from(DRIVERS)))
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.integers(0, 4)) == 0:
            case.steps.append(("strategy", draw(st.sampled_from(["none", "single", "mixed"]))))
        else:
            case.steps.append(("label", draw(st.sampled_from([*names, *names, "no-such-config"]))))
    return case


def _gfd_labels(labels: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if k.startswith("nvidia.com/")
            and k not in (L.MIG_CONFIG, L.MIG_CONFIG_STATE, L.GPU_PRESENT, "nvidia.com/gpu.deploy.mig-manager")}


def _nvidia(resources: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in resources.items() if k.startswith("nvidia.com/")}


def run_case(case: Case) -> list[str]:
    """Both models through the case's steps; returns the outcome of each step (for hypothesis' statistics)."""
    fleet = "+".join(case.gpu_keys)
    cluster = SimCluster(fleet, allow_changes=True, strategy=case.strategy, config_text=case.config_text,
                         with_reboot=case.with_reboot, gpu_reset_works=case.reset_works, default_config=None,
                         device_plugin_version=case.plugin_version, driver=case.driver)
    (node,) = cluster.list_gpu_nodes()
    spec = parse_installed_config(case.config_text, "agree")
    version = case.plugin_version
    state = NodeState.fresh(case.gpus).advertised(case.strategy, version)
    strategy = case.strategy
    outcomes = []
    for kind, value in case.steps:
        if kind == "strategy":
            cluster.set_mig_strategy(value)
            strategy = value
            state = state.advertised(value, version)
            continue
        want = project_node(case.gpus, strategy, spec, value, current=state, with_reboot=case.with_reboot,
                            gpu_reset_works=case.reset_works, driver=case.driver, device_plugin_version=version)
        with cluster.observe_label(node.name, L.MIG_CONFIG_STATE) as seen:
            cluster.request_mig_config(node.name, value)
            cluster.advance(3600)
        got = cluster.get_node(node.name)
        where = f"{'+'.join(case.gpu_keys)} {strategy} reboot={case.with_reboot} reset={case.reset_works} " \
                f"plugin={version} driver={case.driver} steps={case.steps} step={value}\n{case.config_text}"
        assert tuple(s for s in seen[1:] if s is not None) == want.states, where
        assert got.labels.get(L.MIG_CONFIG_STATE) == want.state, where
        sim_gpus = [(g.mig_enabled, g.devices) for g in cluster._nodes[node.name].gpu_states()]
        assert sim_gpus == [(g.mig_enabled, g.devices) for g in want.gpus], where
        assert _nvidia(got.allocatable) == _nvidia(want.allocatable), where
        assert _gfd_labels(got.labels) == _gfd_labels(want.labels), where
        runs = cluster.mig_manager_runs(node.name)
        if want.states:
            assert (runs[-1].reason is None) == (want.reason is None) or want.state == "success", where
        assert want.after is not None
        state = want.after
        outcomes.append(want.state or "none")
    return outcomes


@pytest.mark.slow  # 2,000 generated cases
@SETTINGS
@given(cases())
def test_projection_and_simulators_agree(case: Case) -> None:
    for outcome in run_case(case):
        event(outcome)
    event(f"device plugin {case.plugin_version}")
    event(f"driver {case.driver}")


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("plugin_version", ["v0.16.2", "v0.19.3", "v0.20.0"])
def test_every_version_and_driver_on_a_me_and_ci_node(plugin_version: str, driver: str) -> None:
    """Where the releases differ (`+me` naming, compute instances, an empty MIG GPU) and the driver's profile
    memory (known, partly known, unknown), both models agree for each release and driver."""
    text = yaml.safe_dump({"version": "v1", "mig-configs": {
        "odd": [{"devices": [0], "mig-enabled": True, "mig-devices": {"1g.10gb+me": 1, "1c.3g.40gb": 2}},
                {"devices": [1], "mig-enabled": True, "mig-devices": {}}],
        "uniform": [{"devices": "all", "mig-enabled": True, "mig-devices": {"3g.40gb": 2}}]}})
    case = Case(["H100-80GB", "H100-80GB"], "mixed", False, True, text,
                [("label", "odd"), ("strategy", "single"), ("label", "uniform"), ("strategy", "mixed")],
                plugin_version=plugin_version, driver=driver)
    assert run_case(case) == ["success", "success"]


def test_a_full_gi_ci_key_then_its_canonical_name_succeeds_at_once_in_both() -> None:
    """After `1c.1g.10gb: 7` is applied, the GPU reports seven `1g.10gb`: relabelling to a config of `1g.10gb: 7`
    finds it applied (success, no pending) in both models; the first config itself never asserts (pending again)."""
    text = yaml.safe_dump({"version": "v1", "mig-configs": {
        "ci": [{"devices": "all", "mig-enabled": True, "mig-devices": {"1c.1g.10gb": 7}}],
        "gi": [{"devices": "all", "mig-enabled": True, "mig-devices": {"1g.10gb": 7}}],
        "off": [{"devices": "all", "mig-enabled": False}]}})
    h100 = CATALOG.get("H100-80GB")
    case = Case([h100.key, h100.key], "mixed", False, True, text, [("label", "ci"), ("label", "gi"), ("label", "off"),
                                                             ("label", "ci"), ("label", "off"), ("label", "ci")])
    assert run_case(case) == ["success"] * 6
    state = NodeState.fresh([h100, h100]).advertised("mixed", DEFAULT_VERSION)
    spec = parse_installed_config(text, "t")
    first = project_node([h100, h100], "mixed", spec, "ci", current=state)
    assert first.states == ("pending", "success") and first.gpus[0].devices == ("1g.10gb",) * 7
    second = project_node([h100, h100], "mixed", spec, "gi", current=first.after)
    assert second.states == ("success",)


def test_a_node_labelled_so_already_runs_nothing_in_both() -> None:
    cluster = SimCluster("p5.48xlarge", allow_changes=True)
    (node,) = cluster.list_gpu_nodes()
    cluster.request_mig_config(node.name, "all-balanced")
    state = NodeState.applied(list(CATALOG.get("H100-80GB") for _ in range(8)), None, "all-balanced", "success",
                              frozenset(k for k in cluster.get_node(node.name).capacity if k.startswith("nvidia")))
    want = project_node([CATALOG.get("H100-80GB")] * 8, "mixed", None, "all-balanced", current=state)
    with cluster.observe_label(node.name, L.MIG_CONFIG_STATE) as seen:
        assert not cluster.request_mig_config(node.name, "all-balanced")
    assert want.states == () and seen[1:] == [] and want.state == "success"
    assert _nvidia(cluster.get_node(node.name).allocatable) == _nvidia(want.allocatable)


# ---- the generated per-node config (mig-manager >= v0.14.0, the default stack) ---------------------------------
GENERATED_NODES = [[g.key, g.key] for g in MIG_MODELS] + [
    ["H100-80GB", "A30-24GB"], ["A100-80GB", "H100-80GB"], ["H200-141GB", "A10G-24GB"],
    ["RTXPRO6000-96GB", "B200-180GB"]]


@pytest.mark.slow  # every generated config of every MIG-capable GPU and of mixed nodes, on both models
@pytest.mark.parametrize("keys", GENERATED_NODES, ids=["+".join(k) for k in GENERATED_NODES])
def test_generated_configs_agree(keys: list[str]) -> None:
    """The sim's mig-manager generates the node's file from NVML; `expect` generates it from the catalog
    (k8s/mig_config.offline_config): the same file, and every config of it (in sequence) gives the same states,
    allocatable, GFD labels and MIG devices on both models."""
    from mig_conformance.k8s import stack
    from mig_conformance.k8s.mig_config import offline_config

    gpus = [CATALOG.get(k) for k in keys]
    cluster = SimCluster("+".join(keys), allow_changes=True, strategy="mixed", default_config=None)
    (node,) = cluster.list_gpu_nodes()
    sim_file = cluster.node_mig_config(node.name)
    offline = offline_config(node.name, [(g, g.primary_variant.pci_device_id) for g in gpus], stack.default())
    assert (sim_file.kind, sim_file.text) == ("generated", offline.text)
    spec = offline.spec
    state = NodeState.fresh(gpus).advertised("mixed", DEFAULT_VERSION)
    for config in [*spec.configs, "all-1g.5gb"]:  # the last: a static-map name the file may lack
        want = project_node(gpus, "mixed", spec, config, current=state, driver=cluster.driver)
        with cluster.observe_label(node.name, L.MIG_CONFIG_STATE) as seen:
            cluster.request_mig_config(node.name, config)
            cluster.advance(3600)
        got = cluster.get_node(node.name)
        assert tuple(s for s in seen[1:] if s is not None) == want.states, config
        assert got.labels.get(L.MIG_CONFIG_STATE) == want.state, config
        sim_gpus = [(g.mig_enabled, g.devices) for g in cluster._nodes[node.name].gpu_states()]
        assert sim_gpus == [(g.mig_enabled, g.devices) for g in want.gpus], config
        assert _nvidia(got.allocatable) == _nvidia(want.allocatable), config
        assert _gfd_labels(got.labels) == _gfd_labels(want.labels), config
        if want.after is not None:
            state = want.after
