"""MIG profile names: parsing, formatting and the "gb" number, as go-nvlib defines them.

Grammar (go-nvlib `mig_profile.go`, see shared reference §9.1): `[<c>c.]<g>g.<gb>gb[(+|-)attr[,attr...]]`.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

_PROFILE = re.compile(r"^(?:(?P<c>\d+)c\.)?(?P<g>\d+)g\.(?P<gb>\d+)gb(?:(?P<sign>[+-])(?P<attrs>.+))?$")
_ATTR = re.compile(r"^[A-Za-z][A-Za-z0-9.]*$")


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
        base = f"{self.g}g.{self.gb}gb{self.suffix}"
        return base if self.c == self.g else f"{self.c}c.{base}"

    def __str__(self) -> str:
        return self.name

    def matches(self, other: ProfileName) -> bool:
        """Equal C, G, GB and attribute set (order-insensitive), as go-nvlib's Matches."""
        return (self.c, self.g, self.gb, self.negative, frozenset(self.attributes)) == (
            other.c, other.g, other.gb, other.negative, frozenset(other.attributes))


def parse_profile(text: str) -> ProfileName:
    """Parse a profile name, raising ProfileFormatError with go-nvlib-like reasons."""
    if not isinstance(text, str):
        raise ProfileFormatError(f"profile name must be a string, got {type(text).__name__}")
    return _parse_profile(text)


@functools.lru_cache(maxsize=4096)
def _parse_profile(text: str) -> ProfileName:
    """parse_profile for a string, memoized (a pure function; ProfileName is immutable)."""
    if " " in text:
        raise ProfileFormatError("profile name cannot contain spaces")
    m = _PROFILE.match(text)
    if not m:
        raise ProfileFormatError("expected [<c>c.]<g>g.<gb>gb[(+|-)attr[,attr...]]")
    g, gb = int(m["g"]), int(m["gb"])
    c = int(m["c"]) if m["c"] is not None else g
    if g == 0 or c == 0:
        raise ProfileFormatError("slice counts must be positive")
    if c > g:
        raise ProfileFormatError(f"compute slices ({c}) exceed GPU-instance slices ({g})")
    attrs: tuple[str, ...] = ()
    negative = False
    if m["sign"]:
        raw = m["attrs"]
        if "+" in raw or "-" in raw:
            raise ProfileFormatError("'+' and '-' attributes cannot be mixed")
        attrs = tuple(raw.split(","))
        for a in attrs:
            if not _ATTR.match(a) or a.endswith("."):
                raise ProfileFormatError(f"invalid attribute '{a}'")
        if len(set(attrs)) != len(attrs):
            raise ProfileFormatError("attributes must be unique")
        negative = m["sign"] == "-"
    return ProfileName(g=g, gb=gb, c=c, attributes=attrs, negative=negative)


def memory_gb(memory_mib: int, device_total_mib: int) -> int:
    """The "gb" number in a profile name (go-nvlib getMigMemorySizeGB, reference §9.2)."""
    total_bytes = device_total_mib * 2**20
    frac = math.ceil((memory_mib * 2**20 / total_bytes) * 8) / 8
    total_gb = math.ceil(total_bytes / 2**30)
    return int(Decimal(frac * total_gb).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def lgip_gib(memory_mib: int) -> str:
    """The Memory (GiB) column of `nvidia-smi mig -lgip`: MiB/1024 printed with %.2f (C rounding)."""
    return f"{memory_mib / 1024:.2f}"
