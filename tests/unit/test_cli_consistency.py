"""CLI consistency (issue 10, item 8): stdin, --all-configs, the kit's own flags in messages, null names as mig-parted
sees them, byte-order marks, entries that select no GPU, missing folders."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from mig_conformance.cli import main

ROOT = Path(__file__).parents[2]
DEFAULT = str(ROOT / "fixtures" / "configs" / "default-mig-parted-config.yaml")
MY = ("version: v1\nmig-configs:\n  training:\n    - devices: [0, 1, 2, 3]\n      mig-enabled: false\n"
      "    - devices: [4, 5, 6, 7]\n      mig-enabled: true\n      mig-devices:\n        \"3g.40gb\": 2\n"
      "        \"1g.10gb\": 1\n")
BALANCED = ("version: v1\nmig-configs:\n  balanced:\n    - devices: all\n      mig-enabled: true\n"
            "      mig-devices: {3g.40gb: 1, 2g.20gb: 1, 1g.10gb: 2}\n")


def _stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


def test_validate_dash_reads_standard_input(monkeypatch, capsys, tmp_path: Path) -> None:
    _stdin(monkeypatch, MY.encode())
    assert main(["validate", "-", "--instance-type", "p5.48xlarge", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["file"] == "<stdin>" and doc["config"] == "training"
    assert doc["errors"][0]["file"] == "<stdin>" and doc["errors"][0]["line"] == 8
    path = tmp_path / "my.yaml"
    path.write_text(MY)
    assert main(["validate", str(path), "--instance-type", "p5.48xlarge", "--json"]) == 1
    from_file = json.loads(capsys.readouterr().out)
    assert [e["message"] for e in from_file["errors"]] == [e["message"] for e in doc["errors"]]


def test_validate_dash_is_bounded(monkeypatch, capsys) -> None:
    _stdin(monkeypatch, b"# " + b"x" * (5 * 2**20))
    assert main(["validate", "-", "--gpu", "H100-80GB"]) == 2
    assert capsys.readouterr().err == "error: <stdin>: larger than 4 MiB; the kit reads at most that much\n"


def test_all_configs_with_a_config_is_a_usage_error(capsys) -> None:
    assert main(["validate", DEFAULT, "--all-configs", "-c", "all-balanced", "--instance-type", "p5.48xlarge"]) == 2
    captured = capsys.readouterr()
    assert captured.err == "error: --all-configs checks every config of the file: give it or --config all-balanced, " \
                           "not both\n" and captured.out == ""


def test_all_configs_ends_with_a_tally(capsys) -> None:
    code = main(["validate", DEFAULT, "--all-configs", "--instance-type", "p5.48xlarge"])
    lines = capsys.readouterr().out.splitlines()
    valid = sum(line.endswith(": VALID") for line in lines)
    invalid = sum(line.endswith(": INVALID") for line in lines)
    assert valid + invalid == 81 and valid > 0 and code == 1
    assert lines[-1] == f"{DEFAULT} on p5.48xlarge: 81 configs: {valid} valid, {invalid} invalid"
    assert main(["validate", DEFAULT, "--all-configs", "--instance-type", "p5.48xlarge", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["tally"] == {"configs": 81, "valid": valid, "invalid": invalid} and len(doc["configs"]) == 81


def test_a_multi_config_file_without_config_names_the_kits_flags(capsys) -> None:
    assert main(["validate", DEFAULT, "--instance-type", "p5.48xlarge"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {DEFAULT}: 81 configs in this file: choose one with --config NAME, or check every "
                          "one with --all-configs (configs: all-disabled, all-enabled, all-1g.5gb, ")
    assert "selected-config" not in err and "all-balanced" in err


@pytest.mark.parametrize("null", ["~", "null", "Null"])
def test_a_null_config_name_is_rejected_as_mig_parted_does(capsys, tmp_path: Path, null: str) -> None:
    """sigs.k8s.io/yaml v1.6.0 refuses a null mapping key (docs/reference/mig-parted.md#config-format): mig-parted
    rejects the whole file; the kit says `~`, never Python's None."""
    path = tmp_path / "null.yaml"
    path.write_text(f"version: v1\nmig-configs:\n  {null}:\n    - devices: all\n      mig-enabled: false\n")
    assert main(["validate", str(path), "--gpu", "H100-80GB", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    error = doc["errors"][0]
    assert (error["line"], error["key"], error["config"]) == (3, "~", None)
    assert error["message"].startswith("a config name is null (~): mig-parted rejects the whole file")
    assert error["mig_parted_message"] == (
        "unsupported map key of type: %!s(<nil>), key: <nil>, value: []interface {}{map[interface {}]interface {}"
        "{\"devices\":\"all\", \"mig-enabled\":false}}")
    assert main(["validate", str(path), "--gpu", "H100-80GB"]) == 1
    out = capsys.readouterr().out
    assert "None" not in out and "key '~'" in out
    assert main(["mig-parted", "apply", "-f", str(path), "--gpu", "H100-80GB"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("FATA[0000] Error parsing config file: unmarshal error: error converting YAML to JSON: "
                          "unsupported map key of type: %!s(<nil>)")
    assert f"\nmig-conformance: {path}:3, key '~': a config name is null (~)" in err  # where: mig-parted names nothing
    assert main(["mig-parted", "apply", "-f", str(path), "--gpu", "H100-80GB", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["problems"][0]["line"] == 3


def test_a_null_key_inside_an_entry_names_config_and_entry(capsys, tmp_path: Path) -> None:
    path = tmp_path / "null.yaml"
    path.write_text("version: v1\nmig-configs:\n  a:\n    - devices: all\n      mig-enabled: true\n"
                    "      mig-devices:\n        ~: 1\n")
    assert main(["validate", str(path), "--gpu", "H100-80GB"]) == 1
    assert f"error: {path}:7, config 'a', entry 0, key '~': a mapping key is null (~)" in capsys.readouterr().out


@pytest.mark.parametrize("codec", ["utf-8-sig", "utf-16", "utf-16-le", "utf-16-be"])
def test_byte_order_marks_are_read_end_to_end(capsys, tmp_path: Path, codec: str) -> None:
    bom = {"utf-16-le": b"\xff\xfe", "utf-16-be": b"\xfe\xff"}.get(codec, b"")
    path = tmp_path / f"{codec}.yaml"
    path.write_bytes(bom + BALANCED.encode(codec))
    assert main(["validate", str(path), "--instance-type", "p5.48xlarge"]) == 0
    assert ": VALID" in capsys.readouterr().out
    assert main(["mig-parted", "apply", "-f", str(path), "--instance-type", "p5.48xlarge"]) == 0
    assert capsys.readouterr().out == "MIG configuration applied successfully\n"


def test_an_entry_that_selects_no_gpu_is_a_warning(capsys, tmp_path: Path) -> None:
    path = tmp_path / "unused.yaml"
    path.write_text("version: v1\nmig-configs:\n  a:\n    - devices: all\n      mig-enabled: false\n"
                    "    - devices: [8, 9]\n      mig-enabled: true\n      mig-devices: {1g.10gb: 7}\n"
                    "    - device-filter: \"0x20B010DE\"\n      devices: all\n      mig-enabled: true\n"
                    "      mig-devices: {1g.5gb: 7}\n")
    assert main(["validate", str(path), "--instance-type", "p5.48xlarge", "--json"]) == 0
    warnings = json.loads(capsys.readouterr().out)["warnings"]
    assert [(w["line"], w["entry"], w["key"]) for w in warnings] == [(6, 1, "devices"), (9, 2, "device-filter")]
    assert warnings[0]["message"] == ("entry 1 of config 'a' selects no GPU of this node: its devices [8, 9] are not "
                                      "GPU indices of this node (GPUs 0-7); mig-parted skips it")
    assert "matches none of this node's GPUs (0x233010DE)" in warnings[1]["message"]
    assert main(["validate", str(path), "--instance-type", "p5.48xlarge"]) == 0
    assert "warning: " + str(path) + ":6, config 'a', entry 1, key 'devices': entry 1" in capsys.readouterr().out


def test_the_gpu_operators_configs_select_by_model_without_such_warnings(capsys) -> None:
    """An entry whose device-filter names another board is how one file serves several GPU models; a config for
    other GPUs altogether is told by each GPU's own warning."""
    for instance_type in ("p4d.24xlarge", "p5.48xlarge", "p5e.48xlarge"):
        assert main(["validate", DEFAULT, "--all-configs", "--instance-type", instance_type, "--json"]) == 1
        doc = json.loads(capsys.readouterr().out)
        assert not [w for c in doc["configs"] for w in c["warnings"] if "selects no GPU" in w["message"]]


def test_report_of_a_missing_folder_says_so(capsys, tmp_path: Path) -> None:
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'nope'}: no such folder\n"
    (tmp_path / "file").write_text("")
    assert main(["report", str(tmp_path / "file")]) == 2
    assert "not a folder" in capsys.readouterr().err
