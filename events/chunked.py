"""Bounded-memory reading of fixed-size binary words for the streaming decoders.

``read_words`` yields ``(byte offset, word array)`` pieces of at most ``chunk_bytes`` from one
reusable buffer, so a decoder holds one chunk of input at a time whatever the file size. The
arrays are views of that buffer: a decoder must copy anything it keeps past the next piece.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np

from events.errors import EventDecodeError

CHUNK_BYTES = 2 << 20  # small enough that a chunk is still in cache when its pieces are decoded


def data_end(stream: BinaryIO) -> int:
    """The stream's size (its position is left unchanged)."""
    here = stream.tell()
    end = stream.seek(0, os.SEEK_END)
    stream.seek(here)
    return end


def check_whole_words(fmt: str, start: int, end: int, word_size: int, what: str = "word") -> None:
    """Raise if ``[start, end)`` does not hold a whole number of ``word_size``-byte words."""
    rest = (end - start) % word_size
    if rest:
        raise EventDecodeError(
            fmt, f"file ends inside a {word_size}-byte {what} ({rest} trailing bytes; truncated?)", end - rest
        )


def read_words(
    stream: BinaryIO, fmt: str, start: int, end: int, dtype: np.dtype, chunk_bytes: int = CHUNK_BYTES
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(offset, words)`` covering ``[start, end)``; ``end - start`` must be whole words."""
    dtype = np.dtype(dtype)
    chunk_bytes = max(dtype.itemsize, chunk_bytes - chunk_bytes % dtype.itemsize)
    stream.seek(start)
    if end - start <= chunk_bytes:  # one chunk: read it as it is (small files are the common case)
        parts, got = [], 0
        while got < end - start:
            part = stream.read(end - start - got)
            if not part:
                raise EventDecodeError(fmt, "file ended early", start + got)
            parts.append(part)
            got += len(part)
        if got:
            yield start, np.frombuffer(parts[0] if len(parts) == 1 else b"".join(parts), dtype=dtype)
        return
    buffer = bytearray(chunk_bytes)
    view = memoryview(buffer)
    offset = start
    while offset < end:
        want = min(chunk_bytes, end - offset)
        got = 0
        while got < want:
            n = stream.readinto(view[got:want])
            if not n:
                raise EventDecodeError(fmt, "file ended early", offset + got)
            got += n
        yield offset, np.frombuffer(buffer, dtype=dtype, count=want // dtype.itemsize)
        offset += want
