"""PCI device IDs as mig-parted's `device-filter` uses them (`0xDDDDVVVV[:0xSSSSVVVV]`)."""

from __future__ import annotations

import functools
from dataclasses import dataclass


@dataclass(frozen=True)
class DeviceID:
    """Device+vendor, optionally with subsystem device+vendor."""

    device: int
    vendor: int
    subsystem_device: int | None = None
    subsystem_vendor: int | None = None

    @classmethod
    @functools.lru_cache(maxsize=1024)
    def parse(cls, text: str) -> DeviceID:
        """types.NewDeviceIDFromString: `<devicevendor>[:<subdevicevendor>]`, each part parsed by Go's
        strconv.ParseUint(s, 0, 32) (docs/reference/mig-parted.md#device-filters); ValueError if mig-parted rejects it.

        Memoized: a pure function of the text (device filters are parsed for every GPU of every walk).
        """
        parts = str(text).split(":")
        if len(parts) > 2:
            raise ValueError(f"invalid DeviceID format '{text}': expected '<devicevendor>' or "
                             "'<devicevendor>:<subdevicevendor>'")
        p = parse_uint32(parts[0])
        if len(parts) == 1:
            return cls(p >> 16, p & 0xFFFF)
        s = parse_uint32(parts[1])
        return cls(p >> 16, p & 0xFFFF, s >> 16, s & 0xFFFF)

    @classmethod
    def from_int(cls, value: int) -> DeviceID:
        return cls(value >> 16, value & 0xFFFF)

    @property
    def primary(self) -> DeviceID:
        return DeviceID(self.device, self.vendor)

    def matches(self, other: DeviceID) -> bool:
        """Filter semantics: without a subsystem compare device+vendor, with one compare all four."""
        if (self.device, self.vendor) != (other.device, other.vendor):
            return False
        if self.subsystem_device is None:
            return True
        return (self.subsystem_device, self.subsystem_vendor) == (other.subsystem_device, other.subsystem_vendor)

    def __str__(self) -> str:
        base = f"0x{self.device:04X}{self.vendor:04X}"
        if self.subsystem_device is None:
            return base
        return f"{base}:0x{self.subsystem_device:04X}{self.subsystem_vendor:04X}"


_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def parse_uint32(text: str) -> int:
    """Go's strconv.ParseUint(text, 0, 32): `0x`/`0o`/`0b` prefixes, a leading `0` means octal, `_` separators as
    in Go literals; no sign and no whitespace. ValueError otherwise."""
    s0 = s = text
    if not s:
        raise ValueError(f"invalid syntax: {text!r}")
    base = 10
    if s[0] == "0":
        prefix = s[1:2].lower()
        if len(s) >= 3 and prefix in ("b", "o", "x"):
            base, s = {"b": 2, "o": 8, "x": 16}[prefix], s[2:]
        else:
            base, s = 8, s[1:]
    value, underscores = 0, False
    for ch in s:
        if ch == "_":
            underscores = True
            continue
        digit = _DIGITS.find(ch.lower()) if ch.isascii() else -1
        if not 0 <= digit < base:
            raise ValueError(f"invalid syntax: {text!r}")
        value = value * base + digit
    if underscores and not _underscore_ok(s0):
        raise ValueError(f"invalid syntax: {text!r}")
    if value > 0xFFFFFFFF:
        raise ValueError(f"value out of range: {text!r}")
    return value


def _underscore_ok(s: str) -> bool:
    """Go's strconv.underscoreOK: underscores only between digits, or between a base prefix and a digit."""
    saw, i = "^", 0
    hexa = False
    if len(s) >= 2 and s[0] == "0" and s[1].lower() in "box":
        i, saw, hexa = 2, "0", s[1].lower() == "x"
    for ch in s[i:]:
        if (ch.isdigit() and ch.isascii()) or (hexa and ch.lower() in "abcdef"):
            saw = "0"
            continue
        if ch == "_":
            if saw != "0":
                return False
            saw = "_"
            continue
        if saw == "_":
            return False
        saw = "!"
    return saw != "_"
