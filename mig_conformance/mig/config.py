"""A MIG configuration of one GPU: MIG device profile -> count (mig-parted's types.MigConfig)."""

from __future__ import annotations

from collections.abc import Mapping

from ..profiles import ProfileFormatError, ProfileName, parse_profile


def normalize(devices: Mapping[str, int]) -> dict[ProfileName, int]:
    """Parse keys into ProfileName; ProfileFormatError for a bad key."""
    out: dict[ProfileName, int] = {}
    for k, v in devices.items():
        p = parse_profile(k)
        out[p] = out.get(p, 0) + v
    return out


def config_equals(current: Mapping[str, int], desired: Mapping[str, int]) -> bool:
    """mig-parted's MigConfig.Equals: same length, every desired key present with a positive equal count.

    A desired map containing a zero count never equals a current config (lengths differ), as in mig-parted.
    """
    try:
        cur, des = normalize(current), normalize(desired)
    except ProfileFormatError:
        return False
    if len(cur) != len(des):
        return False
    return all(des.get(k, 0) > 0 and des[k] == v for k, v in cur.items())
