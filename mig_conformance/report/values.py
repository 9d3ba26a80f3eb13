"""Measured-vs-expected comparison shared by the markdown, HTML and terminal renderings."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ABSENT: Any = type("Absent", (), {"__repr__": lambda self: "ABSENT"})()


@dataclass(frozen=True)
class Check:
    """One leaf of the expected/measured records, by its key path."""

    path: tuple[str, ...]
    expected: Any
    measured: Any

    @property
    def key(self) -> str:
        return ".".join(self.path)

    @property
    def short(self) -> str:
        """The last key with the `nvidia.com/` prefix dropped: `mig-1g.10gb`, `state`."""
        last = self.path[-1] if self.path else ""
        return last.removeprefix("nvidia.com/")

    @property
    def ok(self) -> bool:
        return self.expected is not ABSENT and self.expected == self.measured

    @property
    def checked(self) -> bool:
        """Whether an expected value exists for this key."""
        return self.expected is not ABSENT


def flatten(value: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Nested mappings become key paths; lists and scalars are leaves."""
    out: dict[tuple[str, ...], Any] = {}
    for k in sorted(value, key=str):
        path = (*prefix, str(k))
        v = value[k]
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, path))
        else:
            out[path] = v
    return out


def checks(expected: Mapping[str, Any], measured: Mapping[str, Any]) -> list[Check]:
    """Every key of either side: mismatches first, then matches, then measured-only keys."""
    e, m = flatten(expected), flatten(measured)
    rows = [Check(p, e.get(p, ABSENT), m.get(p, ABSENT)) for p in sorted(set(e) | set(m))]
    return sorted(rows, key=lambda c: (0 if c.checked and not c.ok else 1 if c.ok else 2, c.path))


def show(value: Any) -> str:
    """Compact text of one value ('-' when absent)."""
    if value is ABSENT:
        return "-"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)


def short_comparison(expected: Mapping[str, Any], measured: Mapping[str, Any], limit: int = 80,
                     ascii_only: bool = False) -> str:
    """`mig-1g.10gb=0≠16, mig-3g.40gb=8`: each key's measured value, `≠expected` where it differs."""
    neq, more = ("!=", "...") if ascii_only else ("≠", "…")
    parts = []
    for c in checks(expected, measured):
        text = f"{c.short}={show(c.measured)}"
        parts.append(f"{text}{neq}{show(c.expected)}" if c.checked and not c.ok else text)
    text = ", ".join(parts)
    return text if len(text) <= limit else text[: max(0, limit - len(more))] + more
