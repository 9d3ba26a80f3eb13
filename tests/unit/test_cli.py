"""CLI contract: --json documents, exit codes 0/1/2, errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mig_conformance.cli import main

DEFAULT = str(Path(__file__).parents[2] / "fixtures" / "configs" / "default-mig-parted-config.yaml")


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:
    code = main([*argv, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_gpus_json(capsys) -> None:
    code, doc = run_json(capsys, "gpus")
    assert code == 0
    keys = {g["key"] for g in doc["gpus"]}
    assert {"H100-80GB", "H200-141GB", "A30-24GB", "T4-16GB"} <= keys
    h100 = next(g for g in doc["gpus"] if g["key"] == "H100-80GB")
    assert h100["profiles"][0] == {**h100["profiles"][0], "name": "1g.10gb", "id": 19, "memory_mib": 9984}


def test_layouts_json_and_maximal(capsys) -> None:
    code, doc = run_json(capsys, "layouts", "H100-80GB")
    assert code == 0 and doc["gpu"] == "H100-80GB" and doc["count"] == len(doc["layouts"]) == 127
    assert set(doc["layouts"][0]) == {"devices", "placement"}
    code, doc = run_json(capsys, "layouts", "NVIDIA-H100-80GB-HBM3", "--maximal")
    assert doc["count"] == 44


def test_fit_exit_codes(capsys) -> None:
    code, doc = run_json(capsys, "fit", "H100-80GB", "3g.40gb=1", "2g.20gb=1", "1g.10gb=2")
    assert code == 0 and doc["fits"] and len(doc["placement"]) == 4
    code, doc = run_json(capsys, "fit", "H100", "1g.10gb=8")
    assert code == 1 and not doc["fits"] and "maximum of 7" in doc["reason"]
    assert main(["fit", "H100-80GB", "1g.10gb"]) == 2
    assert "expected PROFILE=COUNT" in capsys.readouterr().err
    assert main(["fit", "H100-80GB", "1g.10gb=-1"]) == 2
    assert "non-negative integer COUNT" in capsys.readouterr().err
    code, doc = run_json(capsys, "fit", "H100-80GB", "1g.10gb=99999999999999999999")
    assert code == 1 and "exceeds the maximum of 7" in doc["reason"]
    code, doc = run_json(capsys, "fit", "Z100", "1g.10gb=1")
    assert code == 2 and "unknown GPU 'Z100'" in doc["error"] and doc["fits"] is False
    assert main(["fit", "Z100", "1g.10gb=1"]) == 2
    assert "unknown GPU 'Z100'" in capsys.readouterr().err


def test_validate_json_shape(capsys) -> None:
    code, doc = run_json(capsys, "validate", DEFAULT, "--config", "all-balanced", "--instance-type", "p5.48xlarge")
    assert code == 0 and doc["valid"] and len(doc["gpus"]) == 8
    assert doc["gpus"][0]["devices"] == {"1g.10gb": 2, "2g.20gb": 1, "3g.40gb": 1}
    assert {"index", "model", "mig_enabled", "devices", "placement"} <= set(doc["gpus"][0])


def test_validate_invalid_has_located_errors(capsys, tmp_path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("version: v1\nmig-configs:\n  big:\n    - devices: all\n      mig-enabled: true\n"
                 "      mig-devices:\n        7g.80gb: 2\n")
    code, doc = run_json(capsys, "validate", str(f), "--gpu", "H100-80GBx2")
    assert code == 1 and not doc["valid"]
    err = doc["errors"][0]
    assert {k: err[k] for k in ("file", "line", "config", "entry", "key", "gpu")} == \
        {"file": str(f), "line": 6, "config": "big", "entry": 0, "key": "mig-devices", "gpu": 0}


@pytest.mark.parametrize("content", ["version: v1\nmig-configs: [\n", "\x00\x01", "- a\n", "version: 3\n"])
def test_validate_bad_input_never_tracebacks(capsys, tmp_path, content: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(content)
    code = main(["validate", str(f), "--gpu", "H100-80GB"])
    captured = capsys.readouterr()
    assert code in (1, 2) and "Traceback" not in captured.err + captured.out
    assert str(f) in captured.err + captured.out


def test_validate_usage_errors(capsys) -> None:
    assert main(["validate", "/nonexistent.yaml", "--gpu", "H100-80GB"]) == 2
    assert "file not found" in capsys.readouterr().err
    assert main(["validate", DEFAULT, "--config", "all-balanced"]) == 2
    assert "exactly one of --gpu" in capsys.readouterr().err
    assert main(["validate", DEFAULT, "--config", "x", "--instance-type", "p9.huge"]) == 2
    assert "unknown instance type 'p9.huge'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["no-such-command"])
    assert e.value.code == 2


@pytest.mark.slow  # the CLI in subprocesses
def test_every_command_has_help() -> None:
    for cmd in ("gpus", "layouts", "fit", "validate"):
        out = subprocess.run([sys.executable, "-m", "mig_conformance", cmd, "--help"], capture_output=True,
                             text=True, check=True).stdout
        assert "usage: mig-conformance " + cmd in out


def test_layouts_of_a_gpu_without_mig(capsys) -> None:
    assert main(["layouts", "T4-16GB"]) == 1
    assert "T4-16GB is not MIG capable" in capsys.readouterr().out
    code, doc = run_json(capsys, "layouts", "T4-16GB")
    assert code == 1 and doc["mig_capable"] is False and doc["count"] == 0
    code, doc = run_json(capsys, "layouts", "Z100")
    assert code == 2 and "unknown GPU" in doc["error"]


def _write(tmp_path, text: str):
    f = tmp_path / "c.yaml"
    f.write_text(text)
    return str(f)


TWO = ("version: v1\nmig-configs:\n  a:\n    - devices: all\n      mig-enabled: false\n"
       "  b:\n    - devices: all\n      mig-enabled: false\n")


@pytest.mark.parametrize(("text", "extra", "code"), [
    ("version: v1\nmig-configs: [\n", [], 2),  # not YAML
    (TWO, ["--config", "nope"], 2),  # unknown config
    (TWO, [], 2),  # several configs, no --config
    ("version: v2\n", [], 1),  # YAML, but mig-parted rejects it
    ("", [], 2),  # empty: nothing to validate (docs/hardening.md)
    (TWO, ["--config", "a"], 0),
])
def test_validate_exit_codes(capsys, tmp_path, text: str, extra: list[str], code: int) -> None:
    path = _write(tmp_path, text)
    assert main(["validate", path, "--gpu", "H100-80GB", *extra]) == code
    out = capsys.readouterr().out
    assert "config 'None'" not in out
    got, doc = run_json(capsys, "validate", path, "--gpu", "H100-80GB", *extra)
    assert got == code and doc["valid"] is (code == 0)


def test_parse_errors_come_alone(capsys, tmp_path) -> None:
    path = _write(tmp_path, "version: v1\nmig-configs:\n  a:\n    - devices: some\n      mig-enabled: false\n")
    for argv in (["validate", path, "--gpu", "H100-80GB"], ["validate", path, "--gpu", "H100-80GB", "--all-configs"]):
        code, doc = run_json(capsys, *argv)
        assert code == 1 and [e["message"] for e in doc["errors"]] == [
            "invalid string input for 'devices': some (use 'all' or a list of GPU indices)"]
        assert doc["mig_parted"]["apply_result"]["message"].startswith("Error parsing config file: unmarshal error")


def test_validate_text_reports_the_simulated_mig_parted(capsys, tmp_path) -> None:
    path = _write(tmp_path, "version: v1\nmig-configs:\n  a:\n    - devices: all\n      mig-enabled: true\n"
                            "      mig-devices: {1g.10gb: 7, 2g.20gb: 0}\n")
    assert main(["validate", path, "--gpu", "H100-80GB"]) == 0
    out = capsys.readouterr().out
    assert "mig-parted on a fresh node: apply: success; assert after apply: failure (Not all GPUs match" in out
