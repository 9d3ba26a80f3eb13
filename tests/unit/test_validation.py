"""Semantic validation of configs on nodes, including mixed nodes and mig-parted's quirks."""

from __future__ import annotations

from mig_conformance.gpus.catalog import Catalog
from mig_conformance.gpus.device_ids import DeviceID
from mig_conformance.mig.spec import parse_spec_text
from mig_conformance.validation import validate_node

MIXED = """\
version: v1
mig-configs:
  custom:
    - devices: [0, 1]
      mig-enabled: false
    - devices: [2]
      mig-enabled: true
      mig-devices:
        "1g.10gb": 7
    - devices: [3]
      mig-enabled: true
      mig-devices:
        "3g.40gb": 1
        "4g.40gb": 1
  too-much:
    - devices: all
      mig-enabled: true
      mig-devices:
        "3g.40gb": 2
        "1g.10gb": 1
  partial:
    - devices: [0]
      mig-enabled: true
      mig-devices: {"7g.80gb": 1}
  zero:
    - devices: all
      mig-enabled: true
      mig-devices: {"7g.80gb": 1, "1g.10gb": 0}
  last-wins:
    - devices: all
      mig-enabled: true
      mig-devices: {"7g.80gb": 1}
    - devices: [1]
      mig-enabled: false
  a100-profile:
    - devices: all
      mig-enabled: true
      mig-devices: {"1g.5gb": 7}
"""


def _h100(catalog: Catalog, n: int = 4):
    return [catalog.get("H100-80GB")] * n


def test_per_gpu_plan(catalog: Catalog) -> None:
    report = validate_node(parse_spec_text(MIXED, "m.yaml"), "custom", _h100(catalog), "node")
    assert report.valid, report.errors
    assert [g.mig_enabled for g in report.gpus] == [False, False, True, True]
    assert report.gpus[2].devices == {"1g.10gb": 7}
    assert sorted(p["profile"] for p in report.gpus[3].as_dict()["placement"]) == ["3g.40gb", "4g.40gb"]


def test_does_not_fit_names_entry_key_line_and_gpu(catalog: Catalog) -> None:
    report = validate_node(parse_spec_text(MIXED, "m.yaml"), "too-much", _h100(catalog, 2), "node")
    assert not report.valid and report.mig_parted["apply"] == "failure"
    err = report.errors[0]
    assert (err.location.file, err.location.config, err.location.entry, err.location.key) == \
        ("m.yaml", "too-much", 0, "mig-devices")
    assert err.location.line == 18 and err.gpu == 0
    assert "no non-overlapping placement" in err.message and "all orderings failed" in err.message


def test_uncovered_gpus_warn_that_assert_fails(catalog: Catalog) -> None:
    report = validate_node(parse_spec_text(MIXED), "partial", _h100(catalog, 2), "node")
    assert report.valid
    assert (report.mig_parted["apply"], report.mig_parted["assert_after_apply"]) == ("success", "failure")
    assert report.mig_parted["assert_result"] == {
        "exit_code": 1, "message": "Assertion failure: selected configuration not currently applied",
        "reason": "Not all GPUs match the specified config"}
    assert "not all GPUs match" in report.warnings[0].message


def test_zero_count_warning_and_last_entry_wins(catalog: Catalog) -> None:
    spec = parse_spec_text(MIXED)
    zero = validate_node(spec, "zero", _h100(catalog, 1))
    assert zero.valid and "zero count" in zero.warnings[0].message
    last = validate_node(spec, "last-wins", _h100(catalog, 2))
    assert [g.mig_enabled for g in last.gpus] == [True, False]
    assert any("last one wins" in w.message for w in last.warnings)


def test_profile_of_other_gpu_on_mixed_node(catalog: Catalog) -> None:
    spec = parse_spec_text(MIXED)
    mixed = [catalog.get("A100-40GB"), catalog.get("H100-80GB")]
    report = validate_node(spec, "a100-profile", mixed)
    assert [g.gpu for g in report.errors] == [1]
    assert 'MIG profile "1g.5gb" not found on this GPU' in report.errors[0].message
    assert report.mig_parted["apply"] == "failure"


def test_non_mig_gpu(catalog: Catalog) -> None:
    spec = parse_spec_text("version: v1\nmig-configs:\n  c:\n    - devices: [0]\n      mig-enabled: true\n"
                           "      mig-devices: {}\n")
    report = validate_node(spec, "c", [catalog.get("A10G-24GB")])
    assert not report.valid and "cannot set MIG mode on non MIG-capable GPU" in report.errors[0].message


def test_unknown_config_name(catalog: Catalog) -> None:
    report = validate_node(parse_spec_text(MIXED), "nope", _h100(catalog, 1))
    assert not report.valid and "selected mig-config not present: nope" in report.errors[0].message


def _one(text: str) -> object:
    return parse_spec_text("version: v1\nmig-configs:\n  c:\n" + text, "v.yaml")


def _mp(report) -> tuple[str, str]:
    return report.mig_parted["apply"], report.mig_parted["assert_after_apply"]


def test_overlapping_entries_with_different_modes_fail_apply(catalog: Catalog) -> None:
    spec = _one("    - devices: all\n      mig-enabled: false\n    - devices: [0]\n      mig-enabled: true\n"
                "      mig-devices: {1g.10gb: 7}\n")
    report = validate_node(spec, "c", _h100(catalog, 2))
    assert not report.valid and _mp(report) == ("failure", "failure")
    assert report.mig_parted["apply_result"]["message"].endswith(
        "MIG mode is currently enabled, but the configuration specifies it should be disabled")
    (err,) = report.errors
    assert (err.gpu, err.location.entry, err.location.key, err.location.line) == (0, 0, "mig-enabled", 5)


def test_non_mig_gpu_enabled_for_all_devices_fails_assert(catalog: Catalog) -> None:
    spec = _one("    - devices: all\n      mig-enabled: true\n      mig-devices: {1g.10gb: 7}\n")
    report = validate_node(spec, "c", [catalog.get("T4-16GB"), catalog.get("H100-80GB")])
    assert report.valid and _mp(report) == ("success", "failure")
    assert report.mig_parted["assert_result"]["reason"] == "Unable to assert MIG mode enabled on non MIG-capable GPU"
    assert any("unable to assert MIG mode enabled" in w.message and w.gpu == 0 for w in report.warnings)
    assert report.gpus[1].after_apply == {"mig_enabled": True, "devices": {"1g.10gb": 7}}


def test_zero_counts_fail_assert(catalog: Catalog) -> None:
    report = validate_node(parse_spec_text(MIXED), "zero", _h100(catalog, 1))
    assert report.valid and _mp(report) == ("success", "failure")
    assert report.gpus[0].after_apply["devices"] == {"7g.80gb": 1}


def test_non_canonical_names_are_created_but_never_asserted(catalog: Catalog) -> None:
    spec = _one("    - devices: all\n      mig-enabled: true\n      mig-devices: {1c.1g.10gb: 3, 01g.10gb: 2}\n")
    report = validate_node(spec, "c", _h100(catalog, 1))
    assert report.valid and _mp(report) == ("success", "failure")
    assert report.gpus[0].after_apply["devices"] == {"1g.10gb": 5}
    assert sorted(w.location.key for w in report.warnings) == ["mig-devices", "mig-devices"]
    assert all("write '1g.10gb'" in w.message for w in report.warnings)


def test_profiles_unknown_on_the_node_even_with_zero_count(catalog: Catalog) -> None:
    spec = _one("    - devices: all\n      mig-enabled: true\n      mig-devices: {1g.10gb: 7, 1g.5gb: 0}\n")
    report = validate_node(spec, "c", _h100(catalog, 1))
    assert not report.valid and _mp(report) == ("success", "failure")  # Flatten fails: the GPU is cleared
    assert "1g.5gb exists on no GPU" in report.errors[0].message
    assert report.gpus[0].after_apply == {"mig_enabled": True, "devices": {}}


def test_every_selecting_entry_is_checked(catalog: Catalog) -> None:
    spec = _one("    - devices: all\n      mig-enabled: true\n      mig-devices: {7g.80gb: 2}\n"
                "    - devices: all\n      mig-enabled: true\n      mig-devices: {7g.80gb: 1}\n")
    report = validate_node(spec, "c", _h100(catalog, 1))
    assert not report.valid and _mp(report) == ("failure", "failure")
    assert [e.location.entry for e in report.errors] == [0]


def test_syntactically_valid_names_that_exist_nowhere(catalog: Catalog) -> None:
    spec = _one("    - devices: all\n      mig-enabled: true\n      mig-devices: {4c.3g.40gb: 1, 0g.0gb: 1}\n")
    assert spec.valid
    report = validate_node(spec, "c", _h100(catalog, 1))
    assert not report.valid and "4c.3g.40gb, 0g.0gb exist on no GPU" in report.errors[0].message


def test_huge_counts_are_quick_errors(catalog: Catalog) -> None:
    spec = _one("    - devices: all\n      mig-enabled: true\n      mig-devices: {1g.10gb: 3000000}\n")
    report = validate_node(spec, "c", _h100(catalog, 2))
    assert not report.valid and _mp(report) == ("failure", "failure")
    assert "3000000 x 1g.10gb exceeds the maximum of 7" in report.errors[0].message


def test_pci_id_overrides_reach_the_simulator(catalog: Catalog) -> None:
    spec = _one("    - device-filter: '0x233110DE'\n      devices: all\n      mig-enabled: true\n"
                "      mig-devices: {7g.80gb: 1}\n")
    plain = validate_node(spec, "c", _h100(catalog, 1))
    assert plain.gpus[0].entry is None and plain.gpus[0].after_apply["devices"] == {}
    pcie = validate_node(spec, "c", _h100(catalog, 1), device_ids=[DeviceID(0x2331, 0x10DE)])
    assert pcie.gpus[0].entry == 0 and _mp(pcie) == ("success", "success")
    assert pcie.gpus[0].after_apply["devices"] == {"7g.80gb": 1}
