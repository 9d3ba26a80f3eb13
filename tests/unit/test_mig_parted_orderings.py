"""The ordering walk of the mig-parted simulator (iteratePermutationsUntilSuccess): mig-parted's order of
permutations, pruning that changes nothing observable, and bounds for counts no GPU can hold."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mig_conformance.gpus.catalog import GpuModel, load_catalog
from mig_conformance.simulators import mig_parted as mp
from mig_conformance.simulators import nvml as nv
from mig_conformance.simulators.mig_parted import MigParted, MigPartedFailure, spec_for

CATALOG = load_catalog()
MODELS = sorted(CATALOG.mig_capable, key=lambda g: g.key)
ALL_ORDERINGS = "error attempting multiple config orderings: all orderings failed"


def reference_orderings(items: list) -> list[list]:
    """mig-parted's recursive walk, transcribed from docs/reference/mig-parted.md#apply, as the oracle."""
    out: list[list] = []

    def iterate(i: int) -> None:
        if i >= len(items):
            out.append(list(items))
            return
        for j in range(i, len(items)):
            if all(items[k] is not items[j] for k in range(i, j)):
                items[i], items[j] = items[j], items[i]
                iterate(i + 1)
                items[i], items[j] = items[j], items[i]

    iterate(0)
    return out


def _items(pattern: str) -> list:
    """One shared object per letter, as Flatten shares one entry per key."""
    objects = {c: mp._Item(c, None) for c in pattern}  # type: ignore[arg-type]
    return [objects[c] for c in pattern]


@pytest.mark.parametrize("pattern", ["a", "ab", "aab", "abc", "aabb", "aaabbc", "abcd", "aaaa", "abacab"])
def test_walk_order_is_mig_parteds(pattern: str) -> None:
    seen: list[str] = []

    def attempt(items) -> None:
        seen.append("".join(it.key for it in items))
        raise MigPartedFailure("nope")

    parted = MigParted(nv.NvmlSimulator([CATALOG.get("H100-80GB")], "walk"))
    with pytest.raises(MigPartedFailure, match="all orderings failed"):
        parted._iterate_orderings(0, _items(pattern), attempt)
    expected = ["".join(it.key for it in o) for o in reference_orderings(_items(pattern))]
    assert seen == expected
    counts = [pattern.count(c) for c in set(pattern)]
    assert len(seen) == mp._permutations(counts) == len(set(seen))


def test_walk_stops_at_the_first_success() -> None:
    seen: list[str] = []

    def attempt(items) -> None:
        seen.append("".join(it.key for it in items))
        if seen[-1] == "bca":
            return
        raise MigPartedFailure("nope")

    parted = MigParted(nv.NvmlSimulator([CATALOG.get("H100-80GB")], "walk"))
    parted._iterate_orderings(0, _items("abc"), attempt)
    assert seen == ["abc", "acb", "bac", "bca"]


def _run(model: GpuModel, devices: dict[str, int], prune: bool):
    parted = MigParted(nv.NvmlSimulator([model], "prune"))
    parted.prune_orderings = prune
    res = parted.apply(spec_for(devices))
    return res, parted.nvml.mig_layout(0)


@st.composite
def requests(draw: st.DrawFn) -> tuple[GpuModel, dict[str, int]]:
    model = draw(st.sampled_from(MODELS))
    names = sorted({ci.name for p in model.gi_profiles for ci in p.compute_instances})
    chosen = draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True))
    return model, {n: draw(st.integers(1, 3)) for n in chosen}


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_pruning_changes_nothing_observable(request_: tuple[GpuModel, dict[str, int]]) -> None:
    model, devices = request_
    pruned, layout = _run(model, devices, True)
    full, full_layout = _run(model, devices, False)
    assert (pruned.exit_code, pruned.error, pruned.gpus[0].orderings_tried) == \
        (full.exit_code, full.error, full.gpus[0].orderings_tried)
    assert pruned.messages("error") == full.messages("error")
    assert layout == full_layout


def test_many_devices_do_not_recurse_or_hang() -> None:
    """Counts no GPU can hold are refused after one ordering, not walked (the time they take:
    benchmarks/bench_mig_parted.py)."""
    h100 = CATALOG.get("H100-80GB")
    for devices in ({"1g.10gb": 1500}, {"1g.10gb": 3_000_000}, {"1g.10gb": 2**63 - 1},
                    {n: 40 for n in ("1g.10gb", "2g.20gb", "1c.3g.40gb", "1c.7g.80gb")}):
        res, layout = _run(h100, devices, True)
        assert not res.ok and res.error.endswith(ALL_ORDERINGS) and layout == []
        assert res.gpus[0].orderings_tried == 1
        assert res.messages("error")[0].startswith("Error creating")  # the first ordering did run
        assert "do not fit in the GPU's 7 compute slices in any order" in res.messages("warning")[0]


def test_a_request_at_capacity_is_walked_in_full() -> None:
    res, _ = _run(CATALOG.get("H100-80GB"), {"1g.10gb": 4, "2g.20gb": 3}, True)  # 7 devices, 10 slices
    assert not res.ok and res.gpus[0].orderings_tried == math.comb(7, 3)
    assert len(res.messages("error")) == math.comb(7, 3) and not res.messages("warning")


@pytest.mark.parametrize(("pattern", "fail_at"), [("a" * 500 + "b" * 500, 5), ("aabbcc" * 50, 3), ("abcd", 0)])
def test_pruned_orderings_are_counted_exactly(pattern: str, fail_at: int) -> None:
    """An attempt that fails at a position stands for every later ordering sharing that prefix."""
    progress = mp._Attempt()
    ran: list[str] = []

    def attempt(items) -> None:
        ran.append("".join(it.key for it in items[: fail_at + 1]))
        progress.position, progress.clean = fail_at, True
        raise MigPartedFailure("no room")

    parted = MigParted(nv.NvmlSimulator([CATALOG.get("H100-80GB")], "walk"))
    with pytest.raises(MigPartedFailure, match="all orderings failed"):
        parted._iterate_orderings(0, _items(pattern), attempt, progress)
    assert parted._orderings[0] == mp._permutations(pattern.count(c) for c in set(pattern))
    assert len(ran) == len(set(ran))  # each distinct prefix ran once
    assert len(parted._result.messages("error")) == min(parted._orderings[0], mp.MAX_LOGGED_FAILURES)


def test_walk_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mp, "MAX_ORDERINGS", 3)
    res, layout = _run(CATALOG.get("H100-80GB"), {"4g.40gb": 1, "3g.40gb": 1, "1g.10gb": 1}, False)
    assert not res.ok and res.error.endswith(ALL_ORDERINGS) and layout == []
    assert res.gpus[0].orderings_tried == 3
    assert "Simulator: stopped after 3 of the orderings of 3 MIG devices" in res.messages("warning")[0]
