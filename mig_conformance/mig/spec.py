"""mig-parted configuration files, version v1: parsing and format validation.

Accepts what `nvidia-mig-parted` accepts and rejects what it rejects, with its error text (`upstream`)
plus the file, line, config name, entry index and key of every problem. Also reads a ConfigMap manifest
whose `data` holds the file (as the GPU Operator's `default-mig-parted-config`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mig_conformance.common.errors import InputError, Location, Problem, UnknownNameError
from mig_conformance.common.yaml_source import YamlDocument, parse_yaml, read_text
from mig_conformance.gpus.device_ids import DeviceID
from mig_conformance.gpus.profile_names import ProfileFormatError, parse_profile
from mig_conformance.mig import gojson

VERSION = "v1"


@dataclass(frozen=True)
class SpecProblem(Problem):
    """A Problem plus the error nvidia-mig-parted itself would give.

    `upstream` is the Go error of the failing step: for `stage="json"` what mig-parted's UnmarshalJSON (or
    encoding/json) returns, for `stage="yaml"` the YAML syntax error, for `stage="select"` the config selection
    error. None for warnings (mig-parted accepts the input).
    """

    upstream: str | None = None
    stage: str = "json"

    @property
    def mig_parted_error(self) -> str | None:
        """The text after "error parsing config file: " (or "error selecting MIG config: ") in mig-parted."""
        if self.upstream is None:
            return None
        if self.stage == "yaml":
            return f"unmarshal error: error converting YAML to JSON: {self.upstream}"
        if self.stage == "json":
            return f"unmarshal error: error unmarshaling JSON: while decoding JSON: {self.upstream}"
        return self.upstream

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
        return self.devices == "all" or index in self.devices

    def selects(self, index: int, device_id: DeviceID) -> bool:
        return self.matches_device_filter(device_id) and self.matches_devices(index)

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if self.device_filter:  # a one-item list stays a list: [""] matches no GPU, "" means no filter at all
            one = len(self.device_filter) == 1 and self.device_filter[0] != ""
            d["device-filter"] = self.device_filter[0] if one else list(self.device_filter)
        d["devices"] = self.devices if self.devices == "all" else list(self.devices)
        d["mig-enabled"] = self.mig_enabled
        d["mig-devices"] = dict(self.mig_devices or {})
        return d


@dataclass
class Spec:
    """A parsed v1 file: named configs, format problems (mig-parted rejects the file) and warnings (it accepts it).

    `configs` holds only configs whose every entry parsed. `syntax_error` is set when the text is not YAML at all.
    """

    file: str
    version: str | None = None
    configs: dict[str, tuple[MigConfigEntry, ...]] = field(default_factory=dict)
    problems: list[SpecProblem] = field(default_factory=list)
    warnings: list[SpecProblem] = field(default_factory=list)
    config_lines: dict[str, int | None] = field(default_factory=dict)
    syntax_error: bool = False
    #: the text holds no YAML at all: nothing but whitespace (tabs too), byte-order marks and comments
    empty: bool = False

    @property
    def valid(self) -> bool:
        return not self.problems

    def select(self, name: str | None) -> tuple[str, tuple[MigConfigEntry, ...]]:
        """mig-parted's config selection (GetSelectedMigConfig), with its error texts."""
        if name is None or name == "":
            if len(self.configs) > 1:
                text = "missing required flag 'selected-config' when more than one config available"
                raise InputError(SpecProblem(f"{text} (configs in this file: {', '.join(sorted(self.configs))})",
                                             Location(self.file), upstream=text, stage="select"))
            if not self.configs:
                raise InputError(SpecProblem("the file has no configs", Location(self.file),
                                             upstream="selected mig-config not present: ", stage="select"))
            name = next(iter(self.configs))
        if name not in self.configs:
            known = ", ".join(sorted(self.configs)) or "none"
            raise UnknownNameError(SpecProblem(
                f"selected mig-config not present: {name} (configs in this file: {known})",
                Location(self.file, config=name), upstream=f"selected mig-config not present: {name}",
                stage="select"))
        return name, self.configs[name]

    def selection_error(self, name: str | None) -> str | None:
        """What mig-parted exits with when it cannot use this file for config `name` (parse, then select; the text
        of `assert --valid-config`, capitalised as mig-parted's fatal errors are), or None when it can."""
        if self.problems:
            first = self.problems[0]
            return f"Error parsing config file: {first.mig_parted_error or first.message}"
        try:
            self.select(name)
        except InputError as exc:
            problem = exc.problems[0]
            text = problem.upstream if isinstance(problem, SpecProblem) and problem.upstream else problem.message
            return f"Error selecting MIG config: {text}"
        return None


class _Parser:
    """mig-parted's Spec / MigConfigSpec UnmarshalJSON, checking everything instead of stopping at the first error.

    Go checks a mapping's keys in random (map) order and returns the first error; we report every problem in file
    order, with mig-parted's text for each.
    """

    def __init__(self, doc: YamlDocument, line_offset: int = 0) -> None:
        self.doc = doc
        self.offset = line_offset
        self.spec = Spec(file=doc.file)
        self.spec.warnings.extend(SpecProblem(w.message, self._shift(w.location), upstream=None)
                                  for w in doc.warnings)

    def _shift(self, location: Location) -> Location:
        line = (location.line or 1) + self.offset
        return Location(location.file, line, location.config, location.entry, location.key)

    def loc(self, path: tuple[Any, ...], config: str | None = None, entry: int | None = None,
            key: str | None = None, key_line: bool = False) -> Location:
        line = self.doc.key_line(*path) if key_line else self.doc.line(*path)
        return Location(self.doc.file, (line or 1) + self.offset, config, entry, key)

    def add(self, message: str, location: Location, upstream: str | None = None) -> None:
        self.spec.problems.append(SpecProblem(message, location, upstream=message if upstream is None else upstream))

    def warn(self, message: str, location: Location) -> None:
        self.spec.warnings.append(SpecProblem(message, location, upstream=None))

    def parse(self) -> Spec:
        data = self.doc.data
        if data is None:
            return self.spec  # an empty document (or `null`) leaves the Spec empty, as in mig-parted
        if self.null_keys():
            return self.spec
        if not isinstance(data, dict):
            err = gojson.type_error(gojson.kind(data), "map[string]json.RawMessage")
            self.add(f"the file must be a mapping with 'version' and 'mig-configs', got {_what(data)}: {err}",
                     self.loc(()), upstream=str(err))
            return self.spec
        keys = {gojson.map_key(k): k for k in data}
        if "version" not in keys:
            if data:
                self.add("unable to parse with missing 'version' field", self.loc(()))
            else:
                self.add("unknown version:  (an empty mapping; the file needs 'version: v1')", self.loc(()),
                         upstream="unknown version: ")
            return self.spec
        raw_version = data[keys["version"]]
        vloc = self.loc((keys["version"],), key="version")
        try:
            version = gojson.decode_str(raw_version)
        except gojson.GoTypeError as exc:
            self.add(f"'version' must be the string v1, got {_what(raw_version)}: {exc}", vloc, upstream=str(exc))
            return self.spec
        if version != VERSION:
            self.add(f"unknown version: {version} (only '{VERSION}' exists)", vloc,
                     upstream=f"unknown version: {version}")
            return self.spec
        self.spec.version = version
        for name, k in keys.items():
            if name == "mig-configs":
                self.parse_configs(k)
            elif name != "version":
                self.add(f"unexpected field: {name}", self.loc((k,), key=name, key_line=True))
        return self.spec

    def null_keys(self) -> bool:
        """A null mapping key (`~`, `null`, an empty key) anywhere fails mig-parted's YAML-to-JSON conversion
        before anything is decoded (gojson.null_key_error): one problem per such key, in file order; True if any."""
        found: list[SpecProblem] = []
        stack: list[tuple[tuple[Any, ...], Any]] = [((), self.doc.data)]
        while stack:
            path, value = stack.pop()
            if isinstance(value, dict):
                for k, v in value.items():
                    if k is None:
                        found.append(self._null_key(path, v))
                    else:
                        stack.append(((*path, k), v))
            elif isinstance(value, list):
                stack.extend(((*path, i), v) for i, v in enumerate(value))
        self.spec.problems.extend(sorted(found, key=lambda p: p.location.line or 0))
        return bool(found)

    def _null_key(self, path: tuple[Any, ...], value: Any) -> SpecProblem:
        configs = [k for k in self.doc.data if gojson.map_key(k) == "mig-configs"]
        in_configs = bool(configs) and path[:1] == (configs[0],)
        what = "a config name" if in_configs and len(path) == 1 else "a mapping key"
        config = gojson.map_key(path[1]) if in_configs and len(path) > 1 else None
        entry = path[2] if in_configs and len(path) > 2 and isinstance(path[2], int) else None
        message = (f"{what} is null (~): mig-parted rejects the whole file, because sigs.k8s.io/yaml converts YAML to "
                   'JSON and a JSON key cannot be null (write "~" in quotes for a name)')
        location = Location(self.doc.file, self.doc.key_line(*path, None) + self.offset, config, entry, "~")
        return SpecProblem(message, location, upstream=gojson.null_key_error(value), stage="yaml")

    def parse_configs(self, k: Any) -> None:
        configs = self.doc.data[k]
        where = self.loc((k,), key="mig-configs")
        if configs is not None and not isinstance(configs, dict):
            err = gojson.type_error(gojson.kind(configs), "map[string]v1.MigConfigSpecSlice")
            self.add(f"'mig-configs' must be a mapping of config name to a list of entries, got {_what(configs)}: "
                     f"{err}", where, upstream=str(err))
            return
        if not configs:  # empty, or null (decoded into a nil map)
            self.add("at least one entry in 'mig-configs' is required", where)
            return
        for name, entries in configs.items():
            key = gojson.map_key(name)
            self.spec.config_lines[key] = self.doc.key_line(k, name) + self.offset
            self.parse_config(key, (k, name), entries)

    def parse_config(self, name: str, path: tuple[Any, ...], entries: Any) -> None:
        if entries is None or entries == []:
            self.add(f"at least one entry in '{name}' is required", self.loc(path, config=name))
            return
        if not isinstance(entries, list):
            err = gojson.type_error(gojson.kind(entries), "v1.MigConfigSpecSlice")
            self.add(f"config '{name}' must be a list of entries, got {_what(entries)}: {err}",
                     self.loc(path, config=name), upstream=str(err))
            return
        before = len(self.spec.problems)
        parsed = [self.parse_entry(name, (*path, i), i, raw) for i, raw in enumerate(entries)]
        if len(self.spec.problems) == before:
            self.spec.configs[name] = tuple(e for e in parsed if e is not None)

    def parse_entry(self, name: str, path: tuple[Any, ...], i: int, raw: Any) -> MigConfigEntry | None:
        before = len(self.spec.problems)

        def bad(msg: str, key: str | None = None, upstream: str | None = None, sub: Any = None,
                raw_key: Any = None, warning: bool = False) -> None:
            kpath = (*path, raw_key if raw_key is not None else key) if key else path
            if sub is not None:
                kpath = (*kpath, sub)
            where = self.loc(kpath, name, i, key, key_line=key is not None)
            if warning:
                self.warn(msg, where)
            else:
                self.add(msg, where, upstream)

        if raw is None:
            raw = {}  # UnmarshalJSON(null): no keys at all
        if not isinstance(raw, dict):
            type_err = gojson.type_error(gojson.kind(raw), "map[string]json.RawMessage")
            bad(f"an entry must be a mapping, got {_what(raw)}: {type_err}", upstream=str(type_err))
            return None
        keys = {gojson.map_key(k): k for k in raw}
        for required in ("devices", "mig-enabled"):
            if required not in keys:
                bad(f"missing required field: {required}")
        device_filter: tuple[str, ...] = ()
        devices: str | tuple[int, ...] = "all"
        enabled = False
        mig_devices: dict[str, int] | None = None
        for key, k in keys.items():
            value = raw[k]
            if key == "device-filter":
                text, filters, err = _string_or_list(value, "string")
                if err:
                    bad(f"'device-filter' must be a string or a list of strings, got {_what(value)}: {err}", key,
                        upstream=err, raw_key=k)
                    continue
                # an empty string is no filter, but a list is kept as it is: its "" (or null) matches no GPU
                device_filter = tuple(filters) if filters is not None else ((text,) if text else ())
                self.check_filters(device_filter, self.loc((*path, k), name, i, key, key_line=True))
            elif key == "devices":
                text, indices, err = _string_or_list(value, "int")
                if err:
                    bad(f"'devices' must be 'all' or a list of GPU indices, got {_what(value)}: {err}", key,
                        upstream=err, raw_key=k)
                elif indices is not None:
                    devices = tuple(indices)
                elif text != "all":
                    message = f"invalid string input for 'devices': {text}"
                    bad(f"{message} (use 'all' or a list of GPU indices)", key, upstream=message, raw_key=k)
            elif key == "mig-enabled":
                try:
                    enabled = gojson.decode_bool(value)
                except gojson.GoTypeError as exc:
                    bad(f"'mig-enabled' must be true or false, got {_what(value)}: {exc}", key, upstream=str(exc),
                        raw_key=k)
            elif key == "mig-devices":
                mig_devices = self.parse_mig_devices(value, bad, k)
            else:
                bad(f"unexpected field: {key}", key, raw_key=k)
        if len(self.spec.problems) != before:
            return None
        if enabled and mig_devices is None:
            bad("missing required field 'mig-devices' when 'mig-enabled' is true",
                "mig-devices" if "mig-devices" in keys else None, raw_key=keys.get("mig-devices"))
        elif not enabled and mig_devices:
            bad("MIG devices included when 'mig-enabled' is false", "mig-devices", raw_key=keys.get("mig-devices"))
        if len(self.spec.problems) != before:
            return None
        md_key = keys.get("mig-devices")
        raw_md = raw.get(md_key) if md_key is not None else None
        lines = {gojson.map_key(k): (self.doc.key_line(*path, md_key, k) or 0) + self.offset
                 for k in (raw_md if isinstance(raw_md, dict) else {})}
        key_lines = {key: (self.doc.key_line(*path, k) or 0) + self.offset for key, k in keys.items()}
        return MigConfigEntry(i, self.doc.line(*path) + self.offset, device_filter, devices, enabled,
                              mig_devices, lines, key_lines)

    def check_filters(self, filters: tuple[str, ...], where: Location) -> None:
        """Filters are parsed only when matching, and a bad one silently matches nothing: a warning, not an error."""
        for flt in filters:
            try:
                DeviceID.parse(flt)
            except ValueError:
                self.warn(f"device-filter '{flt}' is not a PCI ID like 0x233010DE (Go strconv.ParseUint(s, 0, 32)); "
                          "mig-parted accepts it but it matches no GPU", where)

    def parse_mig_devices(self, md: Any, bad: Any, raw_key: Any) -> dict[str, int] | None:
        """types.MigConfig: JSON decoding of the counts first, then AssertValidFormat."""
        if md is None:
            return None  # null is decoded into a nil map: as if the key were missing
        if not isinstance(md, dict):
            err = gojson.type_error(gojson.kind(md), "types.MigConfig")
            bad(f"'mig-devices' must be a mapping of profile to count, got {_what(md)}: {err}", "mig-devices",
                upstream=str(err), raw_key=raw_key)
            return None
        counts: dict[str, int] = {}
        raw_of: dict[str, Any] = {}  # JSON key -> the YAML key it came from (the last one: JSON keeps the last)
        typed = True
        for k, v in md.items():
            key = gojson.map_key(k)
            if key in raw_of:
                bad(f"'mig-devices' keys {raw_of[key]!r} and {k!r} are the same key '{key}' once converted to JSON; "
                    "mig-parted keeps only the last one", "mig-devices", sub=k, raw_key=raw_key, warning=True)
            raw_of[key] = k
            try:
                counts[key] = gojson.decode_int(v)
            except gojson.GoTypeError as exc:
                typed = False
                bad(_count_message(key, v, exc), "mig-devices", upstream=str(exc), sub=k, raw_key=raw_key)
        if not typed:
            return None
        prefix = "error validating values in 'mig-devices' field: "
        valid = True
        for key, k in raw_of.items():
            try:
                parse_profile(key)
            except ProfileFormatError as exc:
                valid = False
                text = f"{prefix}invalid format for '{key}': {exc}"
                bad(text, "mig-devices", upstream=text, sub=k, raw_key=raw_key)
                continue
            if counts[key] < 0:
                valid = False
                bad(f"{prefix}invalid count for '{key}': {counts[key]} (must be >= 0)", "mig-devices",
                    upstream=f"{prefix}invalid count for '{counts[key]}': <nil>", sub=k, raw_key=raw_key)
        if valid and counts and all(v == 0 for v in counts.values()):
            bad(f"{prefix}all counts for all MigProfiles are 0", "mig-devices", raw_key=raw_key)
        return counts


def _string_or_list(value: Any, element: str) -> tuple[str | None, list[Any] | None, str | None]:
    """mig-parted's "a string, else a list" decoding: (string, None, None), (None, list, None), or Go's
    "(err1, err2)" text as the third item."""
    try:
        return gojson.decode_str(value), None, None
    except gojson.GoTypeError as err1:
        try:
            return None, gojson.decode_list(value, element), None
        except gojson.GoTypeError as err2:
            return None, None, f"({err1}, {err2})"


def _count_message(key: str, value: Any, exc: gojson.GoTypeError) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return (f"count of '{key}' is out of range: mig-parted reads counts as 64-bit integers "
                f"(at most {gojson.INT64_MAX}): {exc}")
    return f"count of '{key}' must be an integer, got {_what(value)}: {exc}"


def _what(value: Any) -> str:
    """A short description of a YAML value for messages."""
    if value is None:
        return "null"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


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


def _parse_document(text: str, file: str) -> YamlDocument:
    """YAML as sigs.k8s.io/yaml reads it for mig-parted: repeated keys keep the last value, one document."""
    return parse_yaml(text, file, duplicates="last", first_document_only=True)


def _syntax_spec(file: str, exc: InputError, offset: int = 0) -> Spec:
    spec = Spec(file=file, syntax_error=True)
    for p in exc.problems:
        line = (p.location.line or 0) + offset if p.location.line else None
        reason = p.message.removeprefix("not valid YAML: ")
        inner = p.location.line  # mig-parted reads the embedded file: its own line numbers
        spec.problems.append(SpecProblem(p.message, Location(file, line), stage="yaml",
                                         upstream=f"yaml: line {inner}: {reason}" if line else f"yaml: {reason}"))
    return spec


def parse_mig_parted_file(text: str, file: str = "<string>") -> Spec:
    """A mig-parted v1 file exactly as mig-parted reads it (a ConfigMap manifest in there is not unwrapped:
    mig-parted rejects it)."""
    try:
        return _Parser(_parse_document(text, file)).parse()
    except InputError as exc:
        return _syntax_spec(file, exc)


@dataclass(frozen=True)
class ConfigSource:
    """A user's config input, read once: a mig-parted file, or a ConfigMap manifest that holds one (such as the GPU
    Operator's `default-mig-parted-config`).

    `spec` is what the kit validates, with the input's own line numbers; `mig_parted_text` is the file mig-parted
    is given (the manifest's `config.yaml`, or the input itself), which is what goes into a cluster's ConfigMap."""

    file: str
    text: str
    mig_parted_text: str
    spec: Spec
    manifest_key: str | None = None

    @property
    def names(self) -> list[str]:
        """The named configs, in file order."""
        return list(self.spec.configs)


def is_blank(text: str) -> bool:
    """No YAML in the text at all: only whitespace (tabs too), byte-order marks and comment lines. mig-parted reads
    such a file as no configs (or, with a tab, as a YAML error); the kit calls it empty either way."""
    return all(not line.strip(" \t\r\ufeff") or line.lstrip(" \t\ufeff").startswith("#")
               for line in text.split("\n"))


def read_config_source(text: str, file: str = "<string>") -> ConfigSource:
    """Parse a user's mig-parted file or ConfigMap manifest (see ConfigSource)."""
    try:
        doc = _parse_document(text, file)
    except InputError as exc:
        spec = _syntax_spec(file, exc)
        spec.empty = is_blank(text)
        return ConfigSource(file, text, text, spec)
    if doc.data is None:
        spec = _Parser(doc).parse()
        spec.empty = is_blank(text)
        return ConfigSource(file, text, text, spec)
    embedded = _configmap_payload(doc)
    if embedded is None:
        return ConfigSource(file, text, text, _Parser(doc).parse())
    inner_text, offset, key = embedded
    try:
        spec = _Parser(_parse_document(inner_text, file), offset).parse()
    except InputError as exc:
        return ConfigSource(file, text, inner_text, _syntax_spec(file, exc, offset), key)
    spec.warnings[:0] = [SpecProblem(w.message, w.location, upstream=None) for w in doc.warnings]
    return ConfigSource(file, text, inner_text, spec, key)


def spec_name(path: str | Path) -> str:
    """How messages name a config file: its path, `<stdin>` for `-`."""
    return "<stdin>" if str(path) == "-" else str(path)


def load_config_source(path: str | Path) -> ConfigSource:
    """Read a user's config file (`-`: standard input; bounded, common/yaml_source.py); an unreadable file raises
    InputError naming it."""
    return read_config_source(read_text(path), spec_name(path))


def parse_spec_text(text: str, file: str = "<string>") -> Spec:
    """The Spec of a user's mig-parted file or ConfigMap manifest (`read_config_source(...).spec`)."""
    return read_config_source(text, file).spec


@functools.lru_cache(maxsize=16)
def parse_installed_config(text: str, file: str) -> Spec:
    """A cluster's mig-parted ConfigMap text as mig-manager hands it to mig-parted (`parse_mig_parted_file`),
    parsed once per version (specs are never changed after parsing)."""
    return parse_mig_parted_file(text, file)


def load_spec(path: str | Path) -> Spec:
    """The Spec of a user's config file (`load_config_source(path).spec`)."""
    return load_config_source(path).spec
