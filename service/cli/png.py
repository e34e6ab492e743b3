"""A minimal PNG writer (8-bit RGB, no interlace) for ``stlsnn inspect --png``.

Written here with zlib because neither Pillow nor matplotlib is a dependency of the serve image
(or installed in the dev environment), and an RGB PNG is three chunks: a maintained imaging
library would add a large dependency for 20 lines of the PNG specification (RFC 2083).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(rgb: np.ndarray) -> bytes:
    """The PNG file of an ``(height, width, 3)`` uint8 image."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or 0 in rgb.shape[:2]:
        raise ValueError(f"expected a non-empty (height, width, 3) uint8 array, got {rgb.shape} {rgb.dtype}")
    height, width = rgb.shape[:2]
    rows = np.zeros((height, 1 + width * 3), dtype=np.uint8)  # filter byte 0 (None) before each row
    rows[:, 1:] = rgb.reshape(height, width * 3)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit depth, colour type 2 (RGB)
    return (
        SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + _chunk(b"IEND", b"")
    )


def write_png(path: str | Path, rgb: np.ndarray) -> None:
    Path(path).write_bytes(png_bytes(rgb))
