"""YAML loading that remembers the line of every value, for located error messages."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from mig_conformance.common.errors import InputError, Location, Problem

PathKey = tuple[Hashable, ...]
Duplicates = Literal["error", "last"]


@dataclass
class YamlDocument:
    """A parsed YAML document plus the 1-based line of every node, keyed by its path."""

    data: Any
    file: str
    lines: dict[PathKey, int] = field(default_factory=dict)
    warnings: list[Problem] = field(default_factory=list)

    def line(self, *path: Hashable) -> int:
        """Line of the value at `path`, or of its nearest ancestor."""
        p: PathKey = tuple(path)
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return self.lines.get((), 1)

    def key_line(self, *path: Hashable) -> int:
        """Line of the mapping key at `path` (falls back to the value's line)."""
        return self.lines.get(("__key__", *path)) or self.line(*path)


class _Constructor(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """libyaml's parser where PyYAML has it (same nodes and marks, about 10x faster), else PyYAML's."""


def _build(node: yaml.Node, path: PathKey, doc: YamlDocument, loader: _Constructor, duplicates: Duplicates) -> Any:
    doc.lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        own = {id(k) for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"}
        loader.flatten_mapping(node)  # merged keys come first; the mapping's own keys override them
        result: dict[Any, Any] = {}
        own_lines: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, Hashable):
                raise InputError(Problem("mapping keys must be scalars", Location(doc.file, line)))
            if id(key_node) in own:
                if key in own_lines:
                    problem = Problem(f"duplicate key '{key}' (first defined on line {own_lines[key]})",
                                      Location(doc.file, line, key=str(key)))
                    if duplicates == "error":
                        raise InputError(problem)
                    doc.warnings.append(Problem(f"{problem.message}; the last one is used", problem.location))
                own_lines[key] = line
            doc.lines[("__key__", *path, key)] = line
            result[key] = _build(value_node, (*path, key), doc, loader, duplicates)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), doc, loader, duplicates) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def parse_yaml(text: str, file: str = "<string>", duplicates: Duplicates = "error",
               first_document_only: bool = False) -> YamlDocument:
    """Parse one YAML document; raise InputError with file and line on bad syntax.

    `duplicates="error"` (the kit's own files) rejects a repeated mapping key; `"last"` keeps the last value and
    records a located warning, as sigs.k8s.io/yaml (go.yaml.in/yaml/v2 `Unmarshal`, not strict) does for
    mig-parted. `first_document_only` reads the first document of a stream and ignores the rest, as yaml.v2's
    `Unmarshal` does (with a warning); otherwise a second document is an error.
    """
    doc = YamlDocument(data=None, file=file)
    loader: _Constructor | None = None
    try:
        loader = _Constructor(text)
        if first_document_only:
            node = loader.get_node() if loader.check_node() else None
            if node is not None and loader.check_event(yaml.DocumentStartEvent):
                line = loader.peek_event().start_mark.line + 1
                doc.warnings.append(Problem("only the first YAML document is read (as mig-parted does); the "
                                            "documents after it are ignored", Location(file, line)))
        else:
            node = loader.get_single_node()
        if node is not None:
            doc.data = _build(node, (), doc, loader, duplicates)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        reason = exc.problem or str(exc)
        raise InputError(Problem(f"not valid YAML: {reason}", Location(file, line))) from None
    except yaml.YAMLError as exc:
        reason = getattr(exc, "reason", None) or str(exc).splitlines()[0]
        raise InputError(Problem(f"not valid YAML: {reason}", Location(file))) from None
    finally:
        if loader is not None:
            loader.dispose()
    return doc


def read_text(path: str | Path) -> str:
    """Read a text file; a missing or unreadable file becomes InputError naming it, not a traceback."""
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(Problem("file not found", Location(str(p)))) from None
    except IsADirectoryError:
        raise InputError(Problem("is a directory, expected a YAML file", Location(str(p)))) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(Problem(f"cannot read file: {exc}", Location(str(p)))) from None


def load_yaml_file(path: str | Path) -> YamlDocument:
    """Read and parse a YAML file; unreadable files become InputError, not tracebacks."""
    return parse_yaml(read_text(path), str(path))
