"""A MIG config as mig-parted defines it: equality, creation (Flatten) order, canonical names, config naming.

The one definition the projection (`k8s/mig_manager.py`), the mig-parted simulator (`simulators/mig_parted.py`),
validation and capture share. Sources: NVIDIA/mig-parted v0.15.0 `pkg/types/mig_config.go` (`MigConfig.Equals`,
`Flatten`), go-nvlib v0.12.0 `pkg/nvlib/device/mig_profile.go` (`MigProfile.String`), mig-parted
`pkg/mig/builder/builder.go` (`all-<profile>` names). docs/reference/mig-parted.md explains each rule.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from mig_conformance.gpus.profile_names import ProfileFormatError, ProfileName, parse_profile

#: A GPU's MIG devices as mig-parted reads them back (`GetMigConfig`): device name -> count.
MigDevices = Mapping[str, int]


def config_equals(current: MigDevices, desired: MigDevices | None) -> bool:
    """`types.MigConfig.Equals`: the same number of keys, and every current name a key of `desired` with the same,
    positive count. Keys are compared as strings, so `1c.1g.10gb` never equals the `1g.10gb` a GPU reports, and a
    zero count never matches (its key is never read back)."""
    desired = desired or {}
    if len(current) != len(desired):
        return False
    return all(desired.get(k, 0) > 0 and desired[k] == v for k, v in current.items())


def devices_equal(devices: Iterable[str], desired: MigDevices | None) -> bool:
    """`config_equals` for a GPU's device list (one name per MIG device)."""
    return config_equals(Counter(devices), desired)


def flatten_key(name: ProfileName) -> tuple[int, int, str]:
    """Flatten's sort key, used descending: G, then C, then the joined positive attributes (a negative attribute
    such as `-me` sorts like none)."""
    return (name.g, name.c, "" if name.negative else ",".join(name.attributes))


def flatten(devices: Mapping[ProfileName, int]) -> list[ProfileName]:
    """`MigConfig.Flatten`: one entry per device, in creation order (see `flatten_key`)."""
    flat = [p for p, n in devices.items() for _ in range(n)]
    return sorted(flat, key=flatten_key, reverse=True)


def flatten_order(devices: Mapping[ProfileName, int]) -> list[ProfileName]:
    """The distinct names of `devices` with a positive count, in Flatten order."""
    return flatten({p: 1 for p, n in devices.items() if n > 0})


def creation_order(names: Iterable[str]) -> tuple[str, ...]:
    """Device names in Flatten order: the one order in which the kit lists a GPU's MIG devices."""
    return tuple(sorted(names, key=lambda n: flatten_key(parse_profile(n)), reverse=True))


def canonical_name(text: str) -> str:
    """The name go-nvlib prints for a parsed profile name (`1c.1g.10gb` -> `1g.10gb`, `1g.10gb+me` unchanged).

    Raises ProfileFormatError for text that is not a profile name."""
    return parse_profile(text).name


def is_canonical(text: str) -> bool:
    """Whether `text` is spelt the way a GPU reports the device (so mig-parted's assert can ever match it)."""
    try:
        return canonical_name(text) == text
    except ProfileFormatError:
        return False


def matches_key(name: str | ProfileName) -> tuple[int, int, int, bool, frozenset[str]]:
    """Identity under go-nvlib's `Matches` (how a config key is resolved to a device profile): C, G, GB and the
    attribute set, in any order."""
    p = parse_profile(name) if isinstance(name, str) else name
    return (p.c, p.g, p.gb, p.negative, frozenset(p.attributes))


def uniform_config_name(profile: str) -> str:
    """The name of the config that fills every GPU with one profile: `all-<profile>` with `+` written as `.`
    (the GPU Operator's static ConfigMap and mig-parted's generate-config agree on it)."""
    return "all-" + profile.replace("+", ".")
