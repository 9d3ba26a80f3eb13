"""Property tests: validate agrees with fit; arbitrary input never escapes as an uncaught exception."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mig_conformance.gpus.catalog import load_catalog
from mig_conformance.mig.placement import fit
from mig_conformance.mig.spec import parse_spec_text
from mig_conformance.validation import validate_node

CATALOG = load_catalog()
MIG_GPUS = sorted(g.key for g in CATALOG.mig_capable)


@st.composite
def gpu_and_devices(draw):
    gpu = CATALOG.get(draw(st.sampled_from(MIG_GPUS)))
    names = [p.name for p in gpu.gi_profiles] + [ci.name for p in gpu.gi_profiles for ci in p.compute_instances]
    counts = st.one_of(st.integers(1, 4), st.integers(5, 2**70))  # beyond int64 mig-parted rejects the file
    devices = draw(st.dictionaries(st.sampled_from(sorted(set(names))), counts, min_size=1, max_size=4))
    return gpu, devices


@settings(max_examples=150, deadline=None)
@given(gpu_and_devices())
def test_validate_agrees_with_fit(case) -> None:
    gpu, devices = case
    text = yaml.safe_dump({"version": "v1", "mig-configs": {"c": [
        {"devices": "all", "mig-enabled": True, "mig-devices": devices}]}})
    spec = parse_spec_text(text, "p.yaml")
    report = validate_node(spec, "c", [gpu])
    assert report.valid == fit(gpu, devices).fits
    if max(devices.values()) > 2**63 - 1:
        assert not spec.valid and "64-bit" in spec.problems[0].message


scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 9), st.integers(-(2**80), 2**80), st.floats(),
                    st.text(max_size=8),
                    st.sampled_from(["all", "v1", "1g.10gb", "3g.40gb", "0x233010DE", "mig-configs"]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.one_of(st.text(max_size=10), st.sampled_from(
        ["version", "mig-configs", "devices", "mig-enabled", "mig-devices", "device-filter"])), inner, max_size=4)),
    max_leaves=12)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values)
def test_arbitrary_documents_become_problems_not_exceptions(doc) -> None:
    spec = parse_spec_text(yaml.safe_dump(doc), "fuzz.yaml")
    for name in list(spec.configs)[:2]:
        validate_node(spec, name, [CATALOG.get("H100-80GB"), CATALOG.get("A10G-24GB")])
    assert all(p.location.file == "fuzz.yaml" for p in spec.problems)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_never_raises(text: str) -> None:
    spec = parse_spec_text(text, "t.yaml")
    assert isinstance(spec.problems, list)
