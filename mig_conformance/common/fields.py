"""Typed access to parsed YAML mappings that turns mistakes into located problems."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from mig_conformance.common.errors import InputError, Location, Problem
from mig_conformance.common.yaml_source import YamlDocument

_MISSING = object()

_TYPE_NAMES = {str: "a string", int: "an integer", bool: "a boolean", float: "a number",
               list: "a list", dict: "a mapping"}


def type_name(expected: type | tuple[type, ...]) -> str:
    kinds = expected if isinstance(expected, tuple) else (expected,)
    return " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)


def is_instance(value: Any, expected: type | tuple[type, ...]) -> bool:
    """isinstance that does not let bool pass for int."""
    kinds = expected if isinstance(expected, tuple) else (expected,)
    if isinstance(value, bool) and bool not in kinds:
        return False
    return isinstance(value, kinds)


@dataclass
class MappingReader:
    """Reads keys of one mapping in a YamlDocument, reporting file/line/config/entry/key."""

    doc: YamlDocument
    path: tuple[Hashable, ...]
    config: str | None = None
    entry: int | None = None
    subject: str = "config"

    @property
    def value(self) -> Any:
        v: Any = self.doc.data
        for p in self.path:
            v = v[p]
        return v

    def location(self, key: str | None = None) -> Location:
        line = self.doc.key_line(*self.path, key) if key is not None else self.doc.line(*self.path)
        return Location(self.doc.file, line, self.config, self.entry, key, self.subject)

    def problem(self, message: str, key: str | None = None) -> Problem:
        return Problem(message, self.location(key))

    def fail(self, message: str, key: str | None = None) -> InputError:
        return InputError(self.problem(message, key))

    def get(self, key: str, expected: type | tuple[type, ...], default: Any = _MISSING) -> Any:
        mapping = self.value
        if key not in mapping:
            if default is _MISSING:
                raise self.fail(f"missing required field '{key}'", key)
            return default
        v = mapping[key]
        if v is None and default is not _MISSING and default is None:
            return None
        if not is_instance(v, expected):
            raise self.fail(f"'{key}' must be {type_name(expected)}, got {type(v).__name__} {v!r}", key)
        return v

    def child(self, key: Hashable, **kw: Any) -> MappingReader:
        return MappingReader(self.doc, (*self.path, key), kw.get("config", self.config),
                             kw.get("entry", self.entry), self.subject)

    def reject_unknown(self, allowed: set[str] | frozenset[str], message: str = "unexpected field: {k}") -> None:
        for k in self.value:
            if k not in allowed:
                raise self.fail(message.format(k=k), str(k))
