"""How mig-parted's parser sees a YAML value: sigs.k8s.io/yaml turns YAML into JSON (go.yaml.in/yaml/v2 types,
then json.Marshal) and encoding/json decodes that into Go types. Used for mig-parted's exact error texts.

Facts (mig-parted `api/spec/v1/spec.go`, vendored sigs.k8s.io/yaml v1.6.0 `yaml.go`, Go encoding/json) [DERIVED]:
* yaml.v2 resolves a plain integer to int64 if it fits, else uint64, else float64; json.Marshal prints a float64
  in %f form below 1e21 and in %e form above (`1e+21`).
* Decoding a JSON value into a Go type it does not fit gives `json: cannot unmarshal <kind> into Go value of type
  <type>`, where kind is `string`, `bool`, `array`, `object`, `number`, or `number <literal>` for a number that
  an int cannot hold (`number 1.5`, `number 9223372036854775808`).
* JSON `null` into a bool, int or string leaves the zero value and is no error.
"""

from __future__ import annotations

import datetime
import json
import math
from decimal import Decimal
from typing import Any

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
UINT64_MAX = 2**64 - 1


class GoTypeError(ValueError):
    """A value that encoding/json would not decode into the Go type; str() is Go's error text."""


def type_error(kind: str, go_type: str) -> GoTypeError:
    return GoTypeError(f"json: cannot unmarshal {kind} into Go value of type {go_type}")


def _float_text(value: float) -> str:
    """json.Marshal of a float64 (strconv 'f' or 'e' with the shortest digits)."""
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    text = repr(value)
    if 1e-6 <= abs(value) < 1e21:
        fixed = format(Decimal(text), "f")
        return fixed.rstrip("0").rstrip(".") if "." in fixed else fixed
    mantissa, _, exponent = text.partition("e")
    sign, digits = exponent[0], exponent[1:].lstrip("0") or "0"
    if sign == "-" and len(digits) == 1:  # Go's encoder turns e-07 into e-7, keeps e+21
        return f"{mantissa}e-{digits}"
    return f"{mantissa}e{sign}{digits.zfill(2)}"


def json_number(value: int | float) -> str | None:
    """The JSON text of a YAML number after sigs.k8s.io/yaml, or None when yaml.v2 would keep it as a string
    (a float beyond float64's range)."""
    if isinstance(value, int) and INT64_MIN <= value <= UINT64_MAX:
        return str(value)
    try:
        as_float = float(value)
    except OverflowError:
        return None
    if math.isinf(as_float) or math.isnan(as_float):
        return None
    return _float_text(as_float)


def kind(value: Any) -> str:
    """The JSON kind encoding/json names in a type error (`number 1.5` is only used for ints, see decode_int)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number" if json_number(value) is not None else "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict | set):
        return "object"
    return "string"  # str, and what yaml.v2 keeps as text (timestamps, !!binary)


def decode_int(value: Any) -> int:
    """encoding/json into a Go int (int64): null is 0, integral numbers in range decode, the rest is an error."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise type_error(kind(value), "int")
    text = json_number(value)
    if text is None:
        raise type_error("string", "int")
    if text.lstrip("-").isdigit() and INT64_MIN <= int(text) <= INT64_MAX:
        return int(text)
    raise type_error(f"number {text}", "int")


def decode_str(value: Any) -> str:
    """encoding/json into a Go string: null is "", only JSON strings decode."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, datetime.date | bytes):
        return str(value)
    raise type_error(kind(value), "string")


def decode_bool(value: Any) -> bool:
    """encoding/json into a Go bool: null is false."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    raise type_error(kind(value), "bool")


def decode_list(value: Any, element: str) -> list[Any]:
    """encoding/json into []int or []string (`element`): null is an empty list; the first bad element's error."""
    go_type = f"[]{element}"
    if value is None:
        return []
    if not isinstance(value, list):
        raise type_error(kind(value), go_type)
    decode = decode_int if element == "int" else decode_str
    out, first_error = [], None
    for item in value:
        try:
            out.append(decode(item))
        except GoTypeError as exc:
            first_error = first_error or exc
    if first_error is not None:
        raise first_error
    return out


def map_key(key: Any) -> str:
    """The JSON object key sigs.k8s.io/yaml makes of a YAML mapping key (strings, ints, floats, bools)."""
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, float):
        text = repr(key)
        return {"inf": ".inf", "-inf": "-.inf", "nan": ".nan"}.get(text, text)
    return str(key)


def go_syntax(value: Any, top: bool = True) -> str:
    """Go's `%+#v` of a value yaml.v2 decoded into interface{} (for sigs.k8s.io/yaml's error texts) [DERIVED]:
    maps print their keys sorted, a nil inside a composite is `interface {}(nil)`, at the top `<nil>`."""
    if value is None:
        return "<nil>" if top else "interface {}(nil)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json_number(value) or repr(value)
    if isinstance(value, list):
        return "[]interface {}{" + ", ".join(go_syntax(v, False) for v in value) + "}"
    if isinstance(value, dict):
        items = sorted(((go_syntax(k, False), go_syntax(v, False)) for k, v in value.items()))
        return "map[interface {}]interface {}{" + ", ".join(f"{k}:{v}" for k, v in items) + "}"
    return json.dumps(str(value), ensure_ascii=False)


def null_key_error(value: Any) -> str:
    """sigs.k8s.io/yaml's error for a null mapping key (v1.6.0 yaml.go, convertToJSONableObject: keys may be strings,
    numbers or bools; `reflect.TypeOf(nil)` prints as `%!s(<nil>)`)."""
    return f"unsupported map key of type: %!s(<nil>), key: <nil>, value: {go_syntax(value)}"
