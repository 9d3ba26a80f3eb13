"""Profile-name grammar and the "gb" formula (reference §9)."""

from __future__ import annotations

import pytest

from mig_conformance.profiles import ProfileFormatError, lgip_gib, memory_gb, parse_profile


@pytest.mark.parametrize(("text", "c", "g", "gb", "attrs", "neg"), [
    ("1g.10gb", 1, 1, 10, (), False),
    ("1c.3g.40gb", 1, 3, 40, (), False),
    ("1g.10gb+me", 1, 1, 10, ("me",), False),
    ("1g.24gb+me.all", 1, 1, 24, ("me.all",), False),
    ("2g.48gb-me", 2, 2, 48, ("me",), True),
    ("7g.80gb", 7, 7, 80, (), False),
])
def test_parse_valid(text: str, c: int, g: int, gb: int, attrs: tuple, neg: bool) -> None:
    p = parse_profile(text)
    assert (p.c, p.g, p.gb, p.attributes, p.negative) == (c, g, gb, attrs, neg)
    assert p.name == text


@pytest.mark.parametrize("text", ["", "1g", "1g.10", "g.10gb", "4c.3g.40gb", "1g.10gb+", "1g.10gb+me-x",
                                  "1g.10gb+me,me", "1g.10gb+1me", "1g.10gb+me.", "0g.1gb", "1g.10gb +me"])
def test_parse_invalid(text: str) -> None:
    with pytest.raises(ProfileFormatError):
        parse_profile(text)


def test_ci_name_and_gi_name() -> None:
    p = parse_profile("2c.7g.80gb")
    assert p.is_compute_instance and p.gi_name == "7g.80gb"
    assert not parse_profile("3g.40gb").is_compute_instance


def test_attribute_order_is_ignored_by_matches() -> None:
    assert parse_profile("1g.24gb+me,gfx").matches(parse_profile("1g.24gb+gfx,me"))
    assert not parse_profile("1g.24gb+me").matches(parse_profile("1g.24gb-me"))


@pytest.mark.parametrize(("mib", "total", "gb"), [
    (9984, 81559, 10), (20096, 81559, 20), (40448, 81559, 40), (81152, 81559, 80),  # H100 80GB HBM3
    (16384, 143771, 18), (33280, 143771, 35), (71424, 143771, 71), (143360, 143771, 141),  # H200
    (5952, 24576, 6), (11968, 24576, 12), (24192, 97887, 24),  # A30, RTX PRO 6000
])
def test_memory_gb_reproduces_driver_names(mib: int, total: int, gb: int) -> None:
    assert memory_gb(mib, total) == gb


@pytest.mark.parametrize(("mib", "text"), [(20096, "19.62"), (47488, "46.38"), (95360, "93.12"),
                                           (5952, "5.81"), (9984, "9.75"), (143360, "140.00")])
def test_lgip_gib_rounding(mib: int, text: str) -> None:
    assert lgip_gib(mib) == text
