"""sigs.k8s.io/yaml + encoding/json as mig-parted's parser sees YAML values (type errors, numbers)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mig_conformance.mig import gojson


@pytest.mark.parametrize(("value", "text"), [
    (5, "5"), (-3, "-3"), (2**63, "9223372036854775808"), (2**64 - 1, "18446744073709551615"),
    (2**64, "18446744073709552000"),  # float64 beyond uint64: the shortest digits, in %f form
    (99999999999999999999, "100000000000000000000"),
    (10**21, "1e+21"), (1.5, "1.5"), (1.0, "1"), (-0.0, "-0"), (1e-5, "0.00001"), (1e-7, "1e-7"),
    (10**400, None),  # beyond float64: yaml.v2 keeps the text as a string
])
def test_json_number(value: int | float, text: str | None) -> None:
    assert gojson.json_number(value) == text


@pytest.mark.parametrize(("value", "result"), [(None, 0), (7, 7), (1.0, 1), (-0.0, 0), (2**63 - 1, 2**63 - 1),
                                               (-(2**63), -(2**63))])
def test_decode_int(value: object, result: int) -> None:
    assert gojson.decode_int(value) == result


@pytest.mark.parametrize(("value", "error"), [
    (2**63, "json: cannot unmarshal number 9223372036854775808 into Go value of type int"),
    (99999999999999999999, "json: cannot unmarshal number 100000000000000000000 into Go value of type int"),
    (-(2**63) - 1, "json: cannot unmarshal number -9223372036854776000 into Go value of type int"),
    (1.5, "json: cannot unmarshal number 1.5 into Go value of type int"),
    (True, "json: cannot unmarshal bool into Go value of type int"),
    ("7", "json: cannot unmarshal string into Go value of type int"),
    ([7], "json: cannot unmarshal array into Go value of type int"),
    ({"a": 1}, "json: cannot unmarshal object into Go value of type int"),
    (10**400, "json: cannot unmarshal string into Go value of type int"),
])
def test_decode_int_errors(value: object, error: str) -> None:
    with pytest.raises(gojson.GoTypeError) as exc:
        gojson.decode_int(value)
    assert str(exc.value) == error


@given(st.integers(-(2**80), 2**80))
def test_large_integers(value: int) -> None:
    if -(2**63) <= value <= 2**63 - 1:
        assert gojson.decode_int(value) == value
    else:
        number = r"-?\d+(\.\d+)?(e\+\d+)?"
        with pytest.raises(gojson.GoTypeError, match=rf"^json: cannot unmarshal number {number} into Go value"):
            gojson.decode_int(value)


def test_lists_strings_bools_and_keys() -> None:
    assert gojson.decode_list([0, None, 2], "int") == [0, 0, 2]
    with pytest.raises(gojson.GoTypeError, match="cannot unmarshal number into Go value of type string"):
        gojson.decode_list(["0x2330", 5], "string")
    assert gojson.decode_str(None) == "" and gojson.decode_bool(None) is False
    with pytest.raises(gojson.GoTypeError, match="cannot unmarshal string into Go value of type bool"):
        gojson.decode_bool("yes please")
    assert [gojson.map_key(k) for k in (1, True, "x", 1.5)] == ["1", "true", "x", "1.5"]
