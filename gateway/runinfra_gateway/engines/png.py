"""8-bit grayscale PNG, both ways, with the standard library and NumPy only.

The image engine writes PNGs without an imaging library; verification probes
(and tests) read them back with a decoder that follows the PNG spec for this
colour type: chunk CRCs checked, IDAT chunks joined, every row filter undone.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import numpy.typing as npt

__all__ = ["decode_png", "encode_png"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(gray: npt.NDArray[np.uint8]) -> bytes:
    """An 8-bit grayscale PNG: every row Sub-filtered (each byte minus its left neighbour), zlib level 1.

    Compressing a 1024x1024 digit so takes 3.5 ms and gives 75 KB; unfiltered at zlib's default level 6 it
    took 17.7 ms for 99 KB (the page is mostly flat, so Sub leaves runs of zeros that level 1 packs tightly).
    """
    height, width = gray.shape
    pixels = np.ascontiguousarray(gray, dtype=np.uint8)
    rows = np.empty((height, width + 1), np.uint8)
    rows[:, 0] = 1  # the Sub filter
    rows[:, 1] = pixels[:, 0]
    np.subtract(pixels[:, 1:], pixels[:, :-1], out=rows[:, 2:])  # uint8 arithmetic wraps modulo 256, as PNG's
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(rows.tobytes(), 1)
    return _SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def decode_png(data: bytes) -> npt.NDArray[np.uint8]:
    """Pixels of an 8-bit grayscale, non-interlaced PNG; ``ValueError`` for anything else or any damage."""
    if not data.startswith(_SIGNATURE):
        raise ValueError("not a PNG (bad signature)")
    pos, header, idat = len(_SIGNATURE), b"", bytearray()
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        if len(body) != length or zlib.crc32(kind + body) & 0xFFFFFFFF != crc:
            raise ValueError(f"damaged {kind!r} chunk")
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
        pos += 12 + length
    if len(header) != 13:
        raise ValueError("missing IHDR")
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    if (depth, colour, interlace) != (8, 0, 0):
        raise ValueError("only 8-bit grayscale, non-interlaced PNGs are read here")
    raw = zlib.decompress(bytes(idat))
    if len(raw) != height * (width + 1):
        raise ValueError("image data does not match the header size")
    rows = np.frombuffer(raw, np.uint8).reshape(height, width + 1)
    out = np.zeros((height, width), np.int32)
    previous = np.zeros(width, np.int32)
    for y in range(height):
        kind, line = rows[y, 0], rows[y, 1:].astype(np.int32)
        if kind == 0:
            row = line
        elif kind == 1:
            row = np.cumsum(line) & 0xFF  # Sub: each byte plus the reconstructed one to its left
        elif kind == 2:
            row = (line + previous) & 0xFF
        elif kind in (3, 4):
            row = np.zeros(width, np.int32)
            for x in range(width):
                left = row[x - 1] if x else 0
                up, corner = previous[x], previous[x - 1] if x else 0
                if kind == 3:
                    predictor = (left + up) // 2
                else:
                    p = left + up - corner
                    pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                    predictor = left if pa <= pb and pa <= pc else (up if pb <= pc else corner)
                row[x] = (line[x] + predictor) & 0xFF
        else:
            raise ValueError(f"unknown row filter {kind}")
        out[y] = row
        previous = row
    return out.astype(np.uint8)
