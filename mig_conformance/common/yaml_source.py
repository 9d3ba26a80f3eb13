"""YAML loading that remembers the line of every value, for located error messages, and that bounds what hostile
input can cost.

Files come from other people (mig-parted configs, ConfigMap manifests, clusters files), so every read is bounded
before anything is built: at most `MAX_BYTES` of text, `MAX_DEPTH` levels of nesting and `MAX_NODES` values
(an alias counts with everything it stands for, so a "billion laughs" file stops at the limit instead of growing
past the machine's memory), and no alias that contains itself. Each limit is an InputError naming the file and the
line, never a traceback. Text may be UTF-8 (with or without a byte-order mark) or UTF-16/UTF-32 with a byte-order
mark, as YAML 1.2 allows.
"""

from __future__ import annotations

import sys
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from mig_conformance.common.errors import InputError, Location, Problem

PathKey = tuple[Hashable, ...]
Duplicates = Literal["error", "last"]

#: Limits on one YAML input (docs/hardening.md). A Kubernetes ConfigMap holds at most 1 MiB, and the largest real
#: config the kit knows (the GPU Operator's 81 configs) is 21 KiB with 6 levels and about 2,000 values.
MAX_BYTES = 4 * 2**20
MAX_DEPTH = 64
MAX_NODES = 100_000
_BOMS = ((b"\x00\x00\xfe\xff", "utf-32-be"), (b"\xff\xfe\x00\x00", "utf-32-le"), (b"\xef\xbb\xbf", "utf-8-sig"),
         (b"\xfe\xff", "utf-16"), (b"\xff\xfe", "utf-16"))


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


STR_TAG, INT_TAG = "tag:yaml.org,2002:str", "tag:yaml.org,2002:int"


def _decimal(text: str) -> bool:
    """Plain ASCII digits without a leading zero: YAML 1.1 resolves these to int, and only these (`0123` is octal,
    `089` a string), so they need neither PyYAML's regular expressions nor its int constructor."""
    return text.isascii() and text.isdigit() and (text[0] != "0" or len(text) == 1)


class _Constructor(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """libyaml's parser where PyYAML has it (same nodes and marks, about 10x faster), else PyYAML's.

    Tag resolution takes a shortcut for the two commonest plain scalars (PyYAML's resolver runs in Python for every
    scalar, a second per 100,000 values): a first character no implicit resolver starts with is a string, and
    `_decimal` text an int; everything else goes through PyYAML's resolver as before."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is yaml.ScalarNode and value and implicit[0] and not self.yaml_path_resolvers:
            if value[0] not in self.yaml_implicit_resolvers and None not in self.yaml_implicit_resolvers:
                return STR_TAG
            if _decimal(value):
                return INT_TAG
        return super().resolve(kind, value, implicit)


class _Builder:
    """Builds Python values from a composed node graph, recording lines; bounded (module doc): every value built
    counts against MAX_NODES, aliases included each time they are used, and an alias inside itself is refused."""

    def __init__(self, doc: YamlDocument, loader: _Constructor, duplicates: Duplicates) -> None:
        self.doc, self.loader, self.duplicates = doc, loader, duplicates
        self.built = 0
        self.open: set[int] = set()  # nodes being built: meeting one again is a recursive alias

    def fail(self, message: str, node: yaml.Node) -> InputError:
        return InputError(Problem(message, Location(self.doc.file, node.start_mark.line + 1)))

    def build(self, node: yaml.Node, path: PathKey) -> Any:
        self.built += 1
        if self.built > MAX_NODES:
            raise self.fail(f"more than {MAX_NODES:,} values once aliases are expanded; the kit reads at most that "
                            "many (an alias bomb?)", node)
        self.doc.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.ScalarNode):
            if node.tag == STR_TAG:  # what construct_yaml_str returns, without its calls
                return node.value
            if node.tag == INT_TAG and _decimal(node.value):
                return int(node.value)
            return self.loader.construct_object(node, deep=True)
        if id(node) in self.open:
            raise self.fail("an alias refers to a value that contains it (recursive alias)", node)
        self.open.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self.mapping(node, path)
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        finally:
            self.open.discard(id(node))

    def mapping(self, node: yaml.MappingNode, path: PathKey) -> dict[Any, Any]:
        doc = self.doc
        own = {id(k) for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"}
        for key_node, value_node in node.value:
            merged = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            if key_node.tag == "tag:yaml.org,2002:merge" and any(id(m) in self.open for m in merged):
                raise self.fail("a merge key (<<) merges a mapping that contains it (recursive alias)", key_node)
        self.loader.flatten_mapping(node)  # merged keys come first; the mapping's own keys override them
        result: dict[Any, Any] = {}
        own_lines: dict[Any, int] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise InputError(Problem("mapping keys must be scalars", Location(doc.file, line)))
            key = self.loader.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                raise InputError(Problem("mapping keys must be scalars", Location(doc.file, line)))
            if id(key_node) in own:
                if key in own_lines:
                    shown = "~" if key is None else str(key)  # YAML's null, not Python's None
                    problem = Problem(f"duplicate key '{shown}' (first defined on line {own_lines[key]})",
                                      Location(doc.file, line, key=shown))
                    if self.duplicates == "error":
                        raise InputError(problem)
                    doc.warnings.append(Problem(f"{problem.message}; the last one is used", problem.location))
                own_lines[key] = line
            doc.lines[("__key__", *path, key)] = line
            result[key] = self.build(value_node, (*path, key))
        return result


def _line(event: yaml.Event) -> int | None:
    return event.start_mark.line + 1 if event.start_mark is not None else None


def _check_shape(text: str, file: str, first_document_only: bool) -> None:
    """Depth and size of the text's YAML, read as a stream of events (no recursion), before anything is built."""
    depth = values = 0
    documents = 0
    for event in yaml.parse(text, Loader=_Constructor):
        if isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            if first_document_only and documents > 1:
                return
        elif isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise InputError(Problem(f"nested more than {MAX_DEPTH} levels deep; the kit reads at most that many",
                                         Location(file, _line(event))))
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
        if isinstance(event, yaml.NodeEvent):
            values += 1
            if values > MAX_NODES:
                raise InputError(Problem(f"more than {MAX_NODES:,} values; the kit reads at most that many",
                                         Location(file, _line(event))))


def parse_yaml(text: str, file: str = "<string>", duplicates: Duplicates = "error",
               first_document_only: bool = False) -> YamlDocument:
    """Parse one YAML document; raise InputError with file and line on bad syntax or past a limit (module doc).

    `duplicates="error"` (the kit's own files) rejects a repeated mapping key; `"last"` keeps the last value and
    records a located warning, as sigs.k8s.io/yaml (go.yaml.in/yaml/v2 `Unmarshal`, not strict) does for
    mig-parted. `first_document_only` reads the first document of a stream and ignores the rest, as yaml.v2's
    `Unmarshal` does (with a warning); otherwise a second document is an error.
    """
    if len(text) > MAX_BYTES:
        raise InputError(Problem(f"larger than {MAX_BYTES // 2**20} MiB ({len(text):,} characters); the kit reads at "
                                 "most that much YAML", Location(file)))
    doc = YamlDocument(data=None, file=file)
    loader: _Constructor | None = None
    try:
        _check_shape(text, file, first_document_only)
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
            doc.data = _Builder(doc, loader, duplicates).build(node, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        reason = exc.problem or str(exc)
        raise InputError(Problem(f"not valid YAML: {reason}", Location(file, line))) from None
    except yaml.YAMLError as exc:
        reason = getattr(exc, "reason", None) or str(exc).splitlines()[0]
        raise InputError(Problem(f"not valid YAML: {reason}", Location(file))) from None
    except RecursionError:  # a merge key (<<) inside the mapping it merges: PyYAML's flatten_mapping recurses
        raise InputError(Problem("an alias refers to a value that contains it (recursive alias)",
                                 Location(file))) from None
    except ValueError as exc:  # PyYAML's int() of a number with more digits than Python converts
        raise InputError(Problem(f"not a usable YAML value: {exc}", Location(file))) from None
    finally:
        if loader is not None:
            loader.dispose()
    return doc


def decode_text(data: bytes, file: str) -> str:
    """Text of a YAML file: UTF-8, or UTF-8/16/32 with a byte-order mark; InputError naming the first bad byte."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(codec)
            except UnicodeDecodeError as exc:
                raise InputError(Problem(f"not {codec} text despite its byte-order mark: {exc.reason} at byte "
                                         f"{exc.start}", Location(file))) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(Problem(f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); a binary "
                                 "file?", Location(file))) from None


def read_bytes(path: str | Path, limit: int = MAX_BYTES) -> bytes:
    """Read at most `limit` bytes of a file ('-' is standard input); a missing, unreadable or larger file becomes
    InputError naming it, never a traceback (and a 50 MB file is not read whole to say so)."""
    p = Path(path)
    name = "<stdin>" if str(path) == "-" else str(p)
    try:
        if str(path) == "-":
            data = sys.stdin.buffer.read(limit + 1)
        else:
            with p.open("rb") as handle:
                data = handle.read(limit + 1)
    except FileNotFoundError:
        raise InputError(Problem("file not found", Location(name))) from None
    except IsADirectoryError:
        raise InputError(Problem("is a directory, expected a file", Location(name))) from None
    except OSError as exc:
        raise InputError(Problem(f"cannot read file: {exc.strerror or exc}", Location(name))) from None
    if len(data) > limit:
        raise InputError(Problem(f"larger than {limit // 2**20} MiB; the kit reads at most that much",
                                 Location(name)))
    return data


def read_text(path: str | Path) -> str:
    """Read a text file (bounded, see `read_bytes`; encodings as `decode_text`); '-' is standard input."""
    return decode_text(read_bytes(path), "<stdin>" if str(path) == "-" else str(path))


def load_yaml_file(path: str | Path) -> YamlDocument:
    """Read and parse a YAML file; unreadable files become InputError, not tracebacks."""
    return parse_yaml(read_text(path), str(path))
