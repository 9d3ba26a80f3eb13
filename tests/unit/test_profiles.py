"""Profile-name grammar and the "gb" formula (docs/reference/nvml.md#profile-names, #the-gb-number)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mig_conformance.gpus.profile_names import ProfileFormatError, lgip_gib, memory_gb, parse_profile


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


@pytest.mark.parametrize(("text", "error"), [
    ("", "profile is the empty string"),
    ("1g", "cannot parse fields of '1g': parsed wrong number of fields, expected 2 or 3"),
    ("1g.10", "cannot parse fields of '1g.10': missing 'gb' from '%dgb'"),
    ("1x.10gb", "cannot parse fields of '1x.10gb': missing 'g' from '%dg'"),
    ("g.10gb", "cannot parse fields of 'g.10gb': malformed number in '%dg'"),
    ("1g.1_0gb", "cannot parse fields of '1g.1_0gb': malformed number in '%dgb'"),
    ("1g.99999999999999999999gb", "cannot parse fields of '1g.99999999999999999999gb': malformed number in '%dgb'"),
    (" 1g.10gb", "cannot parse fields of ' 1g.10gb': leading or trailing spaces on '%dg'"),
    ("1g.10gb +me", "cannot parse fields of '1g.10gb +me': leading or trailing spaces on '%dgb'"),
    ("1c.2g.3g.10gb", "cannot parse fields of '1c.2g.3g.10gb': malformed number in '%dgb'"),  # SplitN(s, ".", 3)
    ("1g.10gb+", "cannot parse attributes of '1g.10gb+': empty attribute in list"),
    ("1g.10gb+me-x", "profile '1g.10gb+me-x' contains both '+/-' attributes"),
    ("1g.10gb+me,me", "cannot parse attributes of '1g.10gb+me,me': non unique attribute in list"),
    ("1g.10gb+1me", "cannot parse attributes of '1g.10gb+1me': attribute begins with a number"),
    ("1g.10gb+me.", "cannot parse attributes of '1g.10gb+me.': attribute begins/ends with a dot"),
    ("1g.10gb+m_e", "cannot parse attributes of '1g.10gb+m_e': non alpha-numeric character or digit in attribute"),
    ("1g.10gb+me+gfx", "cannot parse attributes of '1g.10gb+me+gfx': non alpha-numeric character or digit in "
                       "attribute"),
])
def test_parse_invalid_with_go_nvlib_text(text: str, error: str) -> None:
    with pytest.raises(ProfileFormatError) as exc:
        parse_profile(text)
    assert str(exc.value) == error


@pytest.mark.parametrize(("text", "c", "g", "gb", "name"), [
    ("4c.3g.40gb", 4, 3, 40, "4c.3g.40gb"),  # C > G: well-formed for go-nvlib, exists on no GPU
    ("0g.0gb", 0, 0, 0, "0g.0gb"),
    ("01g.010gb", 1, 1, 10, "1g.10gb"),  # strconv.Atoi takes leading zeros; String() drops them
    ("1c.1g.10gb", 1, 1, 10, "1g.10gb"),  # C == G prints the 2-field form
])
def test_parser_is_syntactic_like_go_nvlib(text: str, c: int, g: int, gb: int, name: str) -> None:
    p = parse_profile(text)
    assert (p.c, p.g, p.gb, p.name) == (c, g, gb, name)


@given(st.integers(0, 2**70), st.integers(0, 2**70), st.integers(0, 2**70),
       st.lists(st.sampled_from(["me", "gfx", "me.all", "x1"]), max_size=2, unique=True), st.booleans())
def test_names_round_trip_and_large_numbers_are_malformed(c: int, g: int, gb: int, attrs: list[str],
                                                          negative: bool) -> None:
    suffix = ("-" if negative else "+") + ",".join(attrs) if attrs else ""
    text = f"{c}c.{g}g.{gb}gb{suffix}"
    if max(c, g, gb) > 2**63 - 1:
        with pytest.raises(ProfileFormatError, match="malformed number"):
            parse_profile(text)
        return
    p = parse_profile(text)
    assert (p.c, p.g, p.gb, p.attributes, p.negative) == (c, g, gb, tuple(attrs), negative and bool(attrs))
    assert parse_profile(p.name).matches(p)


@given(st.text(max_size=20))
def test_any_text_parses_or_fails_with_a_go_nvlib_reason(text: str) -> None:
    try:
        parse_profile(text)
    except ProfileFormatError as exc:
        assert str(exc) == "profile is the empty string" or str(exc).startswith(
            ("cannot parse fields of", "cannot parse attributes of", f"profile '{text}' contains both"))


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
