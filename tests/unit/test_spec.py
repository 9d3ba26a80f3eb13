"""mig-parted v1 file parsing: what mig-parted accepts and rejects, with its texts and our locations."""

from __future__ import annotations

import pytest
import yaml

from mig_conformance.common.errors import InputError
from mig_conformance.gpus.device_ids import DeviceID
from mig_conformance.mig.spec import parse_installed_config, parse_spec_text, read_config_source

GOOD = """\
version: v1
mig-configs:
  all-disabled:
    - devices: all
      mig-enabled: false
  custom:
    - device-filter: ["0x233010DE", "0x20B010DE:0x134F10DE"]
      devices: [0, 1]
      mig-enabled: true
      mig-devices:
        "1g.10gb": 2
        "3g.40gb": 1
    - devices: all
      mig-enabled: true
      mig-devices: {}
"""


def test_good_file_parses() -> None:
    spec = parse_spec_text(GOOD, "good.yaml")
    assert spec.valid, spec.problems
    name, entries = spec.select("custom")
    assert name == "custom" and len(entries) == 2
    e0 = entries[0]
    assert e0.devices == (0, 1) and e0.mig_devices == {"1g.10gb": 2, "3g.40gb": 1}
    assert e0.device_lines == {"1g.10gb": 11, "3g.40gb": 12}
    assert entries[1].mig_devices == {}


def test_device_filter_matching() -> None:
    _, entries = parse_spec_text(GOOD).select("custom")
    h100 = DeviceID.parse("0x233010DE")
    assert entries[0].selects(0, h100) and not entries[0].selects(2, h100)
    a100_other_subsystem = DeviceID(0x20B0, 0x10DE, 0x1111, 0x10DE)
    assert not entries[0].matches_device_filter(a100_other_subsystem)
    assert entries[0].matches_device_filter(DeviceID(0x20B0, 0x10DE, 0x134F, 0x10DE))
    assert str(DeviceID.parse("0x233010de")) == "0x233010DE"


def _problems(text: str) -> list[tuple[str, int | None, str | None, int | None, str | None]]:
    spec = parse_spec_text(text, "f.yaml")
    return [(p.message, p.location.line, p.location.config, p.location.entry, p.location.key) for p in spec.problems]


@pytest.mark.parametrize(("text", "upstream"), [
    ("mig-configs: {}\n", "unable to parse with missing 'version' field"),
    ("version: v2\nmig-configs: {}\n", "unknown version: v2"),
    ("version: v1\nmig-configs: {}\n", "at least one entry in 'mig-configs' is required"),
    ("version: v1\nextra: 1\nmig-configs:\n  a:\n    - devices: all\n      mig-enabled: false\n",
     "unexpected field: extra"),
    ("version: v1\nmig-configs:\n  a: []\n", "at least one entry in 'a' is required"),
    ("version: v1\nmig-configs:\n  a:\n    - mig-enabled: false\n", "missing required field: devices"),
    ("version: v1\nmig-configs:\n  a:\n    - devices: all\n", "missing required field: mig-enabled"),
    ("version: v1\nmig-configs:\n  a:\n    - devices: some\n      mig-enabled: false\n",
     "invalid string input for 'devices': some"),
    ("version: v1\nmig-configs:\n  a:\n    - devices: all\n      mig-enabled: true\n",
     "missing required field 'mig-devices' when 'mig-enabled' is true"),
    ("version: v1\nmig-configs:\n  a:\n    - devices: all\n      mig-enabled: false\n      mig-devices: {1g.10gb: 1}\n",
     "MIG devices included when 'mig-enabled' is false"),
    ("version: v1\nmig-configs:\n  a:\n    - devices: all\n      mig-enabled: true\n      mig-devices: {1g.10gb: 0}\n",
     "error validating values in 'mig-devices' field: all counts for all MigProfiles are 0"),
    ("version: v1\nmig-configs:\n  a:\n    - devices: all\n      mig-enabled: true\n      mig-devices: {1x.10gb: 1}\n",
     "error validating values in 'mig-devices' field: invalid format for '1x.10gb': cannot parse fields of "
     "'1x.10gb': missing 'g' from '%dg'"),
    ("{}\n", "unknown version: "),
    ("version: null\nmig-configs: {}\n", "unknown version: "),
    ("version: 1\n", "json: cannot unmarshal number into Go value of type string"),
    ("version: [v1]\n", "json: cannot unmarshal array into Go value of type string"),
    ("version: v1\nmig-configs: null\n", "at least one entry in 'mig-configs' is required"),
    ("version: v1\nmig-configs: [1]\n",
     "json: cannot unmarshal array into Go value of type map[string]v1.MigConfigSpecSlice"),
    ("version: v1\nmig-configs:\n  a: 3\n",
     "json: cannot unmarshal number into Go value of type v1.MigConfigSpecSlice"),
    ("version: v1\nmig-configs:\n  a: [3]\n",
     "json: cannot unmarshal number into Go value of type map[string]json.RawMessage"),
    ("version: v1\nmig-configs:\n  a: [null]\n", "missing required field: devices"),
    ("version: v1\nmig-configs:\n  a:\n    - devices: all\n      mig-enabled: true\n      mig-devices:\n",
     "missing required field 'mig-devices' when 'mig-enabled' is true"),
    ("version: v1\nmig-configs:\n  a:\n    - devices:\n      mig-enabled: false\n",
     "invalid string input for 'devices': "),
    ("version: v1\nmig-configs:\n  a:\n    - devices: [0, x]\n      mig-enabled: false\n",
     "(json: cannot unmarshal array into Go value of type string, json: cannot unmarshal string into Go value of "
     "type int)"),
    ("version: v1\nmig-configs:\n  a:\n    - devices: all\n      device-filter: [\"0x2330\", 5]\n"
     "      mig-enabled: false\n", "(json: cannot unmarshal array into Go value of type string, json: cannot "
     "unmarshal number into Go value of type string)"),
    ("version: v1\nmig-configs:\n  a:\n    - devices: all\n      mig-enabled: 'yes'\n",
     "json: cannot unmarshal string into Go value of type bool"),
    ("version: v1\nmig-configs:\n  a:\n    - devices: all\n      mig-enabled: true\n      mig-devices: [1]\n",
     "json: cannot unmarshal array into Go value of type types.MigConfig"),
    ("version: v1\nmig-configs:\n  a:\n    - devices: all\n      mig-enabled: true\n"
     "      mig-devices: {1g.10gb: 1.5}\n", "json: cannot unmarshal number 1.5 into Go value of type int"),
    ("version: v1\nmig-configs:\n  a:\n    - devices: all\n      mig-enabled: true\n"
     "      mig-devices: {1g.10gb: 99999999999999999999}\n",
     "json: cannot unmarshal number 100000000000000000000 into Go value of type int"),
    ("version: v1\nmig-configs:\n  a:\n    - devices: all\n      mig-enabled: true\n"
     "      mig-devices: {1g.10gb: 9223372036854775808}\n",
     "json: cannot unmarshal number 9223372036854775808 into Go value of type int"),
    ("version: v1\nmig-configs:\n  a:\n    - devices: all\n      mig-enabled: true\n      mig-devices: {1: 1}\n",
     "error validating values in 'mig-devices' field: invalid format for '1': cannot parse fields of '1': parsed "
     "wrong number of fields, expected 2 or 3"),
    ("version: v1\nmig-configs:\n  a:\n    - devices: all\n      mig-enabled: true\n      colour: red\n"
     "      mig-devices: {}\n", "unexpected field: colour"),
])
def test_mig_parted_error_texts(text: str, upstream: str) -> None:
    spec = parse_spec_text(text, "f.yaml")
    assert not spec.valid
    assert spec.problems[0].upstream == upstream
    wrapper = "unmarshal error: error unmarshaling JSON: while decoding JSON: "
    assert spec.problems[0].mig_parted_error == wrapper + upstream
    assert all(p.location.file == "f.yaml" and p.location.line for p in spec.problems)


def test_entry_errors_carry_config_entry_key_and_line() -> None:
    text = ("version: v1\nmig-configs:\n  ok:\n    - devices: all\n      mig-enabled: false\n"
            "  broken:\n    - devices: all\n      mig-enabled: false\n    - devices: all\n"
            "      mig-enabled: true\n      mig-devices:\n        1g.10gb: 1\n        2g.20gb: -1\n")
    (msg, line, config, entry, key), = _problems(text)
    assert (line, config, entry, key) == (13, "broken", 1, "mig-devices")
    assert "2g.20gb" in msg and "-1" in msg


def test_empty_document_is_an_empty_spec() -> None:
    spec = parse_spec_text("", "empty.yaml")
    assert spec.valid and spec.configs == {}
    with pytest.raises(InputError):
        spec.select("anything")


@pytest.mark.parametrize("text", ["- 1\n- 2\n", "just a string\n", "version: v1\nmig-configs: [1]\n",
                                  "version: v1\nmig-configs:\n  a: 3\n", "version: v1\nmig-configs:\n  a: [3]\n",
                                  "version: v1\nmig-configs:\n  a:\n    - devices: {x: 1}\n      mig-enabled: 2\n",
                                  "version: v1\nmig-configs:\n  a:\n    - devices: all\n      mig-enabled: true\n"
                                  "      mig-devices: [1]\n", "version: v1\nmig-configs:\n  a:\n    - devices: all\n"
                                  "      mig-enabled: true\n      mig-devices: {1g.5gb: x}\n", "a: [\n"])
def test_wrong_types_are_problems_not_tracebacks(text: str) -> None:
    spec = parse_spec_text(text, "t.yaml")
    assert spec.problems and all(p.location.file == "t.yaml" for p in spec.problems)


def test_select_rules() -> None:
    spec = parse_spec_text(GOOD)
    with pytest.raises(InputError, match="missing required flag 'selected-config'"):
        spec.select(None)
    with pytest.raises(InputError, match="selected mig-config not present: nope"):
        spec.select("nope")
    single = parse_spec_text("version: v1\nmig-configs:\n  only:\n    - devices: all\n      mig-enabled: false\n")
    assert single.select(None)[0] == "only"


def test_configmap_manifest_is_read_with_outer_line_numbers() -> None:
    text = ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  config.yaml: |\n"
            "    version: v1\n    mig-configs:\n      a:\n        - devices: sometimes\n          mig-enabled: false\n")
    spec = parse_spec_text(text, "cm.yaml")
    (p,) = spec.problems
    assert p.location.line == 10 and p.location.config == "a"


def test_a_yaml_error_in_a_configmap_names_the_outer_line_and_mig_parteds_inner_one() -> None:
    text = "kind: ConfigMap\ndata:\n  config.yaml: |\n    version: v1\n    mig-configs: [\n"
    (p,) = parse_spec_text(text, "cm.yaml").problems
    inner = parse_spec_text("version: v1\nmig-configs: [\n", "f.yaml").problems[0]
    assert p.upstream == inner.upstream and p.location.line == inner.location.line + 3


def test_the_file_a_manifest_holds_is_what_goes_into_the_cluster() -> None:
    inner = "version: v1\nmig-configs:\n  a: []\n"
    manifest = yaml.safe_dump({"kind": "ConfigMap", "data": {"config.yaml": inner}})
    assert read_config_source(manifest).mig_parted_text == inner
    assert read_config_source(inner).mig_parted_text == inner
    assert read_config_source("a: [").mig_parted_text == "a: ["
    assert parse_installed_config(manifest, "cm").problems[0].upstream == "unable to parse with missing 'version' field"


def _entry(body: str) -> str:
    return "version: v1\nmig-configs:\n  a:\n    - " + body.replace("\n", "\n      ") + "\n"


@pytest.mark.parametrize(("body", "check"), [
    ("devices: all\nmig-enabled: null", lambda e: not e.mig_enabled),  # null: left at false
    ("devices: all\ndevice-filter: null\nmig-enabled: false", lambda e: e.device_filter == ()),
    ("devices: all\ndevice-filter: ''\nmig-enabled: false", lambda e: e.device_filter == ()),
    ("devices: all\ndevice-filter: ['', null]\nmig-enabled: false",  # kept: a list's "" matches no GPU
     lambda e: e.device_filter == ("", "") and not e.selects(0, DeviceID.parse("0x233010DE"))),
    ("devices: [0, null]\nmig-enabled: false", lambda e: e.devices == (0, 0)),
    ("devices: all\nmig-enabled: false\nmig-devices: null", lambda e: e.mig_devices is None),
    ("devices: all\nmig-enabled: true\nmig-devices: {1g.10gb: 1.0, 2g.20gb: null}",
     lambda e: e.mig_devices == {"1g.10gb": 1, "2g.20gb": 0}),
    ("devices: all\nmig-enabled: true\nmig-devices: {1g.10gb: 9223372036854775807}",
     lambda e: e.mig_devices == {"1g.10gb": 2**63 - 1}),
    ("devices: all\nmig-enabled: true\nmig-devices: {4c.3g.40gb: 1, 0g.0gb: 1}",  # well-formed for go-nvlib
     lambda e: set(e.mig_devices) == {"4c.3g.40gb", "0g.0gb"}),
])
def test_what_mig_parted_accepts(body: str, check) -> None:
    spec = parse_spec_text(_entry(body), "ok.yaml")
    assert spec.valid, spec.problems
    assert check(spec.configs["a"][0])


def test_large_counts_are_located_problems() -> None:
    spec = parse_spec_text(_entry("devices: all\nmig-enabled: true\nmig-devices:\n  1g.10gb: 2\n"
                                  "  2g.20gb: 99999999999999999999"), "big.yaml")
    (p,) = spec.problems
    assert (p.location.line, p.location.config, p.location.entry, p.location.key) == (8, "a", 0, "mig-devices")
    assert "2g.20gb" in p.message and "64-bit" in p.message
    assert "a" not in spec.configs


def test_duplicate_keys_warn_and_the_last_one_wins() -> None:
    text = ("version: v1\nmig-configs:\n  a:\n    - devices: all\n      mig-enabled: true\n"
            "      mig-devices: {1g.10gb: 1}\n  a:\n    - devices: all\n      mig-enabled: false\n")
    spec = parse_spec_text(text, "dup.yaml")
    assert spec.valid and not spec.configs["a"][0].mig_enabled
    (w,) = spec.warnings
    assert (w.location.file, w.location.line, w.location.key) == ("dup.yaml", 7, "a")
    assert "duplicate key 'a'" in w.message and w.upstream is None


def test_only_the_first_document_is_read() -> None:
    spec = parse_spec_text(_entry("devices: all\nmig-enabled: false") + "---\nfoo: [\n", "multi.yaml")
    assert spec.valid and list(spec.configs) == ["a"]
    assert "only the first YAML document" in spec.warnings[0].message


def test_unparsable_device_filter_is_a_warning_and_matches_nothing() -> None:
    spec = parse_spec_text(_entry("device-filter: ['0x2330 ', '0x233010DE:']\ndevices: all\nmig-enabled: false"),
                           "f.yaml")
    assert spec.valid and len(spec.warnings) == 2
    assert all(w.location.key == "device-filter" and w.location.entry == 0 for w in spec.warnings)
    assert not spec.configs["a"][0].matches_device_filter(DeviceID(0x2330, 0x10DE))


def test_syntax_errors_are_marked_and_wrapped_like_mig_parted() -> None:
    spec = parse_spec_text("version: v1\nmig-configs: [\n", "s.yaml")
    assert spec.syntax_error and not spec.configs
    (p,) = spec.problems
    assert p.mig_parted_error.startswith("unmarshal error: error converting YAML to JSON: yaml: line ")


def test_mig_devices_keys_equal_in_json_keep_the_last_with_a_warning() -> None:
    text = _entry("devices: all\nmig-enabled: true\nmig-devices:\n  true: 1\n  'true': 2\n  1g.10gb: 1")
    spec = parse_spec_text(text, "p.yaml")
    (w,) = spec.warnings
    assert "keys True and 'true' are the same key 'true'" in w.message and w.location.line == 8
    assert "invalid format for 'true'" in spec.problems[0].message  # the last one, as mig-parted reads it


def test_an_entry_written_back_keeps_a_filter_that_matches_nothing() -> None:
    """`device-filter: [""]` selects no GPU; written back as `""` it would mean no filter (every GPU)."""
    spec = parse_spec_text('version: v1\nmig-configs:\n  a:\n    - devices: all\n      device-filter: [""]\n'
                           "      mig-enabled: false\n")
    (entry,) = spec.configs["a"]
    assert entry.as_dict()["device-filter"] == [""]
    again = parse_spec_text(yaml.safe_dump({"version": "v1", "mig-configs": {"a": [entry.as_dict()]}}))
    assert again.configs["a"][0].device_filter == ("",)
