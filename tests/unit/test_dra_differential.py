"""Dynamic MIG: the kit's model of the scheduler's allocator on the driver's partitionable devices agrees with the
placement engine on random profile multisets (the bounded CI version; the real scheduler's is in
tests/control_plane/test_dra_dynamic_local.py and benchmarks/dra_dynamic_differential.py)."""

from __future__ import annotations

import random

import pytest

from mig_conformance.gpus.catalog import load_catalog
from mig_conformance.k8s import dra_differential as DD

CAT = load_catalog()
#: 8-slot families whose catalog rows are complete (B200's 3g/4g/7g rows are unpublished: docs/dra.md)
FAMILIES = ("A100-40GB", "A100-80GB", "H100-80GB", "H100-NVL-94GB", "H200-141GB", "GH200-96GB")


@pytest.mark.parametrize("key", FAMILIES)
def test_kit_allocator_agrees_with_placement(key: str) -> None:
    gpu = CAT.get(key)
    rng = random.Random(f"dra-{key}")
    alloc = DD.KitAllocator(gpu)
    outcomes = set()
    for _ in range(12):
        case = DD.random_case(gpu, rng, max_devices=5)
        got = alloc.allocates(case)
        outcomes.add(got)
        assert DD.compare(gpu, case, got) is None, (case, got)
    assert outcomes == {True, False}  # the cases reach both answers


def test_known_disagreement_a30_media_extensions() -> None:
    """A30 has one OFA engine: DRA's ofa-engines counter lets one +me partition exist, the placement engine allows
    1g.6gb+me and 2g.12gb+me together. Recorded (docs/dra.md) until a real A30 says which is right."""
    a30 = CAT.get("A30-24GB")
    d = DD.compare(a30, {"1g.6gb+me": 1, "2g.12gb+me": 1}, DD.KitAllocator(a30).allocates(
        {"1g.6gb+me": 1, "2g.12gb+me": 1}))
    assert d is not None and d.placement and not d.scheduler


@pytest.mark.slow
@pytest.mark.parametrize("key", FAMILIES)
def test_kit_allocator_agrees_with_placement_more(key: str) -> None:
    gpu = CAT.get(key)
    rng = random.Random(f"dra-more-{key}")
    alloc = DD.KitAllocator(gpu)
    bad = [d.as_dict() for d in (DD.compare(gpu, c, alloc.allocates(c))
                                 for c in (DD.random_case(gpu, rng) for _ in range(80))) if d]
    assert not bad
