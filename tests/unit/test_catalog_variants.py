"""Catalog board variants, CI placements and honest confirmation flags (docs/catalog-schema.md)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mig_conformance.common.errors import InputError, UnknownNameError
from mig_conformance.gpus.catalog import (
    Catalog,
    catalog_dir,
    load_gpu_file,
    parse_gpu_specs,
    spec_pci_device_id,
    spec_pci_device_ids,
)


@pytest.mark.parametrize(("spec", "model", "variant", "pci"), [
    ("H100-80GB", "H100-80GB", "H100-80GB", 0x233010DE),
    ("H100", "H100-80GB", "H100-80GB", 0x233010DE),
    ("H100-PCIE-80GB", "H100-80GB", "H100-PCIE-80GB", 0x233110DE),
    ("NVIDIA H100 PCIe", "H100-80GB", "H100-PCIE-80GB", 0x233110DE),
    ("NVIDIA-H100-PCIe-MIG-1g.10gb", "H100-80GB", "H100-PCIE-80GB", 0x233110DE),
    ("0x233110de", "H100-80GB", "H100-PCIE-80GB", 0x233110DE),
    ("H800-80GB", "H100-80GB", "H800-80GB", 0x232410DE),
    ("H200-NVL", "H200-141GB", "H200-NVL-141GB", 0x233B10DE),
    ("H20", "GH200-96GB", "H20-96GB", 0x232910DE),
    ("A800-80GB", "A100-80GB", "A800-SXM4-80GB", 0x20F310DE),
    ("RTX-PRO-6000-WS", "RTXPRO6000-96GB", "RTXPRO6000-WS-96GB", 0x2BB110DE),
])
def test_specs_resolve_to_model_and_variant(catalog: Catalog, spec: str, model: str, variant: str, pci: int) -> None:
    m, v = catalog.resolve(spec)
    assert (m.key, v.key, v.pci_device_id_int) == (model, variant, pci)
    assert catalog.get(spec) is m and catalog.variant(spec) is v  # get() keeps returning the model
    assert spec_pci_device_id(spec, catalog) == pci


def test_every_pci_id_is_one_variant(catalog: Catalog) -> None:
    ids = [v.pci_device_id_int for g in catalog for v in g.variants]
    assert len(ids) == len(set(ids))
    for g in catalog:
        # primary first; a model without a published PCI ID (RTXPRO4500-32GB) has one variant, 0x0, found by none
        assert [v.pci_device_id for v in g.variants] == (list(g.pci_device_ids) or ["0x0"])
        if not g.pci_device_ids:
            assert catalog.variant_by_pci_id(0) is None
        assert g.variants[0].primary and g.variants[0].key == g.key
        for v in g.variants[1:]:
            assert catalog.variant_by_pci_id(v.pci_device_id_int) is v and catalog.by_pci_id(v.pci_device_id_int) is g
            assert v.confirmed or (v.reason and v.unconfirmed)


def test_gpu_spec_lists_keep_variants(catalog: Catalog) -> None:
    specs = ["H100-PCIE-80GBx2,H100-80GB", "A30*1"]
    assert [v.key for v in parse_gpu_specs(specs, catalog)] == [
        "H100-PCIE-80GB", "H100-PCIE-80GB", "H100-80GB", "A30-24GB"]
    assert spec_pci_device_ids(specs, catalog) == [0x233110DE, 0x233110DE, 0x233010DE, 0x20B710DE]
    with pytest.raises(UnknownNameError, match=r"variants: .*H100-PCIE-80GB"):
        catalog.resolve("Z100")
    with pytest.raises(InputError):
        parse_gpu_specs([""], catalog)


def test_variant_notes_name_what_is_unconfirmed(catalog: Catalog) -> None:
    pcie = catalog.variant("H100-PCIE-80GB")
    assert set(pcie.unconfirmed_row_fields) == {"sm", "memory_mib"}  # the guide covers the engines of both
    assert "profiles.md#h100-80gb" in pcie.reason and any("naming convention" in n for n in pcie.notes)
    h20 = catalog.variant("H20")
    assert set(h20.unconfirmed_row_fields) >= {"sm", "memory_mib", "ce", "dec", "enc", "jpeg", "ofa"}
    unnamed = catalog.variant("H100-96GB")
    assert not unnamed.nvml_name_known and catalog.find_variant(unnamed.nvml_name).key == "GH200-96GB"
    assert catalog.variant("H100-80GB").notes == [] and catalog.variant("H200-141GB").notes == []


def test_ci_placements_of_three_g_on_hopper(catalog: Catalog) -> None:
    def whole_3g(key: str):
        gi = next(p for p in catalog.get(key).gi_profiles if p.slices == 3)
        return next(c for c in gi.compute_instances if c.default)

    h100 = whole_3g("H100-80GB")
    assert h100.placements == ((0, 4),) and h100.placements_confirmed and "h100-80gb-cgi-9-14-lci" in (
        h100.placements_source or "")
    for key in ("H200-141GB", "H100-NVL-94GB", "GH200-96GB"):
        ci = whole_3g(key)
        assert ci.placements == ((0, 4),) and not ci.placements_confirmed and "analogy" in (ci.placements_reason or "")
        assert any("CI placements" in n for n in catalog.get(key).unconfirmed)
    assert whole_3g("A100-40GB").placements == ((0, 3),) and not whole_3g("A100-40GB").placements_from_catalog
    assert whole_3g("B200-180GB").placements == ((0, 3),)  # no source: the schema formula


def test_derived_values_are_flagged(catalog: Catalog) -> None:
    """Rows whose MiB or NVML index docs/reference/profiles.md#reading-the-tables marks [DERIVED] carry `derived:`;
    analogy placements are unconfirmed (docs/reference/profiles.md#a100-80gb, #h100-nvl-94gb)."""
    for g in catalog:
        for p in g.gi_profiles:
            assert ("nvml_index" in p.derived) == ("nvml_index derived" in p.source), (g.key, p.name)
            assert ("memory_mib" in p.derived) == ("memory_mib derived" in p.source), (g.key, p.name)
    nvl = catalog.get("H100-NVL-94GB")
    assert [p.name for p in nvl.gi_profiles if not p.confirmed] == ["7g.94gb"] and not nvl.confirmed
    assert "placements" in nvl.profile("7g.94gb").derived
    a100 = catalog.get("A100-80GB")
    assert not a100.confirmed and all(not p.confirmed and "placements" in p.derived for p in a100.gi_profiles)
    for key in ("H100-80GB", "H200-141GB"):  # NVML captures: nothing derived, every GI row confirmed
        assert catalog.get(key).derived == [] and all(p.confirmed for p in catalog.get(key).gi_profiles)


def _broken(tmp_path: Path, old: str, new: str) -> Path:
    text = (catalog_dir() / "H100-80GB.yaml").read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "H100-80GB.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


@pytest.mark.parametrize(("old", "new", "message"), [
    ('pci_device_id: "0x233110DE"', 'pci_device_id: "0x233910DE"', "must be one of the model's non-primary"),
    ('nvml_name: "NVIDIA H100 PCIe"', 'nvml_name: "NVIDIA H100 PCIe X"', "must be listed in the model's nvml_names"),
    ("    unconfirmed: [sm, memory_mib, placements, memory_total_mib, sm_count]\n", "",
     "needs 'unconfirmed' fields and a 'reason'"),
    ("unconfirmed: [sm, memory_mib, placements,", "unconfirmed: [sm, memory_gib, placements,",
     "'unconfirmed' may name"),
    ("placements: {starts: [0], size: 4, confirmed: true, reason: null,",
     "placements: {starts: [0], size: 4, confirmed: false, reason: null,", "'reason' is required"),
    ('pci_device_id: "0x232410DE"', 'pci_device_id: "0x232210DE"',
     "each non-primary PCI device ID exactly once"),
])
def test_loader_rejects_inconsistent_variants(tmp_path: Path, old: str, new: str, message: str) -> None:
    with pytest.raises(InputError, match=re.escape(message)):
        load_gpu_file(_broken(tmp_path, old, new))
