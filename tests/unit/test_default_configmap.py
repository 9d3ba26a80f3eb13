"""Every config of the GPU Operator's default ConfigMap validates on every catalog GPU it is meant for."""

from __future__ import annotations

from importlib import resources

import pytest

from mig_conformance.gpus.catalog import Catalog, GpuModel
from mig_conformance.gpus.device_ids import DeviceID
from mig_conformance.gpus.profile_names import parse_profile
from mig_conformance.mig.spec import Spec, load_spec
from mig_conformance.validation import validate_node

# Configs whose GPUs are not in the catalog, so nothing can select them (documented in docs/catalog.md):
# GB200's early boards, GH200 144GB HBM3e and GB300 have no profile table in any public source
# (docs/reference/profiles.md#gpus-without-a-catalog-table). B300 and GB200's production boards are in the catalog
# with their names and counts only (every other value null, placements assumed).
CONFIGS_FOR_GPUS_OUTSIDE_THE_CATALOG = {
    "all-3g.95gb", "all-4g.95gb", "all-7g.189gb",  # GB200 early boards
    "all-1g.36gb", "all-2g.36gb", "all-3g.72gb", "all-4g.72gb", "all-7g.144gb",  # GH200 144GB HBM3e
    "all-1g.35gb.me", "all-1g.70gb", "all-2g.70gb", "all-3g.139gb", "all-4g.139gb", "all-7g.278gb",  # GB300
}
# Expected failures among the configs that do select a catalog GPU: none.
EXPECTED_FAILURES: set[tuple[str, str]] = set()


@pytest.fixture(scope="module")
def default_spec() -> Spec:
    path = resources.files("mig_conformance.fixtures").joinpath("configs/default-mig-parted-config.yaml")
    return load_spec(str(path))


def _targets(spec: Spec, name: str, catalog: Catalog) -> list[tuple[GpuModel, DeviceID]]:
    """(GPU, PCI ID) pairs the config is meant for: selected by its filters, and, for unfiltered
    entries, having every profile the entry names."""
    _, entries = spec.select(name)
    out = []
    for gpu in catalog.mig_capable:
        for pid in gpu.pci_device_ids:
            device = DeviceID.parse(pid)
            selected = [e for e in entries if e.selects(0, device)]
            if not selected:
                continue
            entry = selected[-1]
            if not entry.device_filter and any(gpu.resolve(parse_profile(k)) is None for k in entry.mig_devices or {}):
                continue
            out.append((gpu, device))
    return out


def test_configmap_has_81_valid_configs(default_spec: Spec) -> None:
    assert default_spec.valid, default_spec.problems
    assert len(default_spec.configs) == 81


def test_every_config_validates_on_its_gpus(default_spec: Spec, catalog: Catalog) -> None:
    failures, untargeted, checked = set(), set(), 0
    for name in default_spec.configs:
        targets = _targets(default_spec, name, catalog)
        if not targets:
            untargeted.add(name)
        for gpu, device in targets:
            report = validate_node(default_spec, name, [gpu] * 8, gpu.key, [device] * 8)
            checked += 1
            if not report.valid:
                failures.add((name, gpu.key))
    assert failures == EXPECTED_FAILURES
    assert untargeted == CONFIGS_FOR_GPUS_OUTSIDE_THE_CATALOG
    assert checked > 81


@pytest.mark.parametrize(("key", "expected"), [
    ("H100-80GB", {"1g.10gb": 2, "2g.20gb": 1, "3g.40gb": 1}),
    ("H200-141GB", {"1g.18gb": 2, "2g.35gb": 1, "3g.71gb": 1}),
    ("A100-40GB", {"1g.5gb": 2, "2g.10gb": 1, "3g.20gb": 1}),
    ("A30-24GB", {"1g.6gb": 2, "2g.12gb": 1}),
    ("B200-180GB", {"1g.23gb": 2, "2g.45gb": 1, "3g.90gb": 1}),
])
def test_all_balanced_per_gpu(default_spec: Spec, catalog: Catalog, key: str, expected: dict[str, int]) -> None:
    report = validate_node(default_spec, "all-balanced", [catalog.get(key)] * 8, key)
    assert report.valid
    assert all(g.devices == expected for g in report.gpus)


def test_wrong_gpu_config_is_invalid_with_mig_parted_behaviour(default_spec: Spec, catalog: Catalog) -> None:
    report = validate_node(default_spec, "all-1g.5gb", [catalog.get("H100-80GB")] * 8, "p5")
    assert not report.valid
    assert "exists on no GPU of this node" in report.errors[0].message
    assert report.mig_parted["apply"] == "success"  # real apply clears the GPU and reports success
    assert report.errors[0].location.config == "all-1g.5gb" and report.errors[0].location.line


def test_b200_unconfirmed_rows_are_flagged(default_spec: Spec, catalog: Catalog) -> None:
    report = validate_node(default_spec, "all-3g.90gb", [catalog.get("B200-180GB")], "p6")
    assert report.valid
    assert any("unconfirmed" in w.message for w in report.warnings)
