"""``events.load``: open any supported source, detect its format from content, decode it."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

from events.errors import EventDecodeError, UnknownFormatError
from events.format import DecodeLimits, Format
from events.formats import BY_NAME, FORMATS
from events.recording import Recording

SNIFF_BYTES = 4096
SPOOL_BYTES = 16 << 20  # a non-seekable source (pipe, socket) larger than this is spooled to disk
COPY_BYTES = 1 << 20


def detect_format(head: bytes, filename: str | None = None) -> Format:
    """The format whose content test matches ``head``; the file name only breaks ties."""
    matches = [f for f in FORMATS if f.sniff(head)]
    if filename and len(matches) > 1:
        suffix = Path(filename).suffix.lower()
        by_ext = [f for f in matches if suffix in f.extensions]
        if by_ext:
            return by_ext[0]
    if matches:
        return matches[0]
    raise UnknownFormatError(f"content matches none of: {', '.join(BY_NAME)}")


def load(
    source: str | os.PathLike | bytes | bytearray | memoryview | BinaryIO,
    format: str | None = None,
    *,
    limits: DecodeLimits | None = None,
) -> Recording:
    """Decode an event file (a path, bytes, or a binary file object) into a ``Recording``.

    ``format`` (a name from ``events.formats``) overrides detection. Every problem with the
    content raises ``EventDecodeError``; an unknown format raises its subclass
    ``UnknownFormatError``. Decoders seek, so a non-seekable file object is first copied in
    1 MB pieces to a temporary file (in memory up to ``SPOOL_BYTES``, on disk beyond).
    """
    limits = limits or DecodeLimits()
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _load_stream(io.BytesIO(bytes(source)), format, limits, None)
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as stream:
            return _load_stream(stream, format, limits, os.fspath(source))
    if source.seekable():
        return _load_stream(source, format, limits, getattr(source, "name", None))
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spooled:
        shutil.copyfileobj(source, spooled, COPY_BYTES)
        spooled.seek(0)
        return _load_stream(spooled, format, limits, getattr(source, "name", None))


def _load_stream(stream: BinaryIO, format: str | None, limits: DecodeLimits, name: str | None) -> Recording:
    start = stream.tell()
    if format is not None:
        if format not in BY_NAME:
            raise UnknownFormatError(f"unknown format {format!r}; known: {', '.join(BY_NAME)}")
        chosen = BY_NAME[format]
    else:
        head = stream.read(SNIFF_BYTES)
        if not head:
            raise EventDecodeError("unknown", "empty input", 0)
        chosen = detect_format(head, name if isinstance(name, str) else None)
    stream.seek(start)
    try:
        return chosen.decode(stream, limits)
    except EventDecodeError:
        raise
    except MemoryError:
        raise EventDecodeError(chosen.name, "out of memory while decoding", status=413) from None
    except Exception as exc:  # a decoder bug must still surface as a decode error, not a crash
        raise EventDecodeError(chosen.name, f"malformed content ({type(exc).__name__})") from None
