"""A user catalog folder made the way issue 13's walk-through makes one: `capture --nvidia-smi-text` from saved
nvidia-smi output (tests/data/smi-text), under a new key, beside a new instance type."""

from __future__ import annotations

from pathlib import Path

from mig_conformance.cli import main

SMI = Path(__file__).resolve().parents[1] / "data" / "smi-text"
NEW_GPU = "NEWGPU-94GB"
NEW_TYPE = "x9.48xlarge"
#: H100 NVL's PCI ID: the default ConfigMap's all-balanced selects it (a new board needs its own config file)
PCI = "0x232110DE"
DRIVER = "550.54.15"


def make_user_catalog(folder: Path) -> Path:
    """folder/gpus/NEWGPU-94GB.yaml (captured) and folder/instance-types.yaml (x9.48xlarge: 8 of them)."""
    files = ("h100-nvl-94gb-lgip-79col.txt", "h100-nvl-94gb-lgipp.txt", "h100-nvl-94gb-L.txt")
    argv = ["capture", *(a for f in files for a in ("--nvidia-smi-text", str(SMI / f))), "--driver", DRIVER,
            "--key", NEW_GPU, "--pci-device-id", PCI, "-o", f"{folder / 'gpus'}/"]
    assert main(argv) == 0
    (folder / "instance-types.yaml").write_text(
        "source: vendor test rack (tests/support/user_catalog.py)\n"
        "instance_types:\n"
        f"  {NEW_TYPE}:\n"
        f"    gpu: {NEW_GPU}\n"
        "    gpu_count: 8\n"
        "    ec2_gpu_memory_mib: 95830\n"
        "    vcpus: 192\n", encoding="utf-8")
    return folder
