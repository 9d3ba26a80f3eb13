"""Bottlerocket's own MIG (k8s/bottlerocket.py) and `expect --bottlerocket-settings`: the settings, the per-model
tables, single strategy only, and the traps that fail silently."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mig_conformance.cli import main
from mig_conformance.common.errors import InputError
from mig_conformance.gpus.catalog import load_catalog
from mig_conformance.k8s import bottlerocket as br

MIG = '[settings.kubelet-device-plugins.nvidia]\ndevice-partitioning-strategy = "mig"\n'


def settings_file(tmp_path: Path, body: str, head: str = MIG) -> str:
    path = tmp_path / "user-data.toml"
    path.write_text(head + body)
    return str(path)


def expect(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["expect", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def expect_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:
    code, out, _ = expect(capsys, *argv, "--json")
    return code, json.loads(out)


def test_p5_with_four_partitions_advertises_32_gpus(capsys, tmp_path: Path) -> None:
    f = settings_file(tmp_path, '[settings.kubelet-device-plugins.nvidia.mig.profile]\n"h100.80gb" = "4"\n')
    code, doc = expect_json(capsys, "--bottlerocket-settings", f, "--instance-type", "p5.48xlarge")
    assert code == 0
    assert doc["allocatable"] == {"nvidia.com/gpu": 32}
    assert doc["strategy"] == "single" and doc["profile"] == "1g.20gb" and doc["per_gpu"] == 4
    assert all(g["devices"] == {"1g.20gb": 4} for g in doc["gpus"]) and len(doc["gpus"]) == 8
    assert doc["findings"] == [] and "nvidia.com/mig.config" not in doc["labels"]
    code, out, _ = expect(capsys, "--bottlerocket-settings", f, "--instance-type", "p5.48xlarge")
    assert code == 0 and "nvidia.com/gpu: 32" in out and "reboot" in out


def test_dotted_keys_and_the_documented_examples(tmp_path: Path) -> None:
    text = ('settings.kubelet-device-plugins.nvidia.device-partitioning-strategy = "mig"\n'
            'settings.kubelet-device-plugins.nvidia.mig.profile."a100.80gb" = "3"\n'
            'settings.kubelet-device-plugins.nvidia.mig.profile."h200.141gb" = "2g.35gb"\n')
    s = br.parse_settings(text, "ud.toml")
    catalog = load_catalog()
    a100 = br.plan(s, br.Board.of(catalog.get("A100-80GB")), 8)
    assert (a100.profile, a100.count) == ("2g.20gb", 3)
    h200 = br.plan(s, br.Board.of(catalog.get("H200-141GB")), 8)
    assert (h200.profile, h200.count, h200.findings) == ("2g.35gb", 3, ())  # as many as fit
    assert s.lines[f'{br.PROFILE}."h200.141gb"'] == 3


def test_a_misspelt_value_warns_of_one_whole_gpu_device_per_gpu(capsys, tmp_path: Path) -> None:
    f = settings_file(tmp_path, '[settings.kubelet-device-plugins.nvidia.mig.profile]\n"h100.80gb" = "four"\n')
    code, doc = expect_json(capsys, "--bottlerocket-settings", f, "--instance-type", "p5.48xlarge")
    assert code == 0  # Bottlerocket accepts it: a warning, not an error
    assert doc["allocatable"] == {"nvidia.com/gpu": 8}
    [w] = doc["findings"]
    assert w["level"] == "warning" and w["line"] == 4 and w["key"].endswith('"h100.80gb"')
    assert "one 7g.80gb device per GPU" in w["message"] and "silently" in w["message"]


@pytest.mark.parametrize("value", ["5", "1G.10GB", ""])
def test_values_outside_the_table_fall_back_to_the_whole_gpu(tmp_path: Path, value: str) -> None:
    s = br.parse_settings(MIG + f'[settings.kubelet-device-plugins.nvidia.mig.profile]\n"h100.80gb" = "{value}"\n')
    p = br.plan(s, br.Board.of(load_catalog().get("H100-80GB")), 8)
    assert (p.profile, p.count) == ("7g.80gb", 1) and p.findings[0].level == "warning"


def test_mixed_strategy_is_refused_with_the_reason(capsys, tmp_path: Path) -> None:
    f = settings_file(tmp_path, "")
    code, _, err = expect(capsys, "--bottlerocket-settings", f, "--instance-type", "p5.48xlarge", "--strategy",
                          "mixed")
    assert code == 2 and "single strategy" in err and "#4483" in err
    code, _, err = expect(capsys, "--bottlerocket-settings", f, "--instance-type", "p5.48xlarge", "--config",
                          "all-balanced")
    assert code == 2 and "no mig-manager" in err


def test_without_a_profile_each_gpu_gets_its_largest(capsys, tmp_path: Path) -> None:
    code, doc = expect_json(capsys, "--bottlerocket-settings", settings_file(tmp_path, ""), "--instance-type",
                            "p5e.48xlarge")
    assert code == 0 and doc["allocatable"] == {"nvidia.com/gpu": 8} and doc["profile"] == "7g.141gb"


def test_mps_and_mig_stop_the_device_plugin(capsys, tmp_path: Path) -> None:
    f = settings_file(tmp_path, 'device-sharing-strategy = "mps"\n'
                                '[settings.kubelet-device-plugins.nvidia.mig.profile]\n"h100.80gb" = "2"\n')
    code, doc = expect_json(capsys, "--bottlerocket-settings", f, "--instance-type", "p5.48xlarge")
    assert code == 1 and doc["allocatable"] == {} and "mutually exclusive" in doc["plugin_error"]
    assert [f["level"] for f in doc["findings"]] == ["error"] and doc["findings"][0]["line"] == 3


def test_time_slicing_on_mig_shares_each_device(tmp_path: Path) -> None:
    s = br.parse_settings(MIG + 'device-sharing-strategy = "time-slicing"\ntime-slicing.replicas = 4\n'
                                '[settings.kubelet-device-plugins.nvidia.mig.profile]\n"h100.80gb" = "4"\n')
    node = br.project(s, [load_catalog().get("H100-80GB")] * 8)
    assert node.allocatable == {"nvidia.com/gpu": 0, "nvidia.com/gpu.shared": 128}  # bottlerocket PR #4418's p5


def test_mig_off_gives_whole_gpus_and_says_the_profile_is_ignored(tmp_path: Path) -> None:
    s = br.parse_settings('[settings.kubelet-device-plugins.nvidia.mig.profile]\n"h100.80gb" = "7"\n', "u.toml")
    node = br.project(s, [load_catalog().get("H100-80GB")] * 8)
    assert node.allocatable == {"nvidia.com/gpu": 8} and not node.plan.mig
    assert "not \"mig\"" in node.plan.findings[0].message


def test_h100_nvl_reads_the_h100_key_whose_profiles_it_lacks(capsys, tmp_path: Path) -> None:
    f = settings_file(tmp_path, '[settings.kubelet-device-plugins.nvidia.mig.profile]\n"h100.80gb" = "7"\n')
    code, doc = expect_json(capsys, "--bottlerocket-settings", f, "--gpu", "H100-NVL-94GBx2")
    assert code == 1 and doc["profile"] is None
    [e] = doc["findings"]
    assert e["level"] == "error" and "1g.10gb does not exist on H100-NVL-94GB" in e["message"]
    assert "1g.12gb" in e["message"] and e["line"] == 4


@pytest.mark.parametrize(("board", "asked", "has"), [("GB200-186GB", "1g.45gb", "1g.47gb"),
                                                      ("GH200-144GB", "2g.35gb", "2g.36gb")])
def test_boards_that_get_another_gpus_profile_names(board: str, asked: str, has: str) -> None:
    key = "b200.180gb" if board.startswith("GB") else "h200.141gb"
    value = "4" if board.startswith("GB") else "3"
    s = br.parse_settings(MIG + f'[settings.kubelet-device-plugins.nvidia.mig.profile]\n"{key}" = "{value}"\n')
    other = next(b for b in br.load_tables().other_boards if b.name == board)
    p = br.plan(s, br.Board.other(other), 4)
    assert p.profile is None and p.errors
    assert f"{asked} does not exist on {board}" in p.errors[0].message and has in p.errors[0].message


def test_unknown_keys_warn(tmp_path: Path) -> None:
    s = br.parse_settings(MIG + '[settings.kubelet-device-plugins.nvidia.mig.profile]\n"h100.80g" = "4"\n')
    p = br.plan(s, br.Board.of(load_catalog().get("H100-80GB")), 8)
    assert any("no GPU reads the key \"h100.80g\"" in f.message for f in p.findings)
    assert p.profile == "7g.80gb"  # the key it meant was not set


@pytest.mark.parametrize(("text", "line", "key"), [
    (MIG + '[settings.kubelet-device-plugins.nvidia.mig.profile]\n"h100.80gb" = 4\n', 4, '"h100.80gb"'),
    ('[settings.kubelet-device-plugins.nvidia]\ndevice-partitioning-strategy = true\n', 2, "partitioning"),
    ('[settings.kubelet-device-plugins.nvidia\n', 1, None),
])
def test_bad_input_names_file_line_and_key(text: str, line: int, key: str | None) -> None:
    with pytest.raises(InputError) as info:
        br.parse_settings(text, "ud.toml")
    [problem] = info.value.problems
    assert problem.location.file == "ud.toml" and problem.location.line == line
    assert key is None or key in str(problem.location.key)


def test_the_file_is_read_bounded(capsys, tmp_path: Path) -> None:
    big = tmp_path / "big.toml"
    big.write_text("# x\n" * (br.MAX_BYTES // 4 + 10))
    code, _, err = expect(capsys, "--bottlerocket-settings", str(big), "--instance-type", "p5.48xlarge")
    assert code == 2 and "big.toml" in err and "larger than" in err
    code, _, err = expect(capsys, "--bottlerocket-settings", str(tmp_path / "nope"), "--instance-type", "p5.48xlarge")
    assert code == 2 and "file not found" in err


def test_unrelated_settings_are_ignored() -> None:
    s = br.parse_settings('[settings.kubernetes]\ncluster-name = 7\n[settings.host-containers.admin]\nenabled = 1\n')
    assert not s.mig and s.profiles == {}


def test_every_table_row_exists_on_its_catalog_gpu() -> None:
    """The fixture and the catalog agree: each count creates that many instances of a profile the GPU has."""
    catalog = load_catalog()
    for table in br.load_tables().models.values():
        if table.gpu is None:
            continue
        gpu = catalog.get(table.gpu)
        assert gpu.pci_device_id >> 16 in table.pci_ids or table.key == "rtxpro6000.96gb"
        for count, profile in table.counts.items():
            row = gpu.profile(profile)
            assert row is not None and row.max_instances >= int(count), (table.key, count, profile)


def test_detects_bottlerocket_from_the_os_image() -> None:
    assert br.is_bottlerocket("Bottlerocket OS 1.34.0 (aws-k8s-1.33-nvidia)")
    assert not br.is_bottlerocket("Amazon Linux 2023.7.20250527") and not br.is_bottlerocket(None)
