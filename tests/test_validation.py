"""Semantic validation of configs on nodes, including mixed nodes and mig-parted's quirks."""

from __future__ import annotations

from mig_conformance.catalog import Catalog
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
    assert report.mig_parted == {"apply": "success", "assert_after_apply": "failure"}
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
