"""Placement engine: layouts, fit, CI packing and NVML's placement choice (docs/reference/profiles.md#placements)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mig_conformance.gpus.catalog import Catalog, GpuModel, load_catalog
from mig_conformance.gpus.profile_names import parse_profile
from mig_conformance.mig import placement
from mig_conformance.mig.placement import choose_placement, enumerate_layouts, fit, gi_instance_id, maximal_layouts

EIGHT_SLOT = ["A100-40GB", "A100-80GB", "H100-80GB", "H100-NVL-94GB", "GH200-96GB", "H200-141GB", "B200-180GB"]

# The 28 maximal layouts of docs/reference/profiles.md#combinations (derived independently), in short names:
# 1g = 1_SLICE, 1g.2x = 1_SLICE_REV2, 2g, 3g, 4g, 7g.
REFERENCE_MAXIMAL = """
7g | 4g + 3g | 4g + 2g + 1g.2x | 4g + 2g + 1g | 4g + 2x1g.2x | 4g + 1g.2x + 2x1g | 4g + 3x1g | 2x3g
3g + 2x2g | 3g + 2g + 1g.2x | 3g + 2g + 2x1g | 3g + 2x1g.2x | 3g + 1g.2x + 2x1g | 3g + 4x1g | 3x2g + 1g.2x
3x2g + 1g | 2x2g + 2x1g.2x | 2x2g + 1g.2x + 2x1g | 2x2g + 3x1g | 2g + 3x1g.2x | 2g + 2x1g.2x + 2x1g
2g + 1g.2x + 4x1g | 2g + 5x1g | 4x1g.2x | 3x1g.2x + 2x1g | 2x1g.2x + 4x1g | 1g.2x + 6x1g | 7x1g
"""


def _short(gpu: GpuModel, name: str) -> str:
    p = gpu.profile(name)
    assert p is not None
    return {0: "1g", 9: "1g.2x", 1: "2g", 2: "3g", 3: "4g", 4: "7g"}[p.nvml_index]


def _reference_sets() -> set[frozenset[tuple[str, int]]]:
    out = set()
    for item in REFERENCE_MAXIMAL.replace("\n", "|").split("|"):
        if not item.strip():
            continue
        counts: dict[str, int] = {}
        for part in item.split("+"):
            part = part.strip()
            n, _, name = part.partition("x") if part[0].isdigit() and "x" in part[:2] else ("1", "", part)
            counts[name] = counts.get(name, 0) + int(n)
        out.add(frozenset(counts.items()))
    return out


@pytest.mark.parametrize("key", EIGHT_SLOT)
def test_eight_slot_layout_counts(catalog: Catalog, key: str) -> None:
    gpu = catalog.get(key)
    layouts = enumerate_layouts(gpu)
    assert len(layouts) == 127
    base = [p for p in gpu.gi_profiles if not p.parsed.attributes]
    assert len(enumerate_layouts(gpu, base)) == 77


@pytest.mark.parametrize("key", EIGHT_SLOT)
def test_maximal_layouts_equal_reference(catalog: Catalog, key: str) -> None:
    gpu = catalog.get(key)
    base = [p for p in gpu.gi_profiles if not p.parsed.attributes]
    maximal = maximal_layouts(gpu, enumerate_layouts(gpu, base))
    got = {frozenset((_short(gpu, n), c) for n, c in lay.devices.items()) for lay in maximal}
    assert got == _reference_sets()


def test_a30_layout_counts(catalog: Catalog) -> None:
    gpu = catalog.get("A30-24GB")
    assert len(enumerate_layouts(gpu)) == 21
    assert len(enumerate_layouts(gpu, [p for p in gpu.gi_profiles if not p.parsed.attributes])) == 9


def test_every_layout_is_accepted_by_fit_with_a_valid_placement(catalog: Catalog) -> None:
    for gpu in catalog.mig_capable:
        for lay in enumerate_layouts(gpu):
            result = fit(gpu, lay.devices)
            assert result.fits, (gpu.key, lay.devices, result.reason)
            occupied = 0
            for gi in result.placement:
                profile = gpu.profile(gi.profile)
                assert profile is not None and gi.start in profile.placement_starts
                mask = profile.mask(gi.start)
                assert not mask & occupied
                occupied |= mask


def test_fit_rejects_everything_outside_the_enumeration(catalog: Catalog) -> None:
    gpu = catalog.get("H100-80GB")
    layouts = {frozenset(lay.devices.items()) for lay in enumerate_layouts(gpu)}
    for lay in enumerate_layouts(gpu):
        for p in gpu.gi_profiles:
            bigger = dict(lay.devices)
            bigger[p.name] = bigger.get(p.name, 0) + 1
            assert fit(gpu, bigger).fits == (frozenset(bigger.items()) in layouts)


@pytest.mark.parametrize(("devices", "reason"), [
    ({"1g.10gb": 8}, "exceeds the maximum of 7"),
    ({"1g.10gb+me": 2}, "exceeds the maximum of 1"),
    ({"4g.40gb": 1, "3g.40gb": 2}, "compute slices"),
    ({"3g.40gb": 1, "4g.40gb": 1, "1g.10gb": 1}, "compute slices"),
    ({"4g.40gb": 1, "1g.20gb": 3}, "no non-overlapping placement"),
    ({"1g.5gb": 1}, "does not exist on H100-80GB"),
    ({"3g.40gb": -1}, "negative"),
    ({"3x.40gb": 1}, "invalid format"),
])
def test_fit_reasons(catalog: Catalog, devices: dict[str, int], reason: str) -> None:
    result = fit(catalog.get("H100-80GB"), devices)
    assert not result.fits and reason in (result.reason or "")


def test_fit_not_mig_capable(catalog: Catalog) -> None:
    assert "not MIG capable" in (fit(catalog.get("A10G-24GB"), {"1g.5gb": 1}).reason or "")


def test_compute_instances_are_packed_like_mig_parted(catalog: Catalog) -> None:
    gpu = catalog.get("H100-80GB")
    one_gi = fit(gpu, {"1c.3g.40gb": 3})
    assert one_gi.fits and [g.compute_instances for g in one_gi.placement] == [("1c.3g.40gb",) * 3]
    two_gis = fit(gpu, {"1c.3g.40gb": 4})
    assert sorted(len(g.compute_instances) for g in two_gis.placement) == [1, 3]
    assert len(fit(gpu, {"3g.40gb": 2}).placement) == 2
    mixed = fit(gpu, {"2c.3g.40gb": 1, "1c.3g.40gb": 1})
    assert [g.compute_instances for g in mixed.placement] == [("2c.3g.40gb", "1c.3g.40gb")]
    assert not fit(gpu, {"1c.7g.80gb": 8}).fits


def test_me_all_profiles_only_coexist_with_no_me(catalog: Catalog) -> None:
    gpu = catalog.get("RTXPRO6000-96GB")
    assert fit(gpu, {"1g.24gb+me.all": 1, "1g.24gb-me": 3}).fits
    bad = fit(gpu, {"1g.24gb+me.all": 1, "1g.24gb": 1})
    assert not bad.fits and "cannot share a GPU" in (bad.reason or "")


def _create_sequence(gpu: GpuModel, ids: list[int]) -> list[tuple[int, int] | None]:
    occupied, out = 0, []
    for pid in ids:
        profile = gpu.profile_by_id(pid)
        assert profile is not None
        start = choose_placement(gpu, profile, occupied)
        if start is None:
            out.append(None)
            break
        occupied |= profile.mask(start)
        out.append((gi_instance_id(gpu, start, profile.placement_size), start))
    return out


@pytest.mark.parametrize(("key", "ids", "expected"), [
    # MIG User Guide (v580) getting-started examples on A100-40GB, docs/reference/nvml.md#gi-ids-and-placement-choice.
    ("A100-40GB", [9, 19, 14, 19], [(2, 4), (7, 0), (4, 2), (8, 1)]),
    ("A100-40GB", [14, 19, 19, 19, 19, 19], [(5, 4), (13, 6), (7, 0), (8, 1), (9, 2), (10, 3)]),
    ("A100-40GB", [19, 19, 14, 9], [None]),  # "profile ID 9 must be specified first"
    ("A30-24GB", [14, 14, 5], [(3, 0), (4, 1), (2, 2)]),
    ("RTXPRO6000-96GB", [14, 14, 14, 14], [(3, 0), (4, 3), (5, 6), (6, 9)]),
    ("RTXPRO6000-96GB", [5, 14, 14], [(1, 0), (5, 6), (6, 9)]),
])
def test_nvml_placement_choice_reproduces_observed_sequences(catalog: Catalog, key: str, ids: list[int],
                                                             expected: list) -> None:
    got = _create_sequence(catalog.get(key), ids)
    if expected == [None]:
        assert got[-1] is None and len(got) == len(ids)
    else:
        assert got == expected


MIG_MODELS = sorted(load_catalog().mig_capable, key=lambda g: g.key)


@st.composite
def _requests(draw: st.DrawFn) -> tuple[GpuModel, dict[str, int]]:
    model = draw(st.sampled_from(MIG_MODELS))
    names = sorted({ci.name for p in model.gi_profiles for ci in p.compute_instances})
    chosen = draw(st.lists(st.sampled_from(names), min_size=1, max_size=4, unique=True))
    return model, {n: draw(st.integers(0, 9)) for n in chosen}


@settings(max_examples=300, deadline=None, derandomize=True)
@given(_requests())
def test_early_count_check_keeps_fits_verdict(request_: tuple[GpuModel, dict[str, int]]) -> None:
    """fit() checks counts before expanding one entry per device; that must not change its answer, and for
    whole-GI devices (no CI smaller than its GI) not even its reason."""
    model, devices = request_
    early = fit(model, devices)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(placement, "check_counts", lambda *_: None)
        late = fit(model, devices)
    assert early.fits == late.fits
    whole = all(not parse_profile(n).is_compute_instance for n in devices)
    if whole:
        assert early.reason == late.reason


@given(st.integers(8, 2**100))
def test_huge_counts_fail_on_counts_alone(n: int) -> None:
    h100 = load_catalog().get("H100-80GB")
    assert fit(h100, {"1g.10gb": n}).reason == \
        f"{n} x 1g.10gb exceeds the maximum of 7 instances of 1g.10gb on H100-80GB"
    assert "need at least" in fit(h100, {"1c.3g.40gb": n}).reason
