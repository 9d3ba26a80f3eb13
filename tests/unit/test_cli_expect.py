"""`mig-conformance expect`: JSON document, text output and exit codes 0/1/2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mig_conformance.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["expect", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:
    code, out, _ = run(capsys, *argv, "--json")
    return code, json.loads(out)


def test_json_p5_all_balanced_mixed(capsys) -> None:
    code, doc = run_json(capsys, "--instance-type", "p5.48xlarge", "--config", "all-balanced", "--strategy", "mixed")
    assert code == 0
    assert {"state", "states", "reason", "allocatable", "labels", "gpus"} <= set(doc)
    assert doc["state"] == "success" and doc["states"] == ["pending", "success"] and doc["reason"] is None
    # the plugin registered 8 full GPUs when the node booted; kubelet keeps the name at 0
    assert doc["allocatable"] == {"nvidia.com/gpu": 0, "nvidia.com/mig-1g.10gb": 16, "nvidia.com/mig-2g.20gb": 8,
                                  "nvidia.com/mig-3g.40gb": 8}
    assert doc["labels"]["nvidia.com/mig.config.state"] == "success"
    assert len(doc["gpus"]) == 8 and doc["gpus"][7]["index"] == 7


def test_gpu_list_and_single_strategy(capsys) -> None:
    code, doc = run_json(capsys, "--gpu", "H100-80GBx2", "--config", "all-1g.10gb", "--strategy", "single")
    assert code == 0 and doc["allocatable"] == {"nvidia.com/gpu": 14}
    assert doc["labels"]["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3-MIG-1g.10gb"


def test_unknown_config_exits_1(capsys) -> None:
    code, doc = run_json(capsys, "--instance-type", "p5.48xlarge", "--config", "nope", "--strategy", "mixed")
    assert code == 1 and doc["state"] == "failed" and doc["reason"] == \
        "Error selecting MIG config: selected mig-config not present: nope"


def test_plugin_failure_exits_1_with_text(capsys) -> None:
    code, out, _ = run(capsys, "--instance-type", "p5.48xlarge", "--config", "all-balanced", "--strategy", "single")
    assert code == 1
    assert "mig-manager: pending -> success" in out
    assert "device plugin: fails to start" in out and "more than one MIG device type" in out
    assert "  nvidia.com/gpu: 0" in out  # registered at boot, kept at 0 by kubelet
    assert "nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3-MIG-INVALID" in out


def test_text_output(capsys) -> None:
    code, out, _ = run(capsys, "--instance-type", "p5.48xlarge", "--config", "all-balanced", "--strategy", "mixed",
                       "--driver", "580.159.04")
    assert code == 0
    assert "GPU 0 H100-80GB: 1x 3g.40gb, 1x 2g.20gb, 2x 1g.10gb" in out
    assert "  nvidia.com/mig-3g.40gb: 8" in out and "  nvidia.com/cuda.driver.major=580" in out


def test_reboot_flag_on_ampere(capsys) -> None:
    code, doc = run_json(capsys, "--instance-type", "p4d.24xlarge", "--config", "all-1g.5gb", "--strategy", "mixed")
    assert code == 0 and doc["states"] == ["pending", "success"]
    code, doc = run_json(capsys, "--instance-type", "p4d.24xlarge", "--config", "all-1g.5gb", "--strategy", "mixed",
                         "--no-gpu-reset")
    assert code == 1 and doc["states"] == ["pending", "failed"]
    code, doc = run_json(capsys, "--instance-type", "p4d.24xlarge", "--config", "all-1g.5gb", "--strategy", "mixed",
                         "--with-reboot", "--no-gpu-reset")
    assert code == 0 and doc["states"] == ["pending", "rebooting", "pending", "success"]
    assert doc["allocatable"] == {"nvidia.com/gpu": 0, "nvidia.com/mig-1g.5gb": 56}


def test_no_config_label(capsys) -> None:
    code, doc = run_json(capsys, "--instance-type", "g6e.xlarge", "--strategy", "none")
    assert code == 0 and doc["state"] is None and doc["states"] == []
    assert doc["allocatable"] == {"nvidia.com/gpu": 1} and doc["labels"]["nvidia.com/mig.capable"] == "false"


def test_device_plugin_version_flag(capsys) -> None:
    """The default is the newest GA device plugin (v0.20.0, GPU Operator v26.7.0): anchored patterns name `1g.10gb+me`
    by itself (NVIDIA/k8s-device-plugin commit 0dfdfb979, first tag v0.20.0); v0.17.4 still folds it into 1g.10gb."""
    base = ["--instance-type", "p5.48xlarge", "--config", "all-1g.10gb.me", "--strategy", "mixed"]
    assert run_json(capsys, *base)[1]["allocatable"] == {"nvidia.com/gpu": 0, "nvidia.com/mig-1g.10gb.me": 8}
    code, doc = run_json(capsys, *base, "--device-plugin-version", "v0.17.4")
    assert code == 0 and doc["allocatable"] == {"nvidia.com/gpu": 0, "nvidia.com/mig-1g.10gb": 8}
    code, doc = run_json(capsys, *base, "--device-plugin-version", "v0.20.0")
    assert code == 0 and doc["allocatable"] == {"nvidia.com/gpu": 0, "nvidia.com/mig-1g.10gb.me": 8}


def test_custom_config_file(capsys, tmp_path: Path) -> None:
    f = tmp_path / "mine.yaml"
    f.write_text('version: v1\nmig-configs:\n  two-3g:\n    - devices: all\n      mig-enabled: true\n'
                 '      mig-devices: {"3g.40gb": 2}\n')
    code, doc = run_json(capsys, "--gpu", "H100x4", "--config-file", str(f), "--config", "two-3g",
                         "--strategy", "mixed")
    assert code == 0 and doc["allocatable"] == {"nvidia.com/gpu": 0, "nvidia.com/mig-3g.40gb": 8}


@pytest.mark.parametrize("argv", [
    ["--instance-type", "p9.huge", "--config", "all-balanced", "--strategy", "mixed"],
    ["--gpu", "H100", "--instance-type", "p5.48xlarge", "--strategy", "mixed"],
    ["--instance-type", "p5.48xlarge", "--strategy", "mixed", "--config-file", "/nonexistent/cfg.yaml"],
    ["--instance-type", "p5.48xlarge", "--strategy", "mixed", "--device-plugin-version", "latest"],
    ["--instance-type", "p5.48xlarge", "--strategy", "mixed", "--driver", "580"],
])
def test_input_errors_exit_2(capsys, argv: list[str]) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and err.startswith("error:")


@pytest.mark.parametrize("argv", [
    ["--instance-type", "p5.48xlarge", "--config", "all-balanced"],
    ["--instance-type", "p5.48xlarge", "--strategy", "sometimes"],
])
def test_usage_errors_exit_2(capsys, argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["expect", *argv])
    assert exc.value.code == 2 and "--strategy" in capsys.readouterr().err


def test_malformed_config_file_exits_2(capsys, tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("version: v2\nmig-configs: {}\n")
    code, _, err = run(capsys, "--gpu", "H100", "--config-file", str(f), "--config", "x", "--strategy", "mixed")
    assert code == 2 and "unknown version: v2" in err


def test_a_board_variant_names_gfd_products_after_its_own_nvml_name(capsys) -> None:
    """GFD's products are NVML device names: an H100 PCIe board reports `NVIDIA H100 PCIe`, not the H100 SXM5's
    name (found by the differential test against NVIDIA's GFD code, docs/differential.md)."""
    code, doc = run_json(capsys, "--gpu", "H100-PCIE-80GBx2", "--config", "all-1g.10gb", "--strategy", "mixed")
    assert code == 0
    assert doc["labels"]["nvidia.com/gpu.product"] == "NVIDIA-H100-PCIe"
    assert doc["labels"]["nvidia.com/mig-1g.10gb.product"] == "NVIDIA-H100-PCIe-MIG-1g.10gb"
    code, doc = run_json(capsys, "--gpu", "H100-PCIE-80GBx2", "--config", "all-enabled", "--strategy", "single")
    assert doc["labels"]["nvidia.com/gpu.product"] == "NVIDIA-H100-PCIe-MIG-INVALID"


def test_default_file_is_the_generated_config_of_the_newest_stack(capsys) -> None:
    """mig-manager v0.15.0 generates the node's config: all-1g.5gb (an A100 name of the static map) fails on an H100,
    and the JSON says which file the projection used; an R535 driver falls back to the static map."""
    code, doc = run_json(capsys, "--instance-type", "p5.48xlarge", "--config", "all-1g.5gb", "--strategy", "mixed")
    assert code == 1 and doc["state"] == "failed" and "all-1g.5gb" in doc["reason"]
    assert doc["mig_config"]["kind"] == "generated"
    assert doc["mig_config"]["config_map"] == "p5.48xlarge-mig-config"
    code, doc = run_json(capsys, "--instance-type", "p5.48xlarge", "--config", "all-1g.10gb", "--strategy", "mixed")
    assert code == 0 and doc["allocatable"]["nvidia.com/mig-1g.10gb"] == 56
    code, doc = run_json(capsys, "--instance-type", "p5.48xlarge", "--config", "all-balanced", "--strategy", "mixed",
                         "--driver", "535.183.01")
    assert doc["mig_config"]["kind"] == "fallback" and doc["mig_config"]["config_map"] == "default-mig-parted-config"
