"""``events.StreamDecoder``: decode an event byte stream chunk by chunk, as it arrives.

For a live camera or an upload read piece by piece: ``feed(chunk)`` returns the events the bytes
so far complete, ``close()`` those left at the end (and checks the stream did not stop inside a
header, word, record or packet). Formats: ``evt2``, ``evt21``, ``evt3`` (Prophesee ``.raw``),
``aedat4`` (DV) and ``events`` (packed 13-byte records, ``events.packed_records``): the names of
the live-stream protocol (DESIGN.md section 10), which are also ``events.FORMATS`` names.

Contract: wherever the stream is cut, the concatenated outputs of every ``feed`` and ``close``
equal ``events.load(whole stream).events`` exactly, and ``sensor_size`` after ``close`` equals its
``sensor_size``: each format reuses its file decoder's own loop and state (nothing is decoded
twice), so every policy (time stepping back, wraps, geometry) is the file decoder's. Malformed
input raises ``EventDecodeError`` at the ``feed`` where it becomes certain, or at ``close`` for a
truncated tail, under the same ``DecodeLimits``; after an error every call raises it again.

Memory: a decoder holds only what it cannot decode yet (``buffered_bytes``): a header until it is
complete, then at most one incomplete word or record (EVT, packed) or one packet (AEDAT 4), never
the stream. ``sensor_size`` is None until known: from the header once it is read, else the
``sensor_size`` given (streams that state none: packed records, EVT without geometry, an AEDAT 4
stream without sizes; events must then lie inside it), else, at ``close``, the smallest size
holding every event (as ``events.load``).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from events.errors import EventDecodeError, UnknownFormatError
from events.format import DecodeLimits
from events.packed_records import PackedStream
from events.recording import EVENT_DTYPE
from events.stream_aedat4 import Aedat4Stream
from events.stream_prophesee import VERSIONS, EvtStream

STREAM_FORMATS = ("evt3", "evt2", "evt21", "aedat4", "events")


class _FormatStream(Protocol):
    buffered_bytes: int
    sensor_size: tuple[int, int] | None

    def feed(self, chunk: memoryview) -> np.ndarray: ...

    def close(self) -> tuple[np.ndarray, tuple[int, int]]: ...


def _open(format: str, sensor_size: tuple[int, int] | None, limits: DecodeLimits) -> _FormatStream:
    if format in VERSIONS:
        return EvtStream(format, sensor_size, limits)
    if format == "aedat4":
        return Aedat4Stream(sensor_size, limits)
    if format == "events":
        return PackedStream(sensor_size, limits)
    raise UnknownFormatError(f"no stream decoder for format {format!r}; known: {', '.join(STREAM_FORMATS)}")


class StreamDecoder:
    """Incremental decoder of one byte stream of a known format (see the module docstring)."""

    def __init__(self, format: str, sensor_size: tuple[int, int] | None = None, *, limits: DecodeLimits | None = None):
        if sensor_size is not None:
            sensor_size = (int(sensor_size[0]), int(sensor_size[1]))
            if sensor_size[0] < 1 or sensor_size[1] < 1:
                raise ValueError(f"sensor_size must be positive, got {sensor_size}")
        self.format = format
        self.limits = limits or DecodeLimits()
        self._stream = _open(format, sensor_size, self.limits)
        self._final_size: tuple[int, int] | None = None
        self._error: EventDecodeError | None = None
        self.bytes_fed = 0
        self.events_decoded = 0

    @property
    def sensor_size(self) -> tuple[int, int] | None:
        """The sensor size once known (see the module docstring), None before."""
        return self._final_size or self._stream.sensor_size

    @property
    def buffered_bytes(self) -> int:
        """Bytes held because they do not yet make a whole header, word, record or packet."""
        return self._stream.buffered_bytes

    @property
    def closed(self) -> bool:
        return self._final_size is not None

    def feed(self, chunk: bytes | bytearray | memoryview) -> np.ndarray:
        """The events (``EVENT_DTYPE``) completed by ``chunk``, in stream order; possibly none."""
        if self._final_size is not None:
            raise RuntimeError("feed() after close()")
        if self._error is not None:
            raise self._error
        view = memoryview(chunk).cast("B")
        try:  # inline rather than through a helper: a live stream calls this per 64 KB
            events = self._stream.feed(view)
        except Exception as exc:
            raise self._failed(exc) from _cause(exc)
        self.bytes_fed += len(view)
        self.events_decoded += len(events)
        return events

    def close(self) -> np.ndarray:
        """The events left at the end of the stream; raises if it stopped inside a unit."""
        if self._final_size is not None:
            return np.empty(0, dtype=EVENT_DTYPE)
        if self._error is not None:
            raise self._error
        try:
            events, size = self._stream.close()
        except Exception as exc:
            raise self._failed(exc) from _cause(exc)
        self._final_size = size
        self.events_decoded += len(events)
        return events

    def _failed(self, exc: Exception) -> EventDecodeError:
        """The decode error ``exc`` becomes, kept so that every later call raises it again (as ``events.load``
        turns any failure into an ``EventDecodeError``)."""
        if isinstance(exc, EventDecodeError):
            self._error = exc
        elif isinstance(exc, MemoryError):
            self._error = EventDecodeError(self.format, "out of memory while decoding", status=413)
        else:  # a decoder bug must still surface as a decode error, not a crash
            self._error = EventDecodeError(self.format, f"malformed content ({type(exc).__name__})")
        return self._error


def _cause(exc: Exception) -> BaseException | None:
    """What a re-raised decode error chains to: a bug's original exception; nothing for the others."""
    return None if isinstance(exc, EventDecodeError | MemoryError) else exc
