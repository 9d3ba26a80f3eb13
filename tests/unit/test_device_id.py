"""PCI device IDs of `device-filter`: types.NewDeviceIDFromString with Go's strconv.ParseUint(s, 0, 32)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mig_conformance.gpus.device_ids import DeviceID, parse_uint32


@pytest.mark.parametrize(("text", "value"), [
    ("0x233010DE", 0x233010DE), ("0X233010de", 0x233010DE), ("0x_2330_10DE", 0x233010DE),
    ("010", 8),  # a leading 0 is octal, as in Go
    ("0", 0), ("00", 0), ("1_000", 1000), ("0b101", 5), ("0o17", 15), ("017", 15), ("4294967295", 0xFFFFFFFF),
])
def test_parse_uint32_like_go(text: str, value: int) -> None:
    assert parse_uint32(text) == value


@pytest.mark.parametrize("text", ["", "0x", "08", " 0x233010DE", "0x233010DE ", "+5", "-5", "1__0", "_1", "0x1_",
                                  "4294967296", "0x1233010DE", "٣", "0x23 30"])
def test_parse_uint32_rejects_what_go_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_uint32(text)


def test_device_id_parts() -> None:
    assert DeviceID.parse("0x233010DE:0x134F10DE") == DeviceID(0x2330, 0x10DE, 0x134F, 0x10DE)
    assert str(DeviceID.parse("0x233010de")) == "0x233010DE"
    for bad in ("0x233010DE:", ":0x134F10DE", "a:b:c", "0x2330:0x10DE:1"):
        with pytest.raises(ValueError):
            DeviceID.parse(bad)


@given(st.integers(0, 0xFFFFFFFF), st.sampled_from(["0x{:x}", "0X{:X}", "{:d}", "0o{:o}", "0{:o}", "0b{:b}"]))
def test_every_base_round_trips(value: int, form: str) -> None:
    text = form.format(value)
    if text == "00":
        text = "0"
    assert parse_uint32(text) == value
    assert DeviceID.parse(text) == DeviceID(value >> 16, value & 0xFFFF)
