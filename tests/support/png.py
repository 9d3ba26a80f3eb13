"""Just enough of PNG to read a browser's screenshot back as pixels (8-bit RGB or RGBA, not interlaced), with the
standard library only: the browser test looks at what was painted, not only at the DOM."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {2: 3, 6: 4}  # colour type -> bytes per pixel (RGB, RGBA)


@dataclass(frozen=True)
class Image:
    """Pixels as rows of RGB tuples."""

    width: int
    height: int
    rows: list[list[tuple[int, int, int]]]

    def pixels(self) -> list[tuple[int, int, int]]:
        return [p for row in self.rows for p in row]


def decode(data: bytes) -> Image:
    """The pixels of a PNG; ValueError for anything else than 8-bit RGB/RGBA without interlacing."""
    if not data.startswith(SIGNATURE):
        raise ValueError("not a PNG")
    pos, header, idat = len(SIGNATURE), b"", []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    if depth != 8 or colour not in CHANNELS or interlace:
        raise ValueError(f"unsupported PNG: depth {depth}, colour type {colour}, interlace {interlace}")
    bpp = CHANNELS[colour]
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    previous = bytearray(stride)
    rows = []
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        _unfilter(kind, line, previous, bpp)
        rows.append([(line[i], line[i + 1], line[i + 2]) for i in range(0, stride, bpp)])
        previous = line
    return Image(width, height, rows)


def _unfilter(kind: int, line: bytearray, up: bytearray, bpp: int) -> None:
    """Undo one scanline's filter in place (PNG specification, section 9)."""
    if kind == 0:
        return
    if kind == 2:
        line[:] = bytes((a + b) & 0xFF for a, b in zip(line, up, strict=True))
        return
    for i in range(len(line)):
        left = line[i - bpp] if i >= bpp else 0
        if kind == 1:
            line[i] = (line[i] + left) & 0xFF
        elif kind == 3:
            line[i] = (line[i] + (left + up[i]) // 2) & 0xFF
        elif kind == 4:
            corner = up[i - bpp] if i >= bpp else 0
            p = left + up[i] - corner
            pa, pb, pc = abs(p - left), abs(p - up[i]), abs(p - corner)
            line[i] = (line[i] + (left if pa <= pb and pa <= pc else up[i] if pb <= pc else corner)) & 0xFF
        else:
            raise ValueError(f"unknown PNG filter {kind}")
