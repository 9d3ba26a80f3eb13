"""`mig-conformance mig-parted apply|assert|export` on a simulated node kept in a --state file."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mig_conformance.cli import main

CONFIG = """\
version: v1
mig-configs:
  all-disabled:
    - devices: all
      mig-enabled: false
  all-1g.10gb:
    - devices: all
      mig-enabled: true
      mig-devices:
        "1g.10gb": 7
  all-balanced:
    - devices: all
      mig-enabled: true
      mig-devices:
        "1g.10gb": 2
        "2g.20gb": 1
        "3g.40gb": 1
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["mig-parted", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_apply_assert_export_across_invocations(capsys, config: Path, tmp_path: Path) -> None:
    state = str(tmp_path / "node.json")
    code, out, _ = _run(capsys, "apply", "-f", str(config), "-c", "all-balanced", "--gpu", "H100-80GBx2",
                        "--state", state)
    assert (code, out) == (0, "MIG configuration applied successfully\n")
    assert Path(state).exists()
    code, out, _ = _run(capsys, "assert", "-f", str(config), "-c", "all-balanced", "--state", state)
    assert (code, out) == (0, "Selected MIG configuration currently applied\n")
    code, _, err = _run(capsys, "assert", "-f", str(config), "-c", "all-1g.10gb", "--state", state)
    assert code == 1 and err.strip() == "FATA[0000] Assertion failure: selected configuration not currently applied"
    code, out, _ = _run(capsys, "export", "--state", state)
    assert code == 0
    assert yaml.safe_load(out)["mig-configs"]["current"] == [
        {"devices": "all", "mig-enabled": True, "mig-devices": {"1g.10gb": 2, "2g.20gb": 1, "3g.40gb": 1}}]
    code, out, _ = _run(capsys, "apply", "-f", str(config), "-c", "all-disabled", "--state", state)
    assert code == 0
    code, out, _ = _run(capsys, "export", "-o", "json", "-l", "now", "--state", state)
    assert json.loads(out)["mig-configs"]["now"] == [{"devices": "all", "mig-enabled": False, "mig-devices": {}}]


def test_env_vars_and_flags(capsys, config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = str(tmp_path / "node.json")
    monkeypatch.setenv("MIG_PARTED_CONFIG_FILE", str(config))
    monkeypatch.setenv("MIG_PARTED_SELECTED_CONFIG", "all-1g.10gb")
    monkeypatch.setenv("MIG_PARTED_MODE_CHANGE_ONLY", "true")
    code, out, err = _run(capsys, "apply", "--instance-type", "p5.4xlarge", "--state", state, "-k", "hooks.yaml")
    assert code == 0 and "hooks are not simulated" in err
    code, out, _ = _run(capsys, "assert", "--state", state)
    assert (code, out) == (0, "Selected MIG mode settings from configuration currently applied\n")
    monkeypatch.setenv("MIG_PARTED_MODE_CHANGE_ONLY", "false")
    code, _, err = _run(capsys, "assert", "--state", state, "-d")  # mode only was applied: no MIG devices yet
    assert code == 1 and "DEBU[0000] Asserting MIG device configuration..." in err
    monkeypatch.setenv("MIG_PARTED_VALID_CONFIG", "1")
    assert _run(capsys, "assert", "--state", state)[1] == "Selected MIG configuration is valid\n"
    monkeypatch.setenv("MIG_PARTED_VALID_CONFIG", "maybe")
    assert _run(capsys, "assert", "--state", state)[0] == 2
    monkeypatch.delenv("MIG_PARTED_VALID_CONFIG")
    monkeypatch.setenv("MIG_PARTED_OUTPUT_FORMAT", "json")
    assert json.loads(_run(capsys, "export", "--state", state)[1])["version"] == "v1"


def test_failure_messages_and_exit_codes(capsys, config: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: v1\nmig-configs:\n  c:\n    - devices: all\n      mig-enabled: true\n"
                   "      mig-devices: {'4g.40gb': 1, '3g.40gb': 1, '7g.80gb': 1}\n")
    code, out, err = _run(capsys, "apply", "-f", str(bad), "--gpu", "H100-80GB")
    assert code == 1 and out == ""
    assert err.splitlines()[-1] == ("FATA[0000] Error applying MIG configuration with hooks: error setting MIGConfig: "
                                    "error attempting multiple config orderings: all orderings failed")
    assert "ERRO[0000] Error creating GPU instance for '4g.40gb': Insufficient Resources" in err
    code, _, err = _run(capsys, "apply", "-f", str(config), "--gpu", "H100-80GB")
    assert code == 1 and "missing required flag 'selected-config'" in err
    code, _, err = _run(capsys, "apply", "-c", "x", "--gpu", "H100-80GB")
    assert code == 1 and err.strip() == "FATA[0000] Missing required flags 'config-file'"


def test_input_errors_exit_2(capsys, config: Path, tmp_path: Path) -> None:
    assert _run(capsys, "apply", "-f", str(config), "-c", "all-disabled", "--gpu", "NOPE-1GB")[0] == 2
    assert _run(capsys, "export")[0] == 2  # no node at all
    (tmp_path / "state.json").write_text("not json")
    assert _run(capsys, "export", "--state", str(tmp_path / "state.json"))[0] == 2
    state = str(tmp_path / "node.json")
    assert _run(capsys, "export", "--gpu", "A100-40GB", "--state", state)[0] == 0
    code, _, err = _run(capsys, "export", "--gpu", "H100-80GB", "--state", state)
    assert code == 2 and "describes another node" in err


def test_stdin_config_and_json_result(capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(CONFIG.encode())))
    code, out, _ = _run(capsys, "apply", "-f", "-", "-c", "all-1g.10gb", "--gpu", "A30-24GB,H100-80GB", "--json")
    result = json.loads(out)
    assert code == 1 and result["exit_code"] == 1
    assert result["gpus"][0]["status"] == "failed" and result["gpus"][0]["mig_devices"] == {}
    assert 'ERRO[0000] MIG profile "1g.10gb" not found on this GPU' in result["log"]


@pytest.mark.slow  # the CLI in a subprocess
def test_python_dash_m(config: Path, tmp_path: Path) -> None:
    state = tmp_path / "node.json"
    proc = subprocess.run([sys.executable, "-m", "mig_conformance", "mig-parted", "apply", "-f", str(config),
                           "-c", "all-1g.10gb", "--gpu", "H100-80GB", "--state", str(state)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "MIG configuration applied successfully\n"
    data = json.loads(state.read_text())
    assert [len(g["gpu_instances"]) for g in data["gpus"]] == [7]


def test_unreadable_config_file_fails_like_mig_parted(capsys, tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    code, out, err = _run(capsys, "apply", "-f", str(missing), "-c", "x", "--gpu", "H100")
    assert (code, out) == (1, "")
    assert err.strip() == f"FATA[0000] Error parsing config file: read error: open {missing}: no such file or directory"
    code, _, err = _run(capsys, "assert", "-f", str(tmp_path), "--gpu", "H100")
    assert code == 1 and err.strip().endswith(f"read error: read {tmp_path}: is a directory")
    code, out, _ = _run(capsys, "apply", "-f", str(missing), "--gpu", "H100", "--json")
    result = json.loads(out)
    assert code == 1 and result["exit_code"] == 1 and result["error"].startswith("Error parsing config file: read")


def test_parse_errors_carry_sigs_yaml_wrapper(capsys, tmp_path: Path) -> None:
    bad = tmp_path / "v2.yaml"
    bad.write_text("version: v2\n")
    code, _, err = _run(capsys, "assert", "-a", "-f", str(bad), "--gpu", "H100")
    assert code == 1 and err.splitlines() == [
        "FATA[0000] Error parsing config file: unmarshal error: error unmarshaling JSON: while decoding JSON: unknown "
        "version: v2",
        f"mig-conformance: {bad}:1, key 'version': unknown version: v2 (only 'v1' exists)"]  # where, after mig-parted


def test_valid_config_accepts_well_formed_names_that_exist_nowhere(capsys, tmp_path: Path) -> None:
    weird = tmp_path / "weird.yaml"
    weird.write_text("version: v1\nmig-configs:\n  a:\n    - devices: all\n      mig-enabled: true\n"
                     "      mig-devices: {4c.3g.40gb: 1, 0g.0gb: 1}\n")
    assert _run(capsys, "assert", "-a", "-f", str(weird), "--gpu", "H100") == \
        (0, "Selected MIG configuration is valid\n", "")


def test_global_debug_flag_before_the_command(capsys, config: Path) -> None:
    code, out, err = _run(capsys, "-d", "apply", "-f", str(config), "-c", "all-1g.10gb", "--gpu", "H100-80GB")
    assert (code, out) == (0, "MIG configuration applied successfully\n")
    assert "DEBU[0000] Parsing config file..." in err
    assert "DEBU" not in _run(capsys, "apply", "-f", str(config), "-c", "all-1g.10gb", "--gpu", "H100-80GB")[2]


def test_json_for_every_outcome(capsys, config: Path) -> None:
    code, out, _ = _run(capsys, "apply", "-c", "x", "--gpu", "H100-80GB", "--json")
    assert code == 1 and json.loads(out)["error"] == "Missing required flags 'config-file'"
    code, out, _ = _run(capsys, "apply", "-f", str(config), "--gpu", "NOPE-1GB", "--json")
    doc = json.loads(out)
    assert code == 2 and doc["exit_code"] == 2 and "unknown GPU 'NOPE-1GB'" in doc["error"]


def test_a_board_variant_keeps_its_pci_id_across_state_files(tmp_path, capsys) -> None:
    """H100 PCIe reports 0x233110DE: a config filtered on it applies, and the saved node stays that board."""
    from mig_conformance.cli import main

    cfg = tmp_path / "pcie.yaml"
    cfg.write_text('version: v1\nmig-configs:\n  a:\n    - device-filter: "0x233110DE"\n      devices: all\n'
                   '      mig-enabled: true\n      mig-devices: {"1g.10gb": 7}\n')
    state = tmp_path / "node.json"
    args = ["-f", str(cfg), "-c", "a", "--gpu", "H100-PCIE-80GB", "--state", str(state)]
    assert main(["mig-parted", "apply", *args]) == 0
    assert main(["mig-parted", "assert", *args]) == 0
    assert main(["validate", str(cfg), "--config", "a", "--gpu", "H100-PCIE-80GB"]) == 0
    out = capsys.readouterr().out
    assert "Selected MIG configuration currently applied" in out and "7x 1g.10gb" in out
    assert "assert after apply: success" in out
    assert main(["mig-parted", "assert", "-f", str(cfg), "-c", "a", "--gpu", "H100-80GB", "--state", str(state)]) == 2
    assert "describes another node (H100-PCIE-80GB)" in capsys.readouterr().err


def test_an_unwritable_state_file_is_an_error_after_the_output(tmp_path: Path, capsys) -> None:
    code = main(["mig-parted", "export", "--gpu", "H100-80GB", "--state", str(tmp_path / "no" / "s.json")])
    captured = capsys.readouterr()
    assert code == 2 and "version: v1" in captured.out
    assert f"--state {tmp_path / 'no' / 's.json'}: cannot write the node state" in captured.err
