"""`mig-conformance gpus`: variants, '?' for what a board does not confirm, unconfirmed/derived notes."""

from __future__ import annotations

import json

from mig_conformance.cli import main


def test_gpus_lists_board_variants(capsys) -> None:
    assert main(["gpus"]) == 0
    out = capsys.readouterr().out
    assert "Board variants" in out
    line = next(x for x in out.splitlines() if x.startswith("H100-PCIE-80GB "))
    assert line.split()[:3] == ["H100-PCIE-80GB", "H100-80GB", "0x233110DE"] and "no: sm, memory_mib" in line


def test_gpus_variant_table_hides_unconfirmed_values(capsys) -> None:
    assert main(["gpus", "H100-PCIE-80GB"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("H100-80GB: ") and "board H100-PCIE-80GB" in out and "PCI 0x233110DE" in out
    row = next(x.split() for x in out.splitlines() if x.startswith("3g.40gb "))
    assert row[4:7] == ["?", "?", "3/3/0/3/0"]  # SM and MiB not confirmed for PCIe; engines per the guide
    assert "3g.40gb @{0}:4" in out  # catalog CI placement
    assert "unconfirmed: H100-PCIE-80GB (0x233110DE)" in out
    assert main(["gpus", "H100-80GB"]) == 0
    sxm = capsys.readouterr().out
    assert next(x.split() for x in sxm.splitlines() if x.startswith("3g.40gb "))[4:6] == ["60", "40448"]
    assert "unconfirmed:" not in sxm and "derived:" not in sxm


def test_gpus_json_variant_and_derived(capsys) -> None:
    assert main(["gpus", "H200-NVL", "--json"]) == 0
    (doc,) = json.loads(capsys.readouterr().out)["gpus"]
    assert doc["key"] == "H200-141GB" and doc["variant"] == "H200-NVL-141GB"
    assert all(p["sm"] is None and p["memory_mib"] is None and not p["confirmed"] for p in doc["profiles"])
    assert any("H200-NVL-141GB" in n for n in doc["unconfirmed"])
    assert main(["gpus", "A30", "--json"]) == 0
    (a30,) = json.loads(capsys.readouterr().out)["gpus"]
    assert "A30-24GB 4g.24gb: nvml_index, memory_mib derived" in a30["derived"]
    assert a30["profiles"][0]["sm"] == 14 and a30["profiles"][0]["derived"] == ["nvml_index"]


def test_gpus_json_unknown_gpu_is_one_json_document(capsys) -> None:
    assert main(["gpus", "BOGUS", "--json"]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["gpu"] == "BOGUS" and doc["error"].startswith("unknown GPU 'BOGUS'")


def test_gpus_list_counts_unconfirmed_rows_and_placements_apart(capsys) -> None:
    assert main(["gpus"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line}
    assert rows["H200-141GB"].endswith("1 CI placement unconfirmed")  # every GI row confirmed
    assert rows["H100-80GB"].endswith("yes")
