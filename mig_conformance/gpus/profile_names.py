"""MIG profile names: parsing, formatting and the "gb" number, as go-nvlib defines them.

Grammar (go-nvlib parseMigProfile, docs/reference/nvml.md#profile-names): `[<c>c.]<g>g.<gb>gb[(+|-)attr[,attr...]]`.
The parser is syntactic only, like go-nvlib's: `4c.3g.40gb` (C > G) and `0g.0gb` are well-formed names that simply
exist on no GPU. Error texts are go-nvlib's, e.g. "cannot parse fields of '1x.5gb': missing 'g' from '%dg'".
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

_INT64_MAX = 2**63 - 1
# Go's unicode.IsSpace, which strings.TrimSpace uses (Python's str.isspace also counts U+001C..U+001F).
_GO_SPACE = frozenset("\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
                      "\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
_ATTR_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.")


class ProfileFormatError(ValueError):
    """A string that is not a MIG profile name."""


@dataclass(frozen=True, order=True)
class ProfileName:
    """A parsed MIG profile name: compute slices C, GI slices G, memory GB, attributes."""

    g: int
    gb: int
    c: int
    attributes: tuple[str, ...] = ()
    negative: bool = False

    @property
    def is_compute_instance(self) -> bool:
        """True for a CI smaller than its GI (`1c.3g.40gb`)."""
        return self.c != self.g

    @property
    def gi_name(self) -> str:
        """The GPU-instance profile this CI lives in (`1c.3g.40gb` -> `3g.40gb`)."""
        return ProfileName(self.g, self.gb, self.g, self.attributes, self.negative).name

    @property
    def suffix(self) -> str:
        if not self.attributes:
            return ""
        return ("-" if self.negative else "+") + ",".join(self.attributes)

    @property
    def name(self) -> str:
        """go-nvlib's String(): `%dg.%dgb%s`, or `%dc.%dg.%dgb%s` when C != G (so `01g.5gb` prints `1g.5gb`)."""
        base = f"{self.g}g.{self.gb}gb{self.suffix}"
        return base if self.c == self.g else f"{self.c}c.{base}"

    def __str__(self) -> str:
        return self.name

    def matches(self, other: ProfileName) -> bool:
        """Equal C, G, GB and attribute set (order-insensitive), as go-nvlib's Matches."""
        return (self.c, self.g, self.gb, self.negative, frozenset(self.attributes)) == (
            other.c, other.g, other.gb, other.negative, frozenset(other.attributes))


def parse_profile(text: str) -> ProfileName:
    """Parse a profile name, raising ProfileFormatError with go-nvlib's error text."""
    if not isinstance(text, str):
        raise ProfileFormatError(f"profile name must be a string, got {type(text).__name__}")
    return _parse_profile(text)


def _go_trim_space(s: str) -> str:
    start, end = 0, len(s)
    while start < end and s[start] in _GO_SPACE:
        start += 1
    while end > start and s[end - 1] in _GO_SPACE:
        end -= 1
    return s[start:end]


def _atoi(s: str) -> int | None:
    """Go's strconv.Atoi on a field without sign (the '+'/'-' split comes first): ASCII digits, int64 range."""
    if not s or not all("0" <= ch <= "9" for ch in s):
        return None
    value = int(s)
    return value if value <= _INT64_MAX else None


def _field(s: str, unit: str) -> int:
    """go-nvlib parseMigProfileField."""
    if _go_trim_space(s) != s:
        raise ProfileFormatError(f"leading or trailing spaces on '%d{unit}'")
    if not s.endswith(unit):
        raise ProfileFormatError(f"missing '{unit}' from '%d{unit}'")
    value = _atoi(s[: -len(unit)])
    if value is None:
        raise ProfileFormatError(f"malformed number in '%d{unit}'")
    return value


def _fields(s: str) -> tuple[int, int, int]:
    """go-nvlib parseMigProfileFields: (C, G, GB) from `<c>c.<g>g.<gb>gb` or `<g>g.<gb>gb`."""
    parts = s.split(".", 2)
    if len(parts) == 3:
        return _field(parts[0], "c"), _field(parts[1], "g"), _field(parts[2], "gb")
    if len(parts) == 2:
        g = _field(parts[0], "g")
        return g, g, _field(parts[1], "gb")
    raise ProfileFormatError("parsed wrong number of fields, expected 2 or 3")


def _attributes(s: str) -> tuple[str, ...]:
    """go-nvlib parseMigProfileAttributes, checks in its order."""
    attrs = s.split(",")
    seen: set[str] = set()
    for a in attrs:
        if a in seen:
            raise ProfileFormatError("non unique attribute in list")
        if a == "":
            raise ProfileFormatError("empty attribute in list")
        if _go_trim_space(a) != a:
            raise ProfileFormatError("leading or trailing spaces in attribute")
        if "0" <= a[0] <= "9":
            raise ProfileFormatError("attribute begins with a number")
        if a[0] == "." or a[-1] == ".":
            raise ProfileFormatError("attribute begins/ends with a dot")
        if any(ch not in _ATTR_CHARS for ch in a):
            raise ProfileFormatError("non alpha-numeric character or digit in attribute")
        seen.add(a)
    return tuple(attrs)


@functools.lru_cache(maxsize=4096)
def _parse_profile(text: str) -> ProfileName:
    """go-nvlib parseMigProfile for a string, memoized (a pure function; ProfileName is immutable)."""
    if text == "":
        raise ProfileFormatError("profile is the empty string")
    plus, minus = text.split("+", 1), text.split("-", 1)
    if len(plus) == 2 and len(minus) == 2:
        raise ProfileFormatError(f"profile '{text}' contains both '+/-' attributes")
    split = plus if len(plus) == 2 else minus
    try:
        c, g, gb = _fields(split[0])
    except ProfileFormatError as exc:
        raise ProfileFormatError(f"cannot parse fields of '{text}': {exc}") from None
    if len(split) == 1:
        return ProfileName(g=g, gb=gb, c=c)
    try:
        attrs = _attributes(split[1])
    except ProfileFormatError as exc:
        raise ProfileFormatError(f"cannot parse attributes of '{text}': {exc}") from None
    return ProfileName(g=g, gb=gb, c=c, attributes=attrs, negative=len(minus) == 2)


def memory_gb(memory_mib: int, device_total_mib: int) -> int:
    """The "gb" number in a profile name (go-nvlib getMigMemorySizeGB, docs/reference/nvml.md#the-gb-number)."""
    total_bytes = device_total_mib * 2**20
    frac = math.ceil((memory_mib * 2**20 / total_bytes) * 8) / 8
    total_gb = math.ceil(total_bytes / 2**30)
    return int(Decimal(frac * total_gb).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def lgip_gib(memory_mib: int) -> str:
    """The Memory (GiB) column of `nvidia-smi mig -lgip`: MiB/1024 printed with %.2f (C rounding)."""
    return f"{memory_mib / 1024:.2f}"
