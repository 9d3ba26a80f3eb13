"""`mig-conformance smi` and `mig-conformance capture`: output, files, exit codes."""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

import pytest

from mig_conformance.capture.smi_text import parse_lgip
from mig_conformance.cli import main
from mig_conformance.common.extras import install_hint
from mig_conformance.gpus.catalog import Catalog, load_gpu_file
from mig_conformance.gpus.device_ids import DeviceID
from mig_conformance.mig.spec import parse_spec_text
from mig_conformance.simulators import nvml as nv

ROOT = Path(__file__).parents[2]
CAPTURES = ROOT / "tests" / "data" / "captures"
DEFAULT = ROOT / "fixtures" / "configs" / "default-mig-parted-config.yaml"


def test_smi_lgip_equals_capture(capsys) -> None:
    assert main(["smi", "--gpu", "H100-80GB", "mig", "-lgip"]) == 0
    assert capsys.readouterr().out == (CAPTURES / "h100-80gb-hbm3-580" / "lgip.txt").read_text()
    assert main(["smi", "--gpu", "H200-141GB", "mig", "-lgipp", "-i", "0"]) == 0
    assert capsys.readouterr().out == (CAPTURES / "h200-141gb-580" / "lgipp-i0.txt").read_text()


def _config_devices(name: str, pci_id: int) -> Counter[str]:
    """The devices the named config of the default ConfigMap gives a GPU with this PCI ID."""
    spec = parse_spec_text(DEFAULT.read_text(), str(DEFAULT))
    device = DeviceID(pci_id >> 16, pci_id & 0xFFFF)
    for entry in spec.configs[name]:
        if entry.matches_device_filter(device):
            return Counter({k: v for k, v in (entry.mig_devices or {}).items() if v})
    raise AssertionError(f"no entry of {name} for {pci_id:#x}")


def test_smi_applies_config_then_lists(capsys, catalog: Catalog) -> None:
    argv = ["smi", "--gpu", "H100-80GB", "--count", "2", "--config-file", str(DEFAULT), "--config", "all-balanced"]
    assert main([*argv, "-L"]) == 0
    lines = capsys.readouterr().out.splitlines()
    gpu_lines = [k for k, line in enumerate(lines) if line.startswith("GPU ")]
    assert len(gpu_lines) == 2
    want = _config_devices("all-balanced", catalog.get("H100-80GB").pci_device_id)
    for start, end in zip(gpu_lines, [*gpu_lines[1:], len(lines)], strict=True):
        names = Counter(line.split()[1] for line in lines[start + 1:end])
        assert names == want and sum(want.values()) > 1
    assert main([*argv, "mig", "-lgip", "-i", "1"]) == 0
    rows = parse_lgip(capsys.readouterr().out)
    assert {r.gpu for r in rows} == {1} and all(r.free < r.total for r in rows if r.name == "3g.40gb")


def test_smi_errors(capsys, tmp_path: Path) -> None:
    assert main(["smi", "--gpu", "H100-80GB"]) == 2
    assert "missing nvidia-smi arguments" in capsys.readouterr().err
    assert main(["smi", "--gpu", "Z100", "-L"]) == 2
    assert "unknown GPU 'Z100'" in capsys.readouterr().err
    assert main(["smi", "--gpu", "H100-80GB", "--config", "all-balanced", "-L"]) == 2
    assert main(["smi", "--gpu", "H100-80GB", "mig", "-lgi", "-i", "4"]) == nv.NVML_ERROR_NOT_FOUND
    assert "No devices were found" in capsys.readouterr().err
    assert main(["smi", "--gpu", "H100-80GB", "--config-file", str(DEFAULT), "--config", "no-such", "-L"]) == 1
    assert "no-such" in capsys.readouterr().err


def test_smi_reads_a_mig_parted_state_file(capsys, tmp_path: Path) -> None:
    state = tmp_path / "node.json"
    assert main(["mig-parted", "apply", "--gpu", "H100-80GB", "--state", str(state), "-f", str(DEFAULT),
                 "-c", "all-1g.10gb"]) == 0
    capsys.readouterr()
    assert main(["smi", "--state", str(state), "mig", "-lgi"]) == 0
    out = capsys.readouterr().out
    assert out.count("MIG 1g.10gb") == 7 and {len(line) for line in out.splitlines()} == {59}


def test_capture_simulate_writes_loadable_entry(tmp_path: Path, catalog: Catalog, capsys) -> None:
    out = tmp_path / "entry.yaml"
    assert main(["capture", "--simulate", "H200-141GB", "-o", str(out)]) == 0
    assert f"wrote {out} (H200-141GB)" in capsys.readouterr().err
    got, want = load_gpu_file(out), catalog.get("H200-141GB")
    assert got.key == want.key and got.source.startswith("capture --nvml on simulator driver ")
    assert [(p.name, p.id, p.memory_mib, p.placements) for p in got.gi_profiles] == [
        (p.name, p.id, p.memory_mib, p.placements) for p in want.gi_profiles]


def test_capture_simulate_two_models_into_directory(tmp_path: Path) -> None:
    assert main(["capture", "--simulate", "H100-80GBx2,A30-24GB", "-o", f"{tmp_path}/entries/"]) == 0
    files = sorted(p.name for p in (tmp_path / "entries").iterdir())
    assert files == ["A30-24GB.yaml", "H100-80GB.yaml"]
    assert load_gpu_file(tmp_path / "entries" / "A30-24GB.yaml").compute_slices == 4


@pytest.mark.parametrize("order", [("lgipp.txt", "lgip.txt", "smi-L.txt"), ("smi-L.txt", "lgip.txt", "lgipp.txt")])
def test_capture_text_in_any_order(order: tuple[str, ...], tmp_path: Path, catalog: Catalog) -> None:
    folder = CAPTURES / "h100-80gb-hbm3-580"
    out = tmp_path / "e.yaml"
    argv = ["capture", "-o", str(out), "--memory-total-mib", "81559", "--driver", "580.159.04"]
    for name in order:
        argv += ["--nvidia-smi-text", str(folder / name)]
    assert main(argv) == 0
    got, want = load_gpu_file(out), catalog.get("H100-80GB")
    assert (got.key, got.memory_total_mib, got.driver, got.memory_slots) == (
        want.key, want.memory_total_mib, want.driver, want.memory_slots)
    assert [p.placements for p in got.gi_profiles] == [p.placements for p in want.gi_profiles]


def test_capture_text_errors(tmp_path: Path, capsys) -> None:
    folder = CAPTURES / "h100-80gb-hbm3-580"
    assert main(["capture", "--nvidia-smi-text", str(folder / "lgi.txt")]) == 2
    assert "neither nvidia-smi mig -lgip" in capsys.readouterr().err
    assert main(["capture", "--nvidia-smi-text", str(folder / "lgipp.txt")]) == 2
    assert "needs the nvidia-smi mig -lgip output" in capsys.readouterr().err
    lgip = str(folder / "lgip.txt")
    assert main(["capture", "--nvidia-smi-text", lgip, "--nvidia-smi-text", lgip]) == 2
    assert main(["capture", "--nvidia-smi-text", str(tmp_path / "missing.txt")]) == 2
    assert main(["capture", "--nvidia-smi-text", lgip]) == 0  # no placements: written with a warning
    captured = capsys.readouterr()
    assert "key: GPU-80GB" in captured.out and "placements: null" in captured.out
    assert "warning: GPU-80GB: no placements for 1g.10gb, 1g.10gb+me" in captured.err


def test_capture_nvml_without_nvidia_ml_py(monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    assert main(["capture", "--nvml", "-o", "never.yaml"]) == 2
    assert install_hint("nvml") in capsys.readouterr().err
    assert not Path("never.yaml").exists()


def test_capture_nvml_through_a_pynvml_shaped_module(monkeypatch, tmp_path: Path, catalog: Catalog) -> None:
    """`capture --nvml` imports `pynvml` lazily: here the simulator module stands in for it."""
    previous = nv.use(nv.NvmlSimulator(["H100-80GB"]))
    monkeypatch.setitem(sys.modules, "pynvml", nv)
    try:
        assert main(["capture", "--nvml", "--host", "gpu-box", "-o", str(tmp_path / "entry.yaml")]) == 0
    finally:
        nv.use(previous)
    got = load_gpu_file(tmp_path / "entry.yaml")
    assert got.key == "H100-80GB" and got.source.startswith("capture --nvml on gpu-box driver 580.159.04")
    assert [p.id for p in got.gi_profiles] == [p.id for p in catalog.get("H100-80GB").gi_profiles]


def test_capture_nvml_init_failure(monkeypatch, capsys) -> None:
    previous = nv.use(None)  # every simulated call now fails with NVMLError_Uninitialized

    class NoDriver:
        NVMLError = nv.NVMLError

        @staticmethod
        def nvmlInit() -> None:
            raise nv.NVMLError(nv.NVML_ERROR_UNKNOWN)

    monkeypatch.setitem(sys.modules, "pynvml", NoDriver)
    try:
        assert main(["capture", "--nvml"]) == 2
    finally:
        nv.use(previous)
    assert "NVML could not be initialised" in capsys.readouterr().err


PCIE_CONFIG = """version: v1
mig-configs:
  pcie-only:
    - device-filter: "0x233110DE"
      devices: all
      mig-enabled: true
      mig-devices: {"1g.10gb": 7}
"""


def test_smi_variant_matches_its_own_device_filter(capsys, tmp_path: Path) -> None:
    """A config filtered on the H100 PCIe ID (0x233110DE) applies to a simulated H100 PCIe, not to the SXM5."""
    config = tmp_path / "pcie.yaml"
    config.write_text(PCIE_CONFIG)
    argv = ["--config-file", str(config), "--config", "pcie-only", "-L"]
    assert main(["smi", "--gpu", "H100-PCIE-80GB,H100-80GB", *argv]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].startswith("GPU 0: NVIDIA H100 PCIe ") and lines[8].startswith("GPU 1: NVIDIA H100 80GB HBM3 ")
    assert [line.split()[1] for line in lines[1:8]] == ["1g.10gb"] * 7 and len(lines) == 9
    assert "naming convention" in err


def test_smi_b200_flags_unknown_rows(capsys) -> None:
    assert main(["smi", "--gpu", "B200-180GB", "mig", "-lgip"]) == 0
    out, err = capsys.readouterr()
    rows = {r.name: r for r in parse_lgip(out)}
    assert rows["7g.180gb"].sm is None and rows["7g.180gb"].memory == "?"
    assert "note: GPU 0: MIG 3g.90gb, 7g.180gb:" in err and "not captured" in err


def test_capture_refuses_cut_off_text(tmp_path: Path, capsys) -> None:
    lgip = (CAPTURES / "h100-80gb-hbm3-580" / "lgip.txt").read_text()
    cut = tmp_path / "cut.txt"
    cut.write_text(lgip[:lgip.index("|   0  MIG 1g.10gb+me")] + "+-----------")
    out = tmp_path / "never.yaml"
    assert main(["capture", "--nvidia-smi-text", str(cut), "-o", str(out)]) == 2
    assert "looks cut off" in capsys.readouterr().err and not out.exists()
    no_second_line = tmp_path / "rows.txt"
    no_second_line.write_text(re.sub(r"\n\|\s+1\s+1\s+1\s+\|", "", lgip, count=1))
    assert main(["capture", "--nvidia-smi-text", str(no_second_line)]) == 2
    assert "without their second line (CE/JPEG/OFA): 1g.10gb+me" in capsys.readouterr().err
    lgipp = (CAPTURES / "h100-80gb-hbm3-580" / "lgipp.txt").read_text()
    cut_lgipp = tmp_path / "cut-lgipp.txt"
    cut_lgipp.write_text(lgipp.rstrip("\n")[:-3])
    assert main(["capture", "--nvidia-smi-text", str(CAPTURES / "h100-80gb-hbm3-580" / "lgip.txt"),
                 "--nvidia-smi-text", str(cut_lgipp)]) == 2
    assert "incomplete -lgipp line" in capsys.readouterr().err


def test_capture_simulate_writes_null_for_unknown_values(tmp_path: Path, capsys) -> None:
    out = tmp_path / "b200.yaml"
    assert main(["capture", "--simulate", "B200-180GB", "-o", str(out)]) == 0
    got = load_gpu_file(out)
    row = got.profile("3g.90gb")
    assert row is not None and (row.sm, row.memory_mib, row.engines.ce, row.p2p) == (None, None, None, None)
    assert not row.confirmed and "SM, memory and engine counts not captured" in (row.reason or "")
    assert got.profile("2g.45gb").sm == 36 and not got.confirmed
    variant = tmp_path / "pcie.yaml"
    assert main(["capture", "--simulate", "H100-PCIE-80GB", "-o", str(variant)]) == 0
    pcie = load_gpu_file(variant)
    assert pcie.pci_device_ids == ("0x233110DE",) and pcie.nvml_names == ("NVIDIA H100 PCIe",)
    assert pcie.memory_total_mib is None and all(p.sm is None and p.memory_mib is None for p in pcie.gi_profiles)
