"""Parse `nvidia-smi -L`, `nvidia-smi mig -lgip` and `mig -lgipp` text by tokens, not by column.

Tolerates the 81-character tables of driver 580, the 79-character tables of older drivers, extra
or missing padding, CRLF line ends and doubled `|` borders from copied Markdown (docs/reference/nvidia-smi.md).
A `?` cell (the kit's simulator prints it for a value its GPU catalog does not know) reads as None.
`lgip_problems` tells a complete `-lgip` table from a cut-off or damaged one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

_INT = re.compile(r"^\d+$")
UNKNOWN = "?"
_FREE_TOTAL = re.compile(r"^(\d+)/(\d+)$")
_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)(GiB|MiB)?$", re.IGNORECASE)
_LGIPP = re.compile(r"GPU\s+(\d+)\s+Profile\s+ID\s+(\d+)\s+Placements?\s*:\s*((?:\{[^}]*\}\s*:\s*\d+[\s,]*)+)",
                    re.IGNORECASE)
_PLACEMENT_GROUP = re.compile(r"\{([^}]*)\}\s*:\s*(\d+)")
_LIST_GPU = re.compile(r"^GPU\s+(\d+):\s+(.*?)\s+\(UUID:\s*([^)\s]+)\)\s*$")


@dataclass(frozen=True)
class LgipRow:
    """One profile of `nvidia-smi mig -lgip` (both printed lines)."""

    gpu: int
    name: str
    id: int
    free: int
    total: int
    memory: str  # as printed: GiB with 2 decimals, or "<n>MiB" on drivers that print MiB; "?" = unknown
    p2p: bool | None
    sm: int | None  # None: printed as "?" (unknown)
    dec: int | None
    enc: int | None
    ce: int | None = None
    jpeg: int | None = None
    ofa: int | None = None
    complete: bool = field(default=True, compare=False)  # False: the row's second line (CE/JPEG/OFA) is missing

    @property
    def memory_unit(self) -> str:
        m = _MEMORY.match(self.memory)
        return (m.group(2) or "GiB") if m else "GiB"

    @property
    def memory_known(self) -> bool:
        return self.memory != UNKNOWN

    @property
    def memory_value(self) -> str:
        m = _MEMORY.match(self.memory)
        return m.group(1) if m else self.memory


@dataclass(frozen=True)
class LgippRow:
    """One line of `nvidia-smi mig -lgipp`: the placements of a profile ID."""

    gpu: int
    id: int
    starts: tuple[int, ...]
    size: int


@dataclass(frozen=True)
class ListedGpu:
    """One `GPU i: NAME (UUID: ...)` line of `nvidia-smi -L`."""

    index: int
    name: str
    uuid: str


def _cells(line: str) -> list[str] | None:
    """Tokens between the box borders of a table line, or None for a line outside a table."""
    s = line.strip()
    if not (s.startswith("|") and s.endswith("|")):
        return None
    return s.strip("|").split()


def _is_int(token: str) -> bool:
    return bool(_INT.match(token))


def _is_value(token: str) -> bool:
    """An integer cell or an unknown one (`?`)."""
    return token == UNKNOWN or _is_int(token)


def _value(token: str) -> int | None:
    return None if token == UNKNOWN else int(token)


def _first_line(tokens: list[str]) -> LgipRow | None:
    """The first line of a profile row: GPU, [MIG] name, ID, free/total, memory, P2P, SM, DEC, ENC."""
    if len(tokens) < 5 or not _is_int(tokens[0]):
        return None
    rest = tokens[2:] if tokens[1] == "MIG" else tokens[1:]
    if len(rest) < 4 or not _is_int(rest[1]):
        return None
    name, pid, counts, memory, *tail = rest
    m = _FREE_TOTAL.match(counts)
    if not m or not (memory == UNKNOWN or _MEMORY.match(memory)):
        return None
    p2p: bool | None = None
    if tail and tail[0].lower() in ("yes", "no", UNKNOWN):
        word = tail.pop(0).lower()
        p2p = None if word == UNKNOWN else word == "yes"
    nums = [_value(t) for t in tail if _is_value(t)]
    if len(nums) < 3:
        return None
    return LgipRow(gpu=int(tokens[0]), name=name, id=int(pid), free=int(m[1]), total=int(m[2]), memory=memory,
                   p2p=p2p, sm=nums[0], dec=nums[1], enc=nums[2])


def parse_lgip(text: str) -> list[LgipRow]:
    """Every profile row of `nvidia-smi mig -lgip` output; CE/JPEG/OFA from the row's second line."""
    rows: list[LgipRow] = []
    pending: LgipRow | None = None
    for line in text.splitlines():
        tokens = _cells(line)
        if tokens is None:
            continue
        row = _first_line(tokens)
        if row is not None:
            if pending is not None:
                rows.append(replace(pending, complete=False))
            pending = row
            continue
        if pending is not None and len(tokens) == 3 and all(_is_value(t) for t in tokens):
            ce, jpeg, ofa = (_value(t) for t in tokens)
            rows.append(replace(pending, ce=ce, jpeg=jpeg, ofa=ofa))
            pending = None
    if pending is not None:
        rows.append(replace(pending, complete=False))
    return rows


_RULE = re.compile(r"^\+-+\+$")


def lgip_problems(text: str) -> list[str]:
    """Why `nvidia-smi mig -lgip` text is not a complete table ([] when it is): a cut-off end, a damaged
    border line, a profile row without its second line."""
    problems = []
    table = [line.strip() for line in text.splitlines() if line.strip().startswith(("+", "|"))]
    rules = [line for line in table if _RULE.match(line)]
    if not table or not rules:
        return ["no nvidia-smi table border ('+----+') found"]
    if not _RULE.match(table[-1]):
        problems.append(f"the table does not end with its closing border line (last line '{table[-1][:40]}'); "
                        "the text looks cut off")
    damaged = [line for line in table[:-1] if line.startswith("+") and not _RULE.match(line)]
    if damaged:
        problems.append(f"damaged border line '{damaged[0][:40]}'")
    broken = [r.name for r in parse_lgip(text) if not r.complete]
    if broken:
        problems.append(f"profile row(s) without their second line (CE/JPEG/OFA): {', '.join(broken)}")
    return problems


def lgipp_problems(text: str) -> list[str]:
    """`-lgipp` lines that start like a placement line but do not parse (e.g. cut off)."""
    bad = [line.strip() for line in text.splitlines()
           if re.match(r"\s*GPU\s+\d+\s+Profile\s+ID", line, re.IGNORECASE) and not _LGIPP.search(line)]
    return [f"incomplete -lgipp line '{line[:60]}'" for line in bad]


def parse_lgipp(text: str) -> list[LgippRow]:
    """Every `GPU n Profile ID p Placements: {a,b,...}:size` line."""
    rows: list[LgippRow] = []
    for m in _LGIPP.finditer(text):
        for group in _PLACEMENT_GROUP.finditer(m.group(3)):
            starts = tuple(int(s) for s in re.findall(r"\d+", group.group(1)))
            rows.append(LgippRow(gpu=int(m.group(1)), id=int(m.group(2)), starts=starts, size=int(group.group(2))))
    return rows


def parse_list(text: str) -> list[ListedGpu]:
    """The GPU lines of `nvidia-smi -L` (MIG device lines are skipped)."""
    found = []
    for line in text.splitlines():
        m = _LIST_GPU.match(line.strip())
        if m:
            found.append(ListedGpu(int(m.group(1)), m.group(2).strip(), m.group(3)))
    return found


def detect_kind(text: str) -> str | None:
    """'lgip', 'lgipp' or 'list' (nvidia-smi -L) for a captured text, else None."""
    if parse_lgip(text):
        return "lgip"
    if parse_lgipp(text):
        return "lgipp"
    if parse_list(text):
        return "list"
    return None
