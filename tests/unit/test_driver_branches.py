"""Profile memory by driver branch (docs/catalog-schema.md#driver-branches): the catalog's rows are R580 (NVML
captures, 580.159.04); an overlay gives what a source shows under another branch; a branch without a source is
unknown everywhere (`?` in nvidia-smi, the label left out, a note in expect), never the R580 number."""

from __future__ import annotations

import json

import pytest

from mig_conformance.cli import main
from mig_conformance.gpus.catalog import driver_branch, load_catalog


def expect(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(["expect", "--instance-type", "p5.48xlarge", "--config", "all-3g.40gb", "--strategy", "mixed",
                 *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_h100_3g40gb_memory_label_follows_the_sources(capsys: pytest.CaptureFixture[str]) -> None:
    """R580: 40448 MiB (tests/data/captures/h100-80gb-hbm3-580); 550.54.15: 40320 MiB (NVIDIA/cloud-native-docs
    gpu-operator/manifests/output/mig-mixed-node-labels.json @52dcb7b8, nvidia.com/mig-3g.40gb.memory)."""
    r580 = expect(capsys)  # the default stack's driver, 580.159.04
    r550 = expect(capsys, "--driver", "550.54.15")
    assert r580["labels"]["nvidia.com/mig-3g.40gb.memory"] == "40448"
    assert r550["labels"]["nvidia.com/mig-3g.40gb.memory"] == "40320"
    assert r550["labels"]["nvidia.com/cuda.driver-version.full"] == "550.54.15"
    # the same source's whole-GPU memory (81559) equals R580's; everything but the 3g profile memory is the same
    differ = {k for k in r580["labels"] if r580["labels"][k] != r550["labels"].get(k) and "cuda.driver" not in k}
    assert differ == {"nvidia.com/mig-3g.40gb.memory"}
    assert expect(capsys, "--stack", "driver=550.54.15")["labels"] == r550["labels"]


def test_an_unknown_branch_says_so_and_leaves_the_labels_out(capsys: pytest.CaptureFixture[str]) -> None:
    doc = expect(capsys, "--driver", "570.124.06")
    assert "nvidia.com/mig-3g.40gb.memory" not in doc["labels"] and "nvidia.com/gpu.memory" not in doc["labels"]
    assert "nvidia.com/mig-3g.40gb.memory" in doc["unknown_labels"]
    assert any("under driver 570.124.06" in n and "no source for branch R570" in n for n in doc["notes"])
    assert doc["allocatable"]["nvidia.com/mig-3g.40gb"] == 16  # only memory is unknown: profiles are the same
    assert main(["expect", "--instance-type", "p5.48xlarge", "--config", "all-3g.40gb", "--strategy", "mixed",
                 "--driver", "570.124.06"]) == 0
    assert "note: H100-80GB under driver 570.124.06: memory of" in capsys.readouterr().out


def test_a_source_that_shows_some_profiles_leaves_the_others_unknown() -> None:
    h100 = load_catalog().get("H100-80GB").at_driver("550.54.15")
    memory = {p.name: p.memory_mib for p in h100.gi_profiles}
    assert memory["1g.10gb"] == 9984 and memory["2g.20gb"] == 20096 and memory["3g.40gb"] == 40320
    assert memory["4g.40gb"] is None and memory["7g.80gb"] is None and memory["1g.10gb+me"] is None
    assert h100.memory_total_mib == 81559 and h100.driver_notes
    assert load_catalog().get("H100-80GB").at_driver("580.82.07").gi_profiles == \
        load_catalog().get("H100-80GB").gi_profiles  # the rows' own branch: the rows themselves


def test_h200_r550_values_are_flagged_unconfirmed() -> None:
    """NVIDIA/mig-parted#120 shows 32.25 / 69.50 / 139.75 GiB but not its driver: usable, never confirmed."""
    h200 = load_catalog().get("H200-141GB").at_driver("550.90.07")
    rows = {p.name: p for p in h200.gi_profiles}
    assert rows["3g.71gb"].memory_mib == 71168 and not rows["3g.71gb"].confirmed
    assert "driver" in (rows["3g.71gb"].reason or "")


def test_smi_prints_the_branch_values_and_question_marks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["smi", "--gpu", "H100", "--driver", "550.54.15", "mig", "-lgip"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "MIG 3g.40gb" in x)
    assert "39.38" in line
    assert main(["smi", "--gpu", "H100", "--driver", "570.124.06", "mig", "-lgip"]) == 0
    out, err = capsys.readouterr()
    assert "?" in next(x for x in out.splitlines() if "MIG 3g.40gb" in x)
    assert "no source for branch R570" in err


@pytest.mark.parametrize("bad", ["580", "r580", "580.x.1", ""])
def test_driver_versions_are_checked(bad: str) -> None:
    with pytest.raises(ValueError):
        driver_branch(bad)
