"""Each device-plugin/GFD rule of versions.RULES on both sides of its threshold (the rule's `since` and the release
before it), through `expect --device-plugin-version` where a CLI user sees it."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from mig_conformance.cli import main
from mig_conformance.gpus.catalog import load_catalog
from mig_conformance.k8s import device_plugin, gfd, versions
from mig_conformance.mig.state import initial_states

CATALOG = load_catalog()


def expect(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:
    code = main(["expect", *argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def _empty_mig_gpu() -> list:
    """H100 x2, GPU 1 MIG-enabled without MIG devices (what mig-parted leaves for `mig-devices: {}`)."""
    h100 = CATALOG.get("H100-80GB")
    gpus = initial_states([h100, h100])
    return [gpus[0], replace(gpus[1], mig_enabled=True, devices=())]


@pytest.mark.parametrize(("version", "error"), [("v0.15.0", True), ("v0.15.3", True), ("v0.16.0", False),
                                                ("v0.20.0", False)])
def test_an_empty_mig_gpu_under_mixed(version: str, error: bool) -> None:
    """Before v0.16.0 an error naming device 0 whatever the index (`i := 0`, internal/rm/device_map.go @v0.15.0);
    since, a warning naming the GPU (commit 1df05f875)."""
    result = device_plugin.advertise("mixed", _empty_mig_gpu(), version=version)
    assert versions.since("device-plugin.empty-mig-gpu", version) is not error
    if error:
        assert result.error is not None and result.error.endswith("device 0 has an invalid MIG configuration")
        assert result.resources == {}
    else:
        assert result.error is None and result.warnings == ("device 1 has no MIG devices configured",)
        assert result.resources == {"nvidia.com/gpu": 1}


@pytest.mark.parametrize(("version", "prefix"), [
    ("v0.16.2", "error starting plugins: error getting plugins: failed to construct NVML resource managers: "
                "error building device map: "),
    ("v0.17.0", "error starting plugins: error getting plugins: unable to create plugins: failed to construct "
                "resource managers: error building device map: "),
])
def test_the_error_chain_by_release(capsys: pytest.CaptureFixture[str], tmp_path: Path, version: str,
                                   prefix: str) -> None:
    """internal/plugin/manager/nvml.go @v0.16.0 vs cmd/nvidia-device-plugin/plugin-manager.go and
    internal/plugin/factory.go @v0.17.0; seen by an `expect` user as the plugin's exit message."""
    config = tmp_path / "two.yaml"
    config.write_text('version: v1\nmig-configs:\n  two:\n    - devices: all\n      mig-enabled: true\n'
                      '      mig-devices: {"1g.10gb": 1, "3g.40gb": 1}\n')
    code, doc = expect(capsys, "--gpu", "H100-80GBx2", "--config", "two", "--strategy", "single",
                       "--config-file", str(config), "--device-plugin-version", version)
    assert code == 1 and doc["plugin_error"].startswith(prefix)
    assert doc["plugin_error"].endswith("more than one MIG device type present on node")


@pytest.mark.parametrize(("gpu", "version", "family"), [
    ("L4-24GB", "v0.17.0", "ampere"), ("L4-24GB", "v0.17.1", "ada-lovelace"),
    ("B200-180GB", "v0.17.1", "undefined"), ("B200-180GB", "v0.17.2", "blackwell"),
    ("H100-80GB", "v0.15.0", "hopper"),
])
def test_gpu_family_by_release(gpu: str, version: str, family: str) -> None:
    """lm/resource.go getArchFamily: 8.9 was `ampere` before commit 75e83d74c (v0.17.1), 10.x `undefined` before
    f6bd64c58 (v0.17.2)."""
    assert gfd.labels("none", initial_states([CATALOG.get(gpu)]), version=version)["nvidia.com/gpu.family"] == family


@pytest.mark.parametrize("version", ["v0.15.0", "v0.17.4", "v0.20.0"])
def test_vgpu_present_is_always_written(version: str) -> None:
    for strategy in ("none", "single", "mixed"):
        labels = gfd.labels(strategy, initial_states([CATALOG.get("H100-80GB")]), version=version)
        assert labels["nvidia.com/vgpu.present"] == "false"


def test_single_leaves_out_a_mig_device_memory_the_catalog_lacks(capsys: pytest.CaptureFixture[str]) -> None:
    """B200 3g.90gb has no memory in the catalog: under single GFD's gpu.memory is the MIG device's, so the kit
    leaves the label out rather than keep the whole GPU's 183359 (internal/lm/mig-strategy.go
    newMIGDeviceLabelers)."""
    code, doc = expect(capsys, "--instance-type", "p6-b200.48xlarge", "--config", "all-3g.90gb", "--strategy", "single")
    assert code == 0 and doc["labels"]["nvidia.com/gpu.product"].endswith("-MIG-3g.90gb")
    assert "nvidia.com/gpu.memory" not in doc["labels"] and "nvidia.com/gpu.memory" in doc["unknown_labels"]
    code, doc = expect(capsys, "--instance-type", "p6-b200.48xlarge", "--config", "all-disabled", "--strategy",
                       "single")
    assert doc["labels"]["nvidia.com/gpu.memory"] == "183359"


@pytest.mark.parametrize("version", ["v0.14.5", "v0.21.0", "latest"])
def test_releases_outside_the_modelled_range_are_usage_errors(capsys: pytest.CaptureFixture[str],
                                                             version: str) -> None:
    code = main(["expect", "--instance-type", "p5.48xlarge", "--strategy", "mixed", "--device-plugin-version",
                 version])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error:") and "Traceback" not in err
