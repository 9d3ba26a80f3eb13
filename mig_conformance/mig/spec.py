"""mig-parted configuration files, version v1: parsing and format validation.

Accepts what `nvidia-mig-parted` accepts and rejects what it rejects, with its error text (`upstream`)
plus the file, line, config name, entry index and key of every problem. Also reads a ConfigMap manifest
whose `data` holds the file (as the GPU Operator's `default-mig-parted-config`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError, Location, Problem, UnknownNameError
from ..profiles import ProfileFormatError, parse_profile
from ..yamlsource import YamlDocument, parse_yaml, read_text
from .device import DeviceID

VERSION = "v1"
ENTRY_KEYS = frozenset({"device-filter", "devices", "mig-enabled", "mig-devices"})


@dataclass(frozen=True)
class SpecProblem(Problem):
    """A Problem plus the message nvidia-mig-parted itself would print."""

    upstream: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {**super().as_dict(), "mig_parted_message": self.upstream}


@dataclass(frozen=True)
class MigConfigEntry:
    """One entry of a named config: which GPUs it selects and what it wants on them."""

    index: int
    line: int | None
    device_filter: tuple[str, ...]
    devices: str | tuple[int, ...]
    mig_enabled: bool
    mig_devices: dict[str, int] | None
    device_lines: dict[str, int] = field(default_factory=dict, compare=False)
    key_lines: dict[str, int] = field(default_factory=dict, compare=False)

    def matches_device_filter(self, device_id: DeviceID) -> bool:
        """Empty filter matches all; unparsable filters match nothing (mig-parted ignores the error)."""
        if not self.device_filter:
            return True
        for f in self.device_filter:
            try:
                if DeviceID.parse(f).matches(device_id):
                    return True
            except ValueError:
                continue
        return False

    def matches_devices(self, index: int) -> bool:
        return self.devices == "all" or index in self.devices  # type: ignore[operator]

    def selects(self, index: int, device_id: DeviceID) -> bool:
        return self.matches_device_filter(device_id) and self.matches_devices(index)

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if self.device_filter:
            d["device-filter"] = self.device_filter[0] if len(self.device_filter) == 1 else list(self.device_filter)
        d["devices"] = self.devices if self.devices == "all" else list(self.devices)
        d["mig-enabled"] = self.mig_enabled
        d["mig-devices"] = dict(self.mig_devices or {})
        return d


@dataclass
class Spec:
    """A parsed v1 file: named configs, the source document for line numbers, and format problems."""

    file: str
    version: str | None = None
    configs: dict[str, tuple[MigConfigEntry, ...]] = field(default_factory=dict)
    problems: list[SpecProblem] = field(default_factory=list)
    config_lines: dict[str, int | None] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return not self.problems

    def select(self, name: str | None) -> tuple[str, tuple[MigConfigEntry, ...]]:
        """mig-parted's config selection, with its error texts."""
        if name is None:
            if len(self.configs) > 1:
                raise InputError(SpecProblem("missing required flag 'selected-config' when more than one "
                                             "config available", Location(self.file),
                                             upstream="missing required flag 'selected-config' when more than "
                                             "one config available"))
            if not self.configs:
                raise InputError(SpecProblem("the file has no configs", Location(self.file),
                                             upstream="selected mig-config not present: "))
            name = next(iter(self.configs))
        if name not in self.configs:
            known = ", ".join(sorted(self.configs)) or "none"
            raise UnknownNameError(SpecProblem(
                f"selected mig-config not present: {name} (configs in this file: {known})",
                Location(self.file, config=name), upstream=f"selected mig-config not present: {name}"))
        return name, self.configs[name]


class _Parser:
    def __init__(self, doc: YamlDocument, line_offset: int = 0) -> None:
        self.doc = doc
        self.offset = line_offset
        self.spec = Spec(file=doc.file)

    def loc(self, path: tuple, config: str | None = None, entry: int | None = None,
            key: str | None = None, key_line: bool = False) -> Location:
        line = self.doc.key_line(*path) if key_line else self.doc.line(*path)
        return Location(self.doc.file, (line or 1) + self.offset, config, entry, key)

    def add(self, message: str, location: Location, upstream: str | None = None) -> None:
        self.spec.problems.append(SpecProblem(message, location, upstream=message if upstream is None else upstream))

    def parse(self) -> Spec:
        data = self.doc.data
        if data is None:
            return self.spec  # an empty document parses to an empty Spec, as in mig-parted
        if not isinstance(data, dict):
            self.add(f"the file must be a mapping with 'version' and 'mig-configs', got {type(data).__name__}",
                     self.loc(()), upstream="json: cannot unmarshal into Go value of type map[string]json.RawMessage")
            return self.spec
        if "version" not in data:
            self.add("unable to parse with missing 'version' field", self.loc(()))
            return self.spec
        version = data["version"]
        if version != VERSION:
            self.add(f"unknown version: {version} (only '{VERSION}' exists)",
                     self.loc(("version",), key="version"), upstream=f"unknown version: {version}")
            return self.spec
        self.spec.version = version
        for k in data:
            if k not in ("version", "mig-configs"):
                self.add(f"unexpected field: {k}", self.loc((k,), key=str(k), key_line=True))
        configs = data.get("mig-configs")
        if "mig-configs" not in data:
            return self.spec
        if not isinstance(configs, dict):
            self.add(f"'mig-configs' must be a mapping of config name to a list of entries, got "
                     f"{type(configs).__name__}", self.loc(("mig-configs",), key="mig-configs"),
                     upstream="json: cannot unmarshal into map[string]v1.MigConfigSpecSlice")
            return self.spec
        if not configs:
            self.add("at least one entry in 'mig-configs' is required", self.loc(("mig-configs",), key="mig-configs"))
        for name, entries in configs.items():
            self.spec.config_lines[str(name)] = self.doc.key_line("mig-configs", name) + self.offset
            self.parse_config(str(name), entries)
        return self.spec

    def parse_config(self, name: str, entries: Any) -> None:
        path = ("mig-configs", name)
        if entries is None or entries == []:
            self.add(f"at least one entry in '{name}' is required", self.loc(path, config=name))
            return
        if not isinstance(entries, list):
            self.add(f"config '{name}' must be a list of entries, got {type(entries).__name__}",
                     self.loc(path, config=name), upstream="json: cannot unmarshal into v1.MigConfigSpecSlice")
            return
        parsed = []
        for i, raw in enumerate(entries):
            entry = self.parse_entry(name, i, raw)
            if entry is not None:
                parsed.append(entry)
        self.spec.configs[name] = tuple(parsed)

    def parse_entry(self, name: str, i: int, raw: Any) -> MigConfigEntry | None:
        path = ("mig-configs", name, i)
        before = len(self.spec.problems)

        def bad(msg: str, key: str | None = None, upstream: str | None = None, sub: str | None = None) -> None:
            kpath = (*path, key) if key else path
            if sub is not None:
                kpath = (*kpath, sub)
            self.add(msg, self.loc(kpath, name, i, key, key_line=key is not None), upstream)

        if not isinstance(raw, dict):
            bad(f"an entry must be a mapping, got {type(raw).__name__}",
                upstream="json: cannot unmarshal into v1.MigConfigSpec")
            return None
        for required in ("devices", "mig-enabled"):
            if required not in raw:
                bad(f"missing required field: {required}", None)
        for k in raw:
            if k not in ENTRY_KEYS:
                bad(f"unexpected field: {k}", str(k))
        device_filter: tuple[str, ...] = ()
        if "device-filter" in raw:
            f = raw["device-filter"]
            if isinstance(f, str):
                device_filter = (f,) if f else ()
            elif isinstance(f, list) and all(isinstance(x, str) for x in f):
                device_filter = tuple(f)
            else:
                bad(f"'device-filter' must be a string or a list of strings, got {f!r}", "device-filter",
                    upstream="(json: cannot unmarshal into Go value of type string, json: cannot unmarshal into "
                    "Go value of type []string)")
            for flt in device_filter:
                try:
                    DeviceID.parse(flt)
                except ValueError:
                    # mig-parted accepts this at parse time and silently matches nothing; we warn loudly.
                    bad(f"device-filter '{flt}' is not a PCI ID like 0x233010DE; mig-parted accepts it but "
                        "it matches no GPU", "device-filter", upstream="")
        devices: str | tuple[int, ...] = "all"
        if "devices" in raw:
            d = raw["devices"]
            if isinstance(d, str):
                if d != "all":
                    bad(f"invalid string input for 'devices': {d} (use 'all' or a list of GPU indices)", "devices",
                        upstream=f"invalid string input for 'devices': {d}")
            elif isinstance(d, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in d):
                devices = tuple(d)
            else:
                bad(f"'devices' must be 'all' or a list of GPU indices, got {d!r}", "devices",
                    upstream="(json: cannot unmarshal into Go value of type string, json: cannot unmarshal into "
                    "Go value of type []int)")
        enabled = raw.get("mig-enabled", False)
        if "mig-enabled" in raw and not isinstance(enabled, bool):
            bad(f"'mig-enabled' must be true or false, got {enabled!r}", "mig-enabled",
                upstream="json: cannot unmarshal into Go struct field of type bool")
            enabled = False
        mig_devices: dict[str, int] | None = None
        if "mig-devices" in raw:
            mig_devices = self.parse_mig_devices(raw["mig-devices"], bad)
        if enabled and mig_devices is None and "mig-devices" not in raw:
            bad("missing required field 'mig-devices' when 'mig-enabled' is true", None)
        if not enabled and mig_devices:
            bad("MIG devices included when 'mig-enabled' is false", "mig-devices")
        if len(self.spec.problems) != before:
            return None
        lines = {k: (self.doc.key_line(*path, "mig-devices", k) or 0) + self.offset for k in (mig_devices or {})}
        key_lines = {str(k): (self.doc.key_line(*path, k) or 0) + self.offset for k in raw}
        return MigConfigEntry(i, self.doc.line(*path) + self.offset, device_filter, devices, bool(enabled),
                              mig_devices, lines, key_lines)

    def parse_mig_devices(self, md: Any, bad) -> dict[str, int] | None:
        if md is None:
            return None
        if not isinstance(md, dict):
            bad(f"'mig-devices' must be a mapping of profile to count, got {md!r}", "mig-devices",
                upstream="json: cannot unmarshal into Go value of type types.MigConfig")
            return None
        out: dict[str, int] = {}
        prefix = "error validating values in 'mig-devices' field: "
        for k, v in md.items():
            key = str(k)
            try:
                parse_profile(key)
            except ProfileFormatError as exc:
                bad(f"{prefix}invalid format for '{key}': {exc}", "mig-devices",
                    upstream=f"{prefix}invalid format for '{key}'", sub=k)
                continue
            if not isinstance(v, int) or isinstance(v, bool):
                bad(f"count of '{key}' must be an integer, got {v!r}", "mig-devices",
                    upstream="json: cannot unmarshal into Go value of type int", sub=k)
                continue
            if v < 0:
                bad(f"{prefix}invalid count for '{key}': {v} (must be >= 0)", "mig-devices",
                    upstream=f"{prefix}invalid count for '{v}': <nil>", sub=k)
                continue
            out[key] = v
        if out and len(out) == len(md) and all(v == 0 for v in out.values()):
            bad(f"{prefix}all counts for all MigProfiles are 0", "mig-devices")
        return out


def _configmap_payload(doc: YamlDocument) -> tuple[str, int, str] | None:
    """If `doc` is a ConfigMap, the embedded file text, its line offset and data key."""
    data = doc.data
    if not (isinstance(data, dict) and data.get("kind") == "ConfigMap" and isinstance(data.get("data"), dict)):
        return None
    items = data["data"]
    key = "config.yaml" if "config.yaml" in items else next(iter(items), None)
    if key is None or not isinstance(items[key], str):
        return None
    # A block scalar's content starts on the line after its key.
    return items[key], doc.line("data", key), key


def parse_spec_text(text: str, file: str = "<string>") -> Spec:
    """Parse a mig-parted file (or a ConfigMap that holds one) from text."""
    try:
        doc = parse_yaml(text, file)
    except InputError as exc:
        spec = Spec(file=file)
        spec.problems.extend(SpecProblem(p.message, p.location, upstream=p.message) for p in exc.problems)
        return spec
    embedded = _configmap_payload(doc)
    if embedded is not None:
        inner_text, offset, _ = embedded
        try:
            inner = parse_yaml(inner_text, file)
        except InputError as exc:
            spec = Spec(file=file)
            spec.problems.extend(SpecProblem(p.message, Location(file, (p.location.line or 0) + offset),
                                             upstream=p.message) for p in exc.problems)
            return spec
        return _Parser(inner, offset).parse()
    return _Parser(doc).parse()


def load_spec(path: str | Path) -> Spec:
    """Read a mig-parted config file; unreadable files raise InputError naming the file."""
    return parse_spec_text(read_text(path), str(path))
