"""The mig-parted simulator: apply / assert / export sequences and messages of docs/reference/mig-parted.md."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import yaml

from mig_conformance.gpus.catalog import Catalog
from mig_conformance.gpus.profile_names import parse_profile
from mig_conformance.mig.config import flatten
from mig_conformance.mig.spec import parse_spec_text
from mig_conformance.simulators import nvml as nv
from mig_conformance.simulators.mig_parted import MigParted, capitalize, merge_mig_config_specs, spec_for

ALL_ORDERINGS = "error attempting multiple config orderings: all orderings failed"


def _parted(catalog: Catalog, *keys: str) -> MigParted:
    return MigParted(nv.NvmlSimulator([catalog.get(k) for k in keys], "mp-node", catalog=catalog))


def _layout(parted: MigParted, i: int = 0) -> list[dict]:
    return parted.nvml.mig_layout(i)


def _spec(text: str):
    return parse_spec_text(text, "<test>")


def test_apply_from_disabled_then_assert_and_export(catalog: Catalog) -> None:
    parted = _parted(catalog, "H100-80GB", "H100-80GB")
    devices = {"1g.10gb": 2, "2g.20gb": 1, "3g.40gb": 1}
    res = parted.apply(spec_for(devices))
    assert res.ok and res.stdout == ["MIG configuration applied successfully"]
    assert [g.mig_devices for g in res.gpus] == [devices, devices]
    assert [g.mig_mode for g in res.gpus] == [[1, 1], [1, 1]]
    assert parted.assert_config(spec_for(devices)).stdout == ["Selected MIG configuration currently applied"]
    exported = yaml.safe_load(parted.export().output)
    assert exported == {"version": "v1", "mig-configs": {"current": [
        {"devices": "all", "mig-enabled": True, "mig-devices": devices}]}}
    debug = res.messages("debug")
    # Hopper needs no reset (docs/reference/nvml.md#mig-mode-changes): nothing is pending, so no ResetAllGPUs.
    assert "    Mode change pending: false" in debug and "Resetting all GPUs..." not in debug
    assert "    Clearing existing MIG configuration" not in debug


def test_ampere_apply_from_disabled_resets_all_gpus(catalog: Catalog) -> None:
    parted = _parted(catalog, "A100-40GB", "A100-40GB")
    devices = {"1g.5gb": 2, "2g.10gb": 1, "3g.20gb": 1}
    res = parted.apply(spec_for(devices))
    assert res.ok and [g.mig_mode for g in res.gpus] == [[1, 1], [1, 1]]
    debug = res.messages("debug")
    assert "    Mode change pending: true" in debug and "Resetting all GPUs..." in debug


def test_gi_creation_follows_flatten_order(catalog: Catalog) -> None:
    parted = _parted(catalog, "H100-80GB")
    devices = {"1g.10gb": 2, "2g.20gb": 1, "3g.40gb": 1}
    assert parted.apply(spec_for(devices)).ok
    # GIs were created one by one in Flatten order (3g, 2g, 1g, 1g) through CreateGpuInstance:
    # their serials (creation order) sorted give the profiles in that order.
    gis = sorted(parted.nvml.gpus[0].gis.values(), key=lambda g: g.serial)
    model = catalog.get("H100-80GB")
    order = [model.profile_by_id(g.profile_id).name for g in gis]
    expected = [p.name for p in flatten({parse_profile(k): n for k, n in devices.items()})]
    assert order == expected == ["3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb"]


def test_compute_instances_reuse_the_last_gi(catalog: Catalog) -> None:
    parted = _parted(catalog, "H100-80GB")
    assert parted.apply(spec_for({"1c.3g.40gb": 3})).ok
    assert [(g["profile"], len(g["compute_instances"])) for g in _layout(parted)] == [("3g.40gb", 3)]
    assert parted.apply(spec_for({"3g.40gb": 2})).ok
    assert [(g["profile"], g["compute_instances"]) for g in _layout(parted)] == [
        ("3g.40gb", ["3g.40gb"]), ("3g.40gb", ["3g.40gb"])]
    assert parted.apply(spec_for({"1c.3g.40gb": 4})).ok  # 3 fill the first GI, the 4th opens a second
    assert sorted(len(g["compute_instances"]) for g in _layout(parted)) == [1, 3]


def test_profile_not_found_on_this_gpu(catalog: Catalog) -> None:
    parted = _parted(catalog, "H100-80GB", "A100-40GB")
    res = parted.apply(spec_for({"1g.5gb": 1}))  # exists on the A100 only
    assert not res.ok
    assert 'MIG profile "1g.5gb" not found on this GPU' in res.messages("error")
    assert res.error == capitalize(f"error applying MIG configuration with hooks: error setting MIGConfig: "
                                   f"{ALL_ORDERINGS}")
    assert res.error.startswith("Error applying")
    assert res.messages("fatal") == [res.error]
    assert _layout(parted, 0) == [] and res.gpus[0].status == "failed"
    assert res.gpus[1].status == "mode-set" and res.gpus[1].mig_devices == {}  # the config walk stopped at GPU 0


def test_profile_unknown_on_every_gpu_clears_and_reports_success(catalog: Catalog) -> None:
    parted = _parted(catalog, "H100-80GB")
    assert parted.apply(spec_for({"3g.40gb": 2})).ok
    res = parted.apply(spec_for({"1g.99gb": 1}))
    assert res.ok and res.stdout == ["MIG configuration applied successfully"]
    assert _layout(parted) == []
    assert not parted.assert_config(spec_for({"1g.99gb": 1})).ok


def test_zero_count_never_equal(catalog: Catalog) -> None:
    parted = _parted(catalog, "H100-80GB")
    devices = {"1g.10gb": 7, "2g.20gb": 0}
    assert parted.apply(spec_for(devices)).ok
    first = {g.serial for g in parted.nvml.gpus[0].gis.values()}
    assert len(first) == 7
    failed = parted.assert_config(spec_for(devices))
    assert failed.error == "Assertion failure: selected configuration not currently applied"
    assert parted.apply(spec_for(devices)).ok  # cleared and recreated: new GIs
    assert not first & {g.serial for g in parted.nvml.gpus[0].gis.values()}


def test_all_orderings_failed_leaves_gpu_empty_and_counts_orderings(catalog: Catalog) -> None:
    parted = _parted(catalog, "H100-80GB")
    assert parted.apply(spec_for({"7g.80gb": 1})).ok
    res = parted.apply(spec_for({"4g.40gb": 1, "3g.40gb": 1, "1g.10gb": 1}))
    assert not res.ok and res.error.endswith(ALL_ORDERINGS)
    assert res.gpus[0].orderings_tried == 6  # 3 distinct profiles
    assert all(m.startswith("Error creating GPU instance") for m in res.messages("error"))
    assert _layout(parted) == [] and res.gpus[0].mig_devices == {}


def test_a_later_ordering_succeeds_after_an_injected_failure(catalog: Catalog) -> None:
    parted = _parted(catalog, "H100-80GB")
    parted.apply(spec_for({}, mig_enabled=True))
    parted.nvml.faults.fail_create(1, nv.NVMLError_InsufficientResources, kind="gi")
    res = parted.apply(spec_for({"3g.40gb": 1, "1g.10gb": 1}))
    assert res.ok and res.gpus[0].orderings_tried == 2
    assert res.messages("error") == ["Error creating GPU instance for '3g.40gb': Insufficient Resources"]
    assert res.gpus[0].mig_devices == {"3g.40gb": 1, "1g.10gb": 1}


def test_failed_ci_in_reused_gi_opens_a_new_gi(catalog: Catalog) -> None:
    parted = _parted(catalog, "H100-80GB")
    parted.apply(spec_for({}, mig_enabled=True))
    parted.nvml.faults.fail_create(2, nv.NVMLError_InsufficientResources, kind="ci")
    assert parted.apply(spec_for({"1c.7g.80gb": 2})).ok is False  # the 2nd CI fails, a 2nd 7g GI cannot exist
    parted.nvml.faults.fail_create(2, nv.NVMLError_InsufficientResources, kind="ci")
    assert parted.apply(spec_for({"1c.3g.40gb": 2})).ok  # the 2nd CI goes to a new 3g GI instead
    assert sorted(len(g["compute_instances"]) for g in _layout(parted)) == [1, 1]


def test_mode_change_clears_enabled_gpus_and_resets_all(catalog: Catalog) -> None:
    parted = _parted(catalog, "H100-80GB", "H100-80GB")
    assert parted.apply(_spec("""
version: v1
mig-configs:
  c:
    - devices: [0]
      mig-enabled: true
      mig-devices: {"3g.40gb": 2}
""")).ok
    before = {g.serial for g in parted.nvml.gpus[0].gis.values()}
    res = parted.apply(spec_for({"3g.40gb": 2}))  # GPU 1 needs a mode change
    assert res.ok
    assert "    Clearing existing MIG configuration" in res.messages("debug")
    after = {g.serial for g in parted.nvml.gpus[0].gis.values()}
    assert len(after) == 2 and not before & after  # GPU 0 was wiped and rebuilt


def test_skip_reset_leaves_mode_pending(catalog: Catalog) -> None:
    parted = _parted(catalog, "A100-40GB")
    res = parted.apply(spec_for({"1g.5gb": 7}), skip_reset=True)
    assert res.error == ("Error applying MIG configuration with hooks: unable to apply MIG config with MIG mode "
                         "disabled")
    assert res.gpus[0].mig_mode == [0, 1]
    mode_only = parted.apply(spec_for({"1g.5gb": 7}), mode_only=True, skip_reset=True)
    assert mode_only.ok and mode_only.gpus[0].mig_mode == [0, 1]


def test_reset_refused_when_gpu_in_use(catalog: Catalog) -> None:
    parted = _parted(catalog, "H100-80GB")
    parted.nvml.faults.in_use.add(0)
    res = parted.apply(spec_for({"7g.80gb": 1}))
    assert res.error == ("Error applying MIG configuration with hooks: error resetting all GPUs: "
                         "In use by another client")


def test_non_mig_gpus(catalog: Catalog) -> None:
    parted = _parted(catalog, "H100-80GB", "L40S-48GB")
    assert parted.apply(spec_for({"7g.80gb": 1})).ok  # devices: all skips the L40S
    assert parted.assert_config(spec_for({"7g.80gb": 1})).ok is False  # ... but it does not match
    res = parted.apply(spec_for({"7g.80gb": 1}, devices=[1]))
    assert res.error == "Error applying MIG configuration with hooks: cannot set MIG mode on non MIG-capable GPU"
    assert parted.assert_config(spec_for(None, mig_enabled=False, devices=[1])).ok is False  # GPU 0 not covered
    mixed = _spec("""
version: v1
mig-configs:
  c:
    - device-filter: "0x233010DE"
      devices: all
      mig-enabled: true
      mig-devices: {"7g.80gb": 1}
    - device-filter: "0x26B910DE"
      devices: all
      mig-enabled: false
""")
    assert parted.assert_config(mixed).ok


def test_assert_modes_and_coverage(catalog: Catalog) -> None:
    parted = _parted(catalog, "H100-80GB", "H100-80GB")
    only_gpu0 = spec_for({"2g.20gb": 3}, devices=[0])
    assert parted.assert_config(only_gpu0, valid_config=True).stdout == ["Selected MIG configuration is valid"]
    assert not parted.assert_config(only_gpu0, mode_only=True).ok
    assert parted.apply(only_gpu0).ok
    mode = parted.assert_config(only_gpu0, mode_only=True)
    assert mode.stdout == ["Selected MIG mode settings from configuration currently applied"]
    full = parted.assert_config(only_gpu0)  # GPU 1 is matched by no entry
    assert not full.ok and "Not all GPUs match the specified config" in full.messages("debug")


def test_last_matching_entry_wins(catalog: Catalog) -> None:
    parted = _parted(catalog, "H100-80GB")
    spec = _spec("""
version: v1
mig-configs:
  c:
    - devices: all
      mig-enabled: true
      mig-devices: {"7g.80gb": 1}
    - devices: [0]
      mig-enabled: true
      mig-devices: {"1g.10gb": 7}
""")
    res = parted.apply(spec)
    assert res.ok and res.gpus[0].mig_devices == {"1g.10gb": 7}


def test_selection_and_parse_errors(catalog: Catalog) -> None:
    parted = _parted(catalog, "H100-80GB")
    two = _spec("version: v1\nmig-configs:\n  a: [{devices: all, mig-enabled: false}]\n"
                "  b: [{devices: all, mig-enabled: false}]\n")
    assert parted.apply(two).error == ("Error selecting MIG config: missing required flag 'selected-config' when "
                                       "more than one config available")
    assert parted.assert_config(two, "zz").error == "Error selecting MIG config: selected mig-config not present: zz"
    bad = _spec("version: v2\n")
    assert parted.apply(bad).error == ("Error parsing config file: unmarshal error: error unmarshaling JSON: while "
                                       "decoding JSON: unknown version: v2")
    odd_filter = _spec("version: v1\nmig-configs:\n  a: [{device-filter: MODEL, devices: all, mig-enabled: true, "
                       "mig-devices: {}}]\n")
    res = parted.apply(odd_filter)  # mig-parted accepts the filter; it matches no GPU
    assert res.ok and res.gpus[0].mig_mode == [0, 0]


def test_legacy_driver_node_profiles_need_mig_enabled(catalog: Catalog) -> None:
    parted = MigParted(nv.NvmlSimulator([catalog.get("H100-80GB")] * 2, "legacy", catalog=catalog,
                                        legacy_driver=True))
    parted.nvml.nvmlInit()
    assert parted.node_profiles() == []
    parted.nvml.nvmlShutdown()
    res = parted.apply(spec_for({"1g.10gb": 7}))
    assert res.ok and [g.mig_devices for g in res.gpus] == [{"1g.10gb": 7}] * 2


@pytest.mark.parametrize("key", ["A100-40GB", "A30-24GB", "H200-141GB", "RTXPRO6000-96GB", "GH200-96GB"])
def test_every_device_name_round_trips(catalog: Catalog, key: str) -> None:
    """Each catalog MIG device (GI or CI) applied alone reads back under the catalog's name."""
    model = catalog.get(key)
    parted = _parted(catalog, key)
    names = sorted({ci.name for p in model.gi_profiles for ci in p.compute_instances})
    for name in names:
        res = parted.apply(spec_for({name: 1}))
        assert res.ok, (name, res.error)
        assert res.gpus[0].mig_devices == {name: 1}


def test_export_merges_by_device_type(catalog: Catalog) -> None:
    parted = _parted(catalog, "H100-80GB", "H100-80GB", "A100-40GB", "L4-24GB")
    spec = _spec("""
version: v1
mig-configs:
  c:
    - device-filter: "0x233010DE"
      devices: all
      mig-enabled: true
      mig-devices: {"1g.10gb": 7}
    - device-filter: "0x20B010DE"
      devices: all
      mig-enabled: true
      mig-devices: {}
""")
    assert parted.apply(spec).ok
    text = parted.export().output
    assert '- device-filter: "0x233010DE"\n    devices: all\n' in text
    assert "mig-devices: {}" in text
    doc = yaml.safe_load(text)
    assert doc["mig-configs"]["current"] == [
        {"device-filter": "0x233010DE", "devices": "all", "mig-enabled": True, "mig-devices": {"1g.10gb": 7}},
        {"device-filter": "0x20B010DE", "devices": "all", "mig-enabled": True, "mig-devices": {}},
        {"device-filter": "0x27B810DE", "devices": "all", "mig-enabled": False, "mig-devices": {}}]
    assert parted.assert_config(parse_spec_text(text, "<export>")).ok  # export asserts as applied
    as_json = json.loads(parted.export("json", "mine").output)
    assert list(as_json["mig-configs"]) == ["mine"]
    assert parted.export("xml").error == "Unrecognized 'output-format': xml"


def test_merge_rules() -> None:
    specs = [{"device-filter": ["0xA"], "devices": [0], "mig-enabled": True, "mig-devices": {"x": 1}},
             {"device-filter": ["0xB"], "devices": [1], "mig-enabled": True, "mig-devices": {"x": 1}},
             {"device-filter": ["0xA"], "devices": [2], "mig-enabled": False, "mig-devices": {}}]
    merged = merge_mig_config_specs(specs)
    assert merged[0] == {"device-filter": ["0xA", "0xB"], "devices": [0, 1], "mig-enabled": True,
                         "mig-devices": {"x": 1}}
    assert merged[1] == {"device-filter": "0xA", "devices": [2], "mig-enabled": False, "mig-devices": {}}
    single = merge_mig_config_specs(specs[:1])
    assert single == [{"devices": "all", "mig-enabled": True, "mig-devices": {"x": 1}}]


def test_export_yaml_key_order_and_flow_lists(catalog: Catalog) -> None:
    parted = _parted(catalog, "A100-40GB", "H100-80GB", "A100-40GB")
    spec = _spec("""
version: v1
mig-configs:
  c:
    - devices: [0]
      mig-enabled: true
      mig-devices: {"1g.10gb": 1, "1g.5gb": 2, "2g.10gb": 1}
""")
    assert parted.apply(spec).ok
    text = parted.export().output
    assert '- device-filter: "0x20B010DE"\n    devices: [0]\n' in text
    assert '- device-filter: ["0x20B010DE", "0x233010DE"]\n    devices: [1, 2]\n' in text
    assert text.index("1g.5gb: 2") < text.index("1g.10gb: 1") < text.index("2g.10gb: 1")


def test_reset_of_all_gpus_wipes_gpus_the_config_does_not_select(catalog: Catalog) -> None:
    """ResetAllGPUs resets every GPU (docs/reference/mig-parted.md#apply): on Ampere GPU 1's MIG devices are gone."""
    parted = _parted(catalog, "A100-40GB", "A100-40GB")
    assert parted.apply(spec_for({"7g.40gb": 1}, devices=[1])).ok
    assert parted.nvml.mig_layout(1) != []
    res = parted.apply(spec_for({"7g.40gb": 1}, devices=[0]))
    assert res.ok and res.gpus[1].status == "not-selected"
    assert res.gpus[1].mig_mode == [1, 1] and parted.nvml.mig_layout(1) == []


def test_hopper_mode_change_keeps_other_gpus_and_works_with_skip_reset(catalog: Catalog) -> None:
    """Hopper: enabling MIG on GPU 0 needs no reset (docs/reference/nvml.md#mig-mode-changes), so GPU 1 keeps its
    MIG devices, and `apply -s` (skip reset) applies the whole config."""
    parted = _parted(catalog, "H100-80GB", "H100-80GB")
    assert parted.apply(spec_for({"7g.80gb": 1}, devices=[1])).ok
    kept = parted.nvml.mig_layout(1)
    res = parted.apply(spec_for({"7g.80gb": 1}, devices=[0]))
    assert res.ok and parted.nvml.mig_layout(1) == kept != []
    fresh = _parted(catalog, "H100-80GB")
    skipped = fresh.apply(spec_for({"3g.40gb": 2}), skip_reset=True)
    assert skipped.ok and skipped.gpus[0].mig_devices == {"3g.40gb": 2}
    ampere = _parted(catalog, "A100-40GB").apply(spec_for({"3g.20gb": 2}), skip_reset=True)
    assert not ampere.ok and "MIG mode disabled" in (ampere.error or "")  # pending until a reset


def test_unsupported_mig_device_when_names_disagree(catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    """A profile list whose names disagree with NVML's memory (gpu-operator#351): the created device is refused."""
    parted = _parted(catalog, "H100-80GB")
    assert parted.apply(spec_for({}, mig_enabled=True)).ok
    real = parted.device_profiles

    def skewed(i: int):
        return [replace(p, name=replace(p.name, gb=p.name.gb + 1)) for p in real(i)]

    monkeypatch.setattr(parted, "device_profiles", skewed)
    res = parted.apply(spec_for({"7g.81gb": 1}))
    assert "Unsupported MIG Device specified 7g.81gb, expected 7g.80gb instead" in res.messages("error")
    assert res.error.endswith(ALL_ORDERINGS) and parted.nvml.mig_layout(0) == []


def test_cached_results_keep_debug_lines_apart(catalog: Catalog) -> None:
    from mig_conformance.simulators.command_cache import CommandCache

    cache = CommandCache()
    spec = spec_for({"1g.10gb": 7})
    quiet = MigParted(nv.NvmlSimulator([catalog.get("H100-80GB")], "a"), gpu_outcomes=False, cache=cache)
    quiet.debug_log = False
    assert quiet.apply(spec).ok and quiet.apply(spec).messages("debug") == []
    loud = MigParted(nv.NvmlSimulator([catalog.get("H100-80GB")], "b"), gpu_outcomes=False, cache=cache)
    res = loud.apply(spec)
    assert res.ok and "Parsing config file..." in res.messages("debug")
