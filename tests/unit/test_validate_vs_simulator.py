"""Property: `validate` agrees with the kit's mig-parted simulator on random configs and nodes.

For any config and node: the report's `mig_parted` fields are what running the simulator's apply and then
assert on a fresh node gives; every apply failure is a located error; every assert failure after a successful
apply is explained by a located error or warning; and where the report is valid, each GPU ends up with the
MIG devices the report plans for it (the simulator's read-back, by mig-parted's names).
"""

from __future__ import annotations

from collections import Counter

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mig_conformance.gpus.catalog import GpuModel, load_catalog
from mig_conformance.gpus.profile_names import parse_profile
from mig_conformance.mig.spec import parse_spec_text
from mig_conformance.simulators import nvml as nv
from mig_conformance.simulators.mig_parted import MigParted
from mig_conformance.validation import validate_node

CATALOG = load_catalog()
MODELS = sorted(CATALOG, key=lambda g: g.key)
SETTINGS = settings(max_examples=250, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def _names(gpus: list[GpuModel]) -> list[str]:
    names = {ci.name for g in gpus for p in g.gi_profiles for ci in p.compute_instances}
    return sorted(names)


def _variants(name: str) -> list[str]:
    """The name, plus spellings mig-parted parses to the same profile but reads back differently."""
    p = parse_profile(name)
    out = [name, f"0{p.g}g.{p.gb}gb{p.suffix}" if p.c == p.g else f"{p.c}c.0{p.g}g.{p.gb}gb{p.suffix}"]
    if p.c == p.g:
        out.append(f"{p.c}c.{name}")
    return out


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[GpuModel], dict]:
    gpus = draw(st.lists(st.sampled_from(MODELS), min_size=1, max_size=4))
    names = _names(gpus)
    ids = [*sorted({pid for g in gpus for pid in g.pci_device_ids[:1]}), "0x12345678", "not-an-id"]
    entries = []
    for _ in range(draw(st.integers(1, 3))):
        entry: dict = {"devices": draw(st.one_of(st.just("all"), st.lists(st.integers(0, len(gpus)), max_size=3,
                                                                            unique=True)))}
        if draw(st.booleans()):
            entry["device-filter"] = draw(st.sampled_from(ids))
        enabled = draw(st.booleans())
        entry["mig-enabled"] = enabled
        if enabled:
            devices = {}
            for _ in range(draw(st.integers(0, 3))):
                base = draw(st.sampled_from(names)) if names else "1g.10gb"
                key = draw(st.sampled_from([*_variants(base), "1g.99gb", "4c.3g.40gb"]))
                devices[key] = draw(st.integers(0, 4))
            if devices and not any(devices.values()):
                devices[next(iter(devices))] = 1
            entry["mig-devices"] = devices
        entries.append(entry)
    return gpus, {"version": "v1", "mig-configs": {"c": entries}}


def _canonical(devices: dict[str, int], gpu: GpuModel) -> dict[str, int]:
    """The names a plan's devices are read back under (catalog CI names), zero counts dropped."""
    out: dict[str, int] = {}
    for key, n in devices.items():
        resolved = gpu.resolve(parse_profile(key))
        if n and resolved is not None:
            out[resolved[1].name] = out.get(resolved[1].name, 0) + n
    return dict(sorted(out.items()))


BY_KEY = {g.key: g for g in MODELS}
# apply stops at the A30 (no 1g.10gb there): the H100 after it stays unconfigured although it equals the first
STOPS_MIDWAY = ([BY_KEY["H100-80GB"], BY_KEY["A30-24GB"], BY_KEY["H100-80GB"]],
                {"version": "v1", "mig-configs": {"c": [{"devices": "all", "mig-enabled": True,
                                                         "mig-devices": {"1g.10gb": 7}}]}})


@SETTINGS
@given(cases())
@example(STOPS_MIDWAY)
def test_validate_agrees_with_the_simulator(case: tuple[list[GpuModel], dict]) -> None:
    gpus, document = case
    spec = parse_spec_text(yaml.safe_dump(document, sort_keys=False), "p.yaml")
    report = validate_node(spec, "c", gpus, "node")

    parted = MigParted(nv.NvmlSimulator(gpus, "oracle"), gpu_outcomes=False)
    applied, asserted = parted.apply(spec, "c"), parted.assert_config(spec, "c")
    mp = report.mig_parted
    assert (mp["apply_result"]["exit_code"], mp["assert_result"]["exit_code"]) == \
        (applied.exit_code, asserted.exit_code)
    assert mp["apply_result"]["message"] == (applied.error or applied.stdout[-1])
    assert mp["apply"] == ("success" if applied.ok else "failure")
    assert mp["assert_result"]["reason"] == asserted.detail
    # every GPU's state after the apply is the oracle's, also where one GPU per board was simulated
    for plan in report.gpus:
        oracle = parted.nvml.gpus[plan.index]
        layout = Counter(ci for gi in parted.nvml.mig_layout(plan.index) for ci in gi["compute_instances"])
        if oracle.model.mig_capable:
            assert plan.after_apply == {"mig_enabled": oracle.mig_current == nv.NVML_DEVICE_MIG_ENABLE,
                                        "devices": dict(sorted(layout.items()))}, (document, plan.index)

    if not applied.ok:
        assert not report.valid, (document, applied.error)
    elif not asserted.ok:
        assert report.errors or report.warnings, (document, asserted.detail)
    if report.valid and not report.warnings:
        assert applied.ok and asserted.ok, (document, applied.error, asserted.detail)
    if report.valid:
        for plan, gpu in zip(report.gpus, gpus, strict=True):
            if plan.mig_enabled and gpu.mig_capable:
                assert plan.after_apply["devices"] == _canonical(plan.devices, gpu), (document, plan.index)
            elif plan.mig_enabled is False and gpu.mig_capable:
                assert plan.after_apply == {"mig_enabled": False, "devices": {}}
