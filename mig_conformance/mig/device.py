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
        """Parse like Go's strconv.ParseUint(s, 0, 32): 0x, 0o, 0b prefixes or decimal; ValueError if bad.

        Memoized: a pure function of the text (device filters are parsed for every GPU of every walk).
        """
        primary, _, subsystem = str(text).partition(":")
        p = _parse_u32(primary)
        if not subsystem:
            return cls(p >> 16, p & 0xFFFF)
        s = _parse_u32(subsystem)
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


def _parse_u32(text: str) -> int:
    t = text.strip()
    if not t:
        raise ValueError("empty device ID")
    value = int(t, 0) if t[:2].lower() in ("0x", "0o", "0b") or t == "0" else int(t, 10)
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"device ID out of range: {text}")
    return value
