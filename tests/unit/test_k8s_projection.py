"""mig-manager states, device-plugin resources, GFD labels and the node projection that combines them."""

from __future__ import annotations

import pytest

from mig_conformance.gpus.gpu_list import parse_gpu_list
from mig_conformance.gpus.instance_types import get_instance_type
from mig_conformance.k8s import device_plugin, gfd
from mig_conformance.k8s.labels import MIG_CONFIG, MIG_CONFIG_STATE, MIG_STRATEGY
from mig_conformance.k8s.mig_manager import reconcile
from mig_conformance.k8s.projection import project_node
from mig_conformance.mig.default_config import default_spec
from mig_conformance.mig.spec import parse_spec_text
from mig_conformance.mig.state import GpuMigState, initial_states

P5 = get_instance_type("p5.48xlarge")
P4D = get_instance_type("p4d.24xlarge")

CUSTOM = parse_spec_text("""
version: v1
mig-configs:
  ci:
    - devices: all
      mig-enabled: true
      mig-devices: {"1c.3g.40gb": 3, "3g.40gb": 1}
  unknown-everywhere:
    - devices: all
      mig-enabled: true
      mig-devices: {"5g.99gb": 1}
  too-many:
    - devices: all
      mig-enabled: true
      mig-devices: {"3g.40gb": 3}
  first-only:
    - devices: [0]
      mig-enabled: true
      mig-devices: {"1g.10gb": 7}
  zero-count:
    - devices: all
      mig-enabled: true
      mig-devices: {"1g.10gb": 7, "2g.20gb": 0}
  explicit-0:
    - devices: [0]
      mig-enabled: true
      mig-devices: {"1g.10gb": 1}
""", "custom.yaml")


def balanced_entry_devices() -> dict[str, int]:
    """The H100 entry of all-balanced in the shipped ConfigMap (selected by PCI ID 0x233010DE)."""
    _, entries = default_spec().select("all-balanced")
    entry = next(e for e in entries if "0x233010DE" in e.device_filter)
    assert entry.mig_devices
    return {k: v for k, v in entry.mig_devices.items() if v}


def test_p5_all_balanced_mixed() -> None:
    p = project_node(P5.gpus(), "mixed", None, "all-balanced", node="n0", instance_type="p5.48xlarge")
    assert p.allocatable == {"nvidia.com/gpu": 0, "nvidia.com/mig-1g.10gb": 16, "nvidia.com/mig-2g.20gb": 8,
                             "nvidia.com/mig-3g.40gb": 8}
    mig = {k: v for k, v in p.allocatable.items() if k.startswith("nvidia.com/mig-")}
    assert mig == {f"nvidia.com/mig-{k}": v * P5.gpu_count for k, v in balanced_entry_devices().items()}
    assert (p.states, p.state, p.reason, p.plugin_error) == (("pending", "success"), "success", None, None)
    assert p.labels[MIG_CONFIG_STATE] == "success" and p.labels[MIG_CONFIG] == "all-balanced"
    assert p.labels[MIG_STRATEGY] == "mixed"
    for resource, n in mig.items():
        assert p.labels[f"{resource}.count"] == str(n)
        assert p.labels[f"{resource}.product"] == f"NVIDIA-H100-80GB-HBM3-MIG-{resource.split('mig-')[1]}"
    assert p.labels["nvidia.com/mig-3g.40gb.multiprocessors"] == "60"
    assert p.labels["nvidia.com/mig-3g.40gb.memory"] == "40448"
    # every GPU MIG-enabled: the full-GPU labels still count 8 GPUs, with replicas 0 (lm/mig-strategy.go)
    assert p.labels["nvidia.com/gpu.count"] == "8" and p.labels["nvidia.com/gpu.replicas"] == "0"
    assert all(g.mig_enabled and sorted(g.counts.items()) == sorted(balanced_entry_devices().items())
               for g in p.gpus)


def test_single_all_1g10gb() -> None:
    p = project_node(P5.gpus(), "single", None, "all-1g.10gb")
    assert p.allocatable == {"nvidia.com/gpu": 56} and p.plugin_error is None
    assert p.labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3-MIG-1g.10gb"
    assert p.labels["nvidia.com/gpu.count"] == "56"
    assert p.labels["nvidia.com/gpu.memory"] == "9984"  # the MIG device's memory replaces the GPU's
    assert p.labels["nvidia.com/gpu.slices.gi"] == "1" and p.labels["nvidia.com/gpu.multiprocessors"] == "16"


def test_single_all_balanced_plugin_fails() -> None:
    p = project_node(P5.gpus(), "single", None, "all-balanced")
    assert p.state == "success"  # mig-manager is fine; the device plugin is not
    assert p.allocatable == {"nvidia.com/gpu": 0}  # registered at boot; the failing plugin registers nothing
    assert p.plugin_error and p.plugin_error.startswith("error starting plugins:")
    assert p.plugin_error.endswith("more than one MIG device type present on node")
    assert p.labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3-MIG-INVALID"
    assert p.labels["nvidia.com/gpu.count"] == "0"


def test_none_strategy_counts_gpus_even_with_mig_enabled() -> None:
    p = project_node(P5.gpus(), "none", None, "all-balanced")
    assert all(g.mig_enabled for g in p.gpus)
    assert p.allocatable == {"nvidia.com/gpu": 8}
    assert MIG_STRATEGY not in p.labels  # migStrategyLabeler adds nothing for none
    assert p.labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"


def test_single_without_mig_falls_back_to_full_gpus() -> None:
    p = project_node(P5.gpus(), "single", None, "all-disabled")
    assert p.allocatable == {"nvidia.com/gpu": 8} and p.plugin_error is None
    assert p.labels[MIG_STRATEGY] == "single" and p.labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    assert p.labels["nvidia.com/gpu.replicas"] == "1" and p.labels["nvidia.com/gpu.memory"] == "81559"


def test_unknown_config_fails_without_touching_gpus() -> None:
    p = project_node(P5.gpus(), "mixed", None, "all-3g.99gb")
    assert (p.states, p.state) == (("failed",), "failed")
    assert p.reason == "Error selecting MIG config: selected mig-config not present: all-3g.99gb"
    assert p.gpus == initial_states(P5.gpus())
    assert p.allocatable == {"nvidia.com/gpu": 8} and p.labels[MIG_CONFIG_STATE] == "failed"


def test_label_absent_does_nothing() -> None:
    out = reconcile(P5.gpus(), None, None)
    assert (out.states, out.state, out.reason, out.mode_change) == ((), None, None, False)
    p = project_node(P5.gpus(), "mixed", None, None)
    assert MIG_CONFIG_STATE not in p.labels and MIG_CONFIG not in p.labels


def test_already_applied_goes_straight_to_success() -> None:
    first = reconcile(P5.gpus(), None, "all-balanced")
    assert first.mode_change and first.states == ("pending", "success")
    again = reconcile(P5.gpus(), None, "all-balanced", current=first.gpus)
    assert again.states == ("success",) and not again.mode_change and again.gpus == first.gpus
    switched = reconcile(P5.gpus(), None, "all-1g.10gb", current=first.gpus)
    assert switched.states == ("pending", "success") and not switched.mode_change
    assert all(g.counts == {"1g.10gb": 7} for g in switched.gpus)


def test_zero_count_and_uncovered_gpus_never_assert() -> None:
    first = reconcile(P5.gpus(), CUSTOM, "zero-count")
    assert all(g.counts == {"1g.10gb": 7} for g in first.gpus)
    again = reconcile(P5.gpus(), CUSTOM, "zero-count", current=first.gpus)
    assert again.states == ("pending", "success") and any("zero count" in n for n in again.notes)
    partial = reconcile(P5.gpus(), CUSTOM, "first-only")
    assert partial.gpus[0].counts == {"1g.10gb": 7} and not partial.gpus[1].mig_enabled
    assert reconcile(P5.gpus(), CUSTOM, "first-only", current=partial.gpus).states == ("pending", "success")


def test_hopper_mode_change_needs_no_reboot() -> None:
    out = reconcile(P5.gpus(), None, "all-balanced", with_reboot=True)
    assert out.mode_change and "rebooting" not in out.states and out.state == "success"


def test_ampere_mode_change_resets_by_default() -> None:
    reset = reconcile(P4D.gpus(), None, "all-balanced")
    assert reset.states == ("pending", "success") and reset.mode_change
    assert all(g.mig_enabled and g.devices for g in reset.gpus)


def test_ampere_mode_change_reboots_where_reset_cannot_work() -> None:
    without = reconcile(P4D.gpus(), None, "all-balanced", gpu_reset_works=False)
    assert without.states == ("pending", "failed") and without.reason
    assert without.reason.startswith("error resetting all GPUs")
    assert not any(g.mig_enabled for g in without.gpus)
    with_reboot = project_node(P4D.gpus(), "mixed", None, "all-balanced", with_reboot=True, gpu_reset_works=False)
    # after the reboot mig-manager starts over: the devices are not there yet, so pending again
    assert with_reboot.states == ("pending", "rebooting", "pending", "success")
    assert with_reboot.allocatable == {"nvidia.com/gpu": 0, "nvidia.com/mig-1g.5gb": 16, "nvidia.com/mig-2g.10gb": 8,
                                       "nvidia.com/mig-3g.20gb": 8}
    back = reconcile(P4D.gpus(), None, "all-disabled", current=with_reboot.gpus, with_reboot=True,
                     gpu_reset_works=False)
    assert back.states == ("pending", "rebooting", "success") and not any(g.mig_enabled for g in back.gpus)


def test_profile_unknown_everywhere_succeeds_empty() -> None:
    p = project_node(P5.gpus(), "single", CUSTOM, "unknown-everywhere")
    assert p.state == "success" and p.reason is None
    assert all(g.mig_enabled and g.devices == () for g in p.gpus)
    assert any("exists on no GPU" in n for n in p.notes)
    assert p.plugin_error and p.plugin_error.endswith("device 0 has no MIG devices configured")
    mixed = device_plugin.advertise("mixed", p.gpus)
    assert mixed.resources == {} and mixed.error is None and len(mixed.warnings) == 8


def test_config_that_does_not_fit_fails_and_leaves_gpu_empty() -> None:
    out = reconcile(P5.gpus(), CUSTOM, "too-many")
    assert out.state == "failed" and out.reason
    assert out.reason.startswith("GPU 0: error setting MIGConfig: error attempting multiple config orderings")
    assert out.gpus[0].mig_enabled and out.gpus[0].devices == ()


def test_profile_missing_on_one_gpu_of_the_node() -> None:
    gpus = parse_gpu_list(["H100-80GB,A100-40GB"])
    out = reconcile(gpus, None, "all-1g.5gb", with_reboot=True)
    assert out.state == "failed" and out.reason
    assert 'MIG profile "1g.5gb" not found on this GPU' in out.reason and out.reason.startswith("GPU 0:")


def test_non_mig_gpus() -> None:
    g5 = parse_gpu_list(["A10G-24GBx4"])
    explicit = reconcile(g5, CUSTOM, "explicit-0")
    assert explicit.state == "failed" and explicit.reason == "GPU 0: cannot set MIG mode on non MIG-capable GPU"
    skipped = reconcile(g5, None, "all-enabled")  # devices: all -> apply skips non-capable GPUs
    assert skipped.states == ("pending", "success") and skipped.mode_change
    rebooted = reconcile(g5, None, "all-enabled", with_reboot=True)
    assert rebooted.states == ("pending", "rebooting", "failed")
    assert rebooted.reason == "MIG mode change did not take effect after rebooting"
    # what mig-manager would do there (above) never happens: the GPU Operator runs no mig-manager on such nodes
    node = project_node(g5, "mixed", None, "all-enabled")
    assert node.allocatable == {"nvidia.com/gpu": 4} and (node.state, node.states) == (None, ())
    assert "nvidia.com/mig.config.state" not in node.labels and "no mig-manager runs on this node" in node.notes[0]
    assert project_node(g5, "mixed", None, None).labels["nvidia.com/mig.capable"] == "false"


def test_me_profile_naming_depends_on_plugin_version() -> None:
    old = project_node(P5.gpus(), "mixed", None, "all-1g.10gb.me", device_plugin_version="v0.19.3")
    new = project_node(P5.gpus(), "mixed", None, "all-1g.10gb.me", device_plugin_version="v0.20.0")
    assert project_node(P5.gpus(), "mixed", None, "all-1g.10gb.me").allocatable == new.allocatable  # the default
    assert old.gpus[0].devices == ("1g.10gb+me",)
    assert old.allocatable == {"nvidia.com/gpu": 0, "nvidia.com/mig-1g.10gb": 8}  # issue #1462: attributes dropped
    assert new.allocatable == {"nvidia.com/gpu": 0, "nvidia.com/mig-1g.10gb.me": 8}
    for p in (old, new):  # GFD names it from MigProfile.String() in both versions
        assert p.labels["nvidia.com/mig-1g.10gb.me.count"] == "8"
        assert p.labels["nvidia.com/mig-1g.10gb.me.engines.ofa"] == "1"


def test_compute_instances() -> None:
    states = reconcile(P5.gpus(), CUSTOM, "ci").gpus
    assert states[0].counts == {"3g.40gb": 1, "1c.3g.40gb": 3}
    old = device_plugin.advertise("mixed", states, version="v0.19.3")
    assert old.resources == {"nvidia.com/mig-3g.40gb": 32}  # unanchored "3g.40gb" matches "1c.3g.40gb"
    new = device_plugin.advertise("mixed", states, version="v0.20.0")
    assert new == device_plugin.advertise("mixed", states)  # the default: v0.20.0 (GPU Operator v26.7.0)
    assert new.resources == {} and new.error
    assert new.error.endswith("MIG profile '1c.3g.40gb' does not match any resource patterns")
    single = device_plugin.advertise("single", states)
    assert single.error and "more than one MIG device type" in single.error
    labels = gfd.labels("mixed", states)
    assert labels["nvidia.com/mig-1c.3g.40gb.count"] == "24" and labels["nvidia.com/mig-1c.3g.40gb.slices.ci"] == "1"


def test_single_requires_one_mig_enabled_value() -> None:
    states = reconcile(P5.gpus(), CUSTOM, "first-only").gpus
    single = device_plugin.advertise("single", states)
    assert single.error and single.error.endswith("all devices on the node must be configured with the same "
                                                  "migEnabled value")
    assert gfd.labels("single", states)["nvidia.com/gpu.product"].endswith("-MIG-INVALID")
    assert device_plugin.advertise("mixed", states).resources == {"nvidia.com/gpu": 7, "nvidia.com/mig-1g.10gb": 7}


def test_kubelet_keeps_previous_resources_at_zero() -> None:
    balanced = project_node(P5.gpus(), "mixed", None, "all-balanced")
    disabled = project_node(P5.gpus(), "mixed", None, "all-disabled", current=balanced.gpus)
    assert disabled.allocatable == {"nvidia.com/gpu": 8, "nvidia.com/mig-1g.10gb": 0,
                                    "nvidia.com/mig-2g.20gb": 0, "nvidia.com/mig-3g.40gb": 0}


def test_driver_labels_and_bad_driver() -> None:
    labels = gfd.labels("none", initial_states(P5.gpus()), driver="580.159.04")
    assert labels["nvidia.com/cuda.driver.major"] == "580" and labels["nvidia.com/cuda.driver.rev"] == "04"
    assert labels["nvidia.com/cuda.driver-version.full"] == "580.159.04"
    with pytest.raises(ValueError, match="does not match format"):
        gfd.labels("none", initial_states(P5.gpus()), driver="580")


def test_state_equality_includes_the_model() -> None:
    h100, a100 = parse_gpu_list(["H100-80GB,A100-80GB"])
    assert GpuMigState(h100, True, ("1g.10gb",)) != GpuMigState(a100, True, ("1g.10gb",))
    assert hash(GpuMigState(h100, True, ("1g.10gb",))) == hash(GpuMigState(a100, True, ("1g.10gb",)))
    with pytest.raises(ValueError, match="same GPU models"):
        reconcile([h100], None, "all-disabled", current=initial_states([a100]))


def test_unknown_strategy_is_a_plugin_error() -> None:
    result = device_plugin.advertise("weird", initial_states(P5.gpus()))
    assert result.error == "error starting plugins: unable to validate flags: unknown MIG strategy: weird"
    with pytest.raises(ValueError):
        device_plugin.parse_version("latest")


def test_as_dict_keys() -> None:
    doc = project_node(P5.gpus(), "mixed", None, "all-balanced").as_dict()
    assert {"state", "states", "reason", "allocatable", "labels", "gpus"} <= set(doc)
    assert doc["gpus"][0] == {"index": 0, "model": "H100-80GB", "mig_enabled": True,
                              "devices": ["3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb"]}


def test_thousand_nodes_are_projected_each_on_its_own() -> None:
    """1,000 projections in a row (as for a large fleet): each is the node's own, equal to the projection of that
    config alone, whatever came before it. How long they take: benchmarks/bench_projection.py."""
    configs = ["all-balanced", "all-1g.10gb", "all-2g.20gb", "all-3g.40gb", "all-disabled"]
    out = [project_node(P5.gpus(), "mixed", None, configs[i % len(configs)], node=f"sim-{i}") for i in range(1000)]
    assert [p.node for p in out] == [f"sim-{i}" for i in range(1000)]
    assert out[2].allocatable == {"nvidia.com/gpu": 0, "nvidia.com/mig-2g.20gb": 24}
    alone = {c: project_node(P5.gpus(), "mixed", None, c, node="alone").as_dict() for c in configs}
    for i, projection in enumerate(out):
        assert {**projection.as_dict(), "node": "alone"} == alone[configs[i % len(configs)]], f"sim-{i}"


def test_gfd_groups_and_names_gpus_by_their_nvml_name() -> None:
    """GFD counts GPUs per NVML name (lm/mig-strategy.go newGPULabelers), so two boards of one model with different
    names are two products; full GPUs overwrite MIG-enabled ones, as for two models."""
    h100 = get_instance_type("p5.48xlarge").gpu_model()
    states = [GpuMigState(h100, True, ("1g.10gb",) * 7), GpuMigState(h100, False, ())]
    names = ["NVIDIA H100 80GB HBM3", "NVIDIA H100 PCIe"]
    labels = gfd.labels("mixed", states, names=names)
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-H100-PCIe" and labels["nvidia.com/gpu.count"] == "1"
    assert labels["nvidia.com/gpu.replicas"] == "1"
    assert labels["nvidia.com/mig-1g.10gb.product"] == "NVIDIA-H100-80GB-HBM3-MIG-1g.10gb"
    assert gfd.labels("mixed", states) != labels  # without names: the model's primary board for both
    with pytest.raises(ValueError, match="1 GPU names for 2 GPUs"):
        gfd.labels("mixed", states, names=names[:1])


def test_a_node_labelled_with_a_board_variant_is_that_board() -> None:
    from mig_conformance.k8s.model import GpuNode
    from mig_conformance.k8s.node_hardware import node_gpu_boards, node_gpu_models

    node = GpuNode("n", {"nvidia.com/gpu.product": "NVIDIA-H100-PCIe", "nvidia.com/gpu.count": "2"}, {}, {})
    assert [b.key for b in node_gpu_boards(node)] == ["H100-PCIE-80GB"] * 2
    assert [m.key for m in node_gpu_models(node)] == ["H100-80GB"] * 2
    p5 = GpuNode("p", {"node.kubernetes.io/instance-type": "p5.48xlarge"}, {}, {})
    assert {b.nvml_name for b in node_gpu_boards(p5)} == {"NVIDIA H100 80GB HBM3"}
