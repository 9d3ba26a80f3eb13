"""One SVG picture per GPU: memory slots (top row) and compute slices (bottom row) with each GPU instance
drawn as a coloured rectangle over its placement, coloured by its number of compute slices."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

CELL = 72         # width of one memory slot
ROW_H = 40        # height of a row
LABEL_W = 76      # room for the row names on the left
TOP = 34          # caption and slot numbers
GAP = 6           # between the two rows
PAD = 8
FONT = 11
# Okabe–Ito colours (colour-blind safe), indexed by compute slices - 1; the 7- and 8-slice instances share blue.
PALETTE = ("#56B4E9", "#009E73", "#E69F00", "#CC79A7", "#D55E00", "#F0E442", "#0072B2", "#0072B2")
EMPTY_FILL, EMPTY_STROKE = "#F3F4F6", "#9CA3AF"


def colour_for(slices: int) -> str:
    return PALETTE[(max(1, slices) - 1) % len(PALETTE)]


def text_colour(fill: str) -> str:
    """Black on light fills, white on dark ones."""
    r, g, b = (int(fill[i:i + 2], 16) for i in (1, 3, 5))
    return "#111827" if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "#FFFFFF"


def slot_x(slot: int) -> int:
    """Left edge of memory slot `slot`."""
    return LABEL_W + slot * CELL


def slice_ratio(slots: int, slices: int) -> int:
    """Memory slots per compute slice column (1 on A100/H100-style GPUs with 8 slots and 7 slices)."""
    return max(1, slots // slices) if slices > 0 else 1


def compute_start(inst: Mapping[str, Any], slots: int, slices: int) -> int:
    """First compute slice of an instance: `slice_start` if recorded, else aligned under its memory."""
    if isinstance(inst.get("slice_start"), int):
        return int(inst["slice_start"])
    n = _int(inst.get("slices"), 1)
    return max(0, min(_int(inst.get("start"), 0) // slice_ratio(slots, slices), slices - n))


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _label(text: str, x: int, y: int, width: int, fill: str, cls: str) -> str:
    """A centred label that shrinks, then shortens with '…', to fit `width`."""
    size = FONT
    if len(text) * size * 0.6 > width - 10:
        size = FONT - 2
    max_chars = max(1, int((width - 8) / (size * 0.6)))
    shown = text if len(text) <= max_chars else text[: max(1, max_chars - 1)] + "…"
    return (f'<text class="{cls}" x="{x + width // 2}" y="{y}" font-size="{size}" text-anchor="middle" '
            f'fill="{text_colour(fill)}">{escape(shown)}</text>')


def gpu_svg(gpu: Mapping[str, Any], caption: str | None = None, standalone: bool = True) -> str:
    """SVG of one layout entry `{"gpu", "slots", "slices", "instances": [{profile, start, size, slices}]}`."""
    instances = [i for i in gpu.get("instances") or [] if isinstance(i, Mapping)]
    slots = _int(gpu.get("slots"), 0) or max((_int(i.get("start"), 0) + _int(i.get("size"), 1)
                                              for i in instances), default=1)
    slices = _int(gpu.get("slices"), 0) or slots
    ratio = slice_ratio(slots, slices)
    width, height = LABEL_W + slots * CELL + PAD, TOP + 2 * ROW_H + GAP + PAD
    y_mem, y_cmp = TOP, TOP + ROW_H + GAP
    caption = caption if caption is not None else f"GPU {gpu.get('gpu', '?')}"
    ns = ' xmlns="http://www.w3.org/2000/svg"' if standalone else ""
    out = [f'<svg{ns} class="gpu" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
           f'role="img" aria-label="{escape(caption)}" font-family="sans-serif">',
           f"<title>{escape(caption)}</title>",
           f'<text class="caption" x="{PAD}" y="14" font-size="12" font-weight="bold" fill="#111827">'
           f"{escape(caption)}</text>",
           f'<text class="row" x="{PAD}" y="{y_mem + ROW_H // 2 + 4}" font-size="{FONT}" fill="#374151">memory</text>',
           f'<text class="row" x="{PAD}" y="{y_cmp + ROW_H // 2 + 4}" font-size="{FONT}" fill="#374151">compute</text>']
    for s in range(slots):
        out.append(f'<text class="slot-index" x="{slot_x(s) + CELL // 2}" y="{TOP - 5}" font-size="9" '
                   f'text-anchor="middle" fill="#6B7280">{s}</text>')
        out.append(f'<rect class="slot" x="{slot_x(s)}" y="{y_mem}" width="{CELL}" height="{ROW_H}" '
                   f'fill="{EMPTY_FILL}" stroke="{EMPTY_STROKE}"/>')
    for c in range(slices):
        out.append(f'<rect class="slice" x="{slot_x(c * ratio)}" y="{y_cmp}" width="{ratio * CELL}" '
                   f'height="{ROW_H}" fill="{EMPTY_FILL}" stroke="{EMPTY_STROKE}"/>')
    if slices * ratio < slots:  # memory slots without a compute slice below (8 slots, 7 slices)
        out.append(f'<rect class="no-slice" x="{slot_x(slices * ratio)}" y="{y_cmp}" '
                   f'width="{(slots - slices * ratio) * CELL}" height="{ROW_H}" fill="#FFFFFF" '
                   f'stroke="{EMPTY_STROKE}" stroke-dasharray="4 3"/>')
    for inst in sorted(instances, key=lambda i: (_int(i.get("start"), 0), str(i.get("profile")))):
        out.extend(_instance(inst, slots, slices, ratio, y_mem, y_cmp))
    if not instances:
        out.append(f'<text class="empty" x="{LABEL_W + slots * CELL // 2}" y="{y_mem + ROW_H // 2 + 4}" '
                   f'font-size="{FONT}" text-anchor="middle" fill="#6B7280">no GPU instances</text>')
    out.append("</svg>")
    return "\n".join(out)


def _instance(inst: Mapping[str, Any], slots: int, slices: int, ratio: int, y_mem: int, y_cmp: int) -> list[str]:
    profile = str(inst.get("profile", "?"))
    start = min(max(0, _int(inst.get("start"), 0)), max(0, slots - 1))
    size = min(max(1, _int(inst.get("size"), 1)), slots - start)
    n = max(1, _int(inst.get("slices"), 1))
    cs = compute_start(inst, slots, slices)
    fill = colour_for(n)
    devices = inst.get("devices")
    tip = f"{profile}: memory slots {start}..{start + size - 1}, compute slices {cs}..{cs + n - 1}"
    if isinstance(devices, list) and devices:
        tip += "; devices: " + ", ".join(str(d) for d in devices)
    mx, mw = slot_x(start), size * CELL
    cx, cw = slot_x(cs * ratio), min(n, max(1, slices - cs)) * ratio * CELL
    attrs = f'data-profile="{escape(profile)}" data-start="{start}" data-size="{size}" data-slices="{n}"'
    return [
        f'<g class="gi" {attrs}>',
        f"<title>{escape(tip)}</title>",
        f'<rect class="gi-mem" x="{mx}" y="{y_mem}" width="{mw}" height="{ROW_H}" rx="4" fill="{fill}" '
        f'stroke="#FFFFFF" stroke-width="2"/>',
        _label(profile, mx, y_mem + ROW_H // 2 + 4, mw, fill, "gi-label"),
        f'<rect class="gi-compute" x="{cx}" y="{y_cmp}" width="{cw}" height="{ROW_H}" rx="4" fill="{fill}" '
        f'stroke="#FFFFFF" stroke-width="2"/>',
        _label(f"{n} slice" + ("s" if n != 1 else ""), cx, y_cmp + ROW_H // 2 + 4, cw, fill, "gi-slices"),
        "</g>",
    ]


def group_gpus(layout: Sequence[Mapping[str, Any]]) -> list[tuple[list[Any], Mapping[str, Any]]]:
    """GPUs with identical geometry and instances share one picture: [(gpu indices, entry)]."""
    groups: dict[str, tuple[list[Any], Mapping[str, Any]]] = {}
    for entry in layout:
        key = json.dumps({k: v for k, v in entry.items() if k != "gpu"}, sort_keys=True, default=str)
        groups.setdefault(key, ([], entry))[0].append(entry.get("gpu"))
    return list(groups.values())


def gpus_caption(indices: Sequence[Any]) -> str:
    """`GPU 3`, `GPUs 0–7` (a contiguous run) or `GPUs 0, 2, 5`."""
    if len(indices) == 1:
        return f"GPU {indices[0]}"
    ints = [i for i in indices if isinstance(i, int)]
    if len(ints) == len(indices) and ints == list(range(ints[0], ints[0] + len(ints))):
        return f"GPUs {ints[0]}–{ints[-1]}"
    return "GPUs " + ", ".join(str(i) for i in indices)
