"""Packed event records, the byte stream a client sends when it has decoded events itself: format name ``events``.

Layout: no header; 13-byte little-endian records, one per event: ``t`` int64 µs, ``x`` uint16,
``y`` uint16, ``p`` uint8 (``EVENT_DTYPE`` packed, as ``ndarray.tobytes`` writes it). This is the
``events`` format of the live-stream protocol (DESIGN.md section 10).

Policy: records are kept in the order given (timestamps are not checked for order, as the other
decoders keep file order); ``p`` != 0 is ON. There is no geometry: the sensor is the one the
caller gives (every event must lie inside it) or else the smallest size holding every event
(``sensor_from_header=False``). Validation: a length that is not a whole number of records
(truncated), or more than ``DecodeLimits.max_events`` records, raises ``EventDecodeError``.

Speed: one compiled pass per piece normalises ``p``, checks the sensor and tracks the extent
(NumPy needs four, which at the 64 KB pieces of a live stream cost more than copying the bytes).

Detection never picks this format (13-byte records have no magic bytes, so any content would
match): ``events.load`` reads it only with ``format="events"``.
"""

from __future__ import annotations

from typing import BinaryIO

import numba
import numpy as np

from events.chunked import check_whole_words, data_end
from events.errors import EventDecodeError, LimitExceededError
from events.evt_common import Extent, as_events
from events.format import DecodeLimits, Format
from events.recording import EVENT_DTYPE, Recording
from events.write_target import write_parts

NAME = "events"
RECORD = EVENT_DTYPE.itemsize  # 13: the dtype is packed


def _check_limit(count: int, limits: DecodeLimits, offset: int) -> None:
    if count > limits.max_events:
        raise LimitExceededError(NAME, f"more than {limits.max_events} events", offset)


@numba.njit(cache=True, nogil=True)
def _settle(events, width, height, extent) -> int:  # pragma: no cover - compiled
    """One pass: ``p`` to 0 / 1, the largest ``x`` and ``y`` into ``extent``; the first event outside
    ``width x height`` or -1. (NumPy needs four passes, which at 64 KB chunks cost more than the copy.)"""
    for i in range(len(events)):
        e = events[i]
        if (e.x >= width) | (e.y >= height):
            return i
        e.p = e.p != 0
        extent[0] = max(extent[0], e.x)
        extent[1] = max(extent[1], e.y)
    return -1


def _settle_checked(events: np.ndarray, size: tuple[int, int] | None, extent: Extent, offset: int) -> None:
    """Normalise ``p`` and track the extent; raise for an event outside ``size`` (when given)."""
    width, height = size or (1 << 16, 1 << 16)
    seen = np.array([extent.x, extent.y], dtype=np.int64)
    i = _settle(events, width, height, seen)
    if i >= 0:
        where = f"({int(events['x'][i])}, {int(events['y'][i])})"
        raise EventDecodeError(NAME, f"event at {where} lies outside the {width}x{height} sensor", offset + RECORD * i)
    extent.x, extent.y = int(seen[0]), int(seen[1])


def _decode(stream: BinaryIO, limits: DecodeLimits) -> Recording:
    end = data_end(stream)
    start = stream.tell()
    check_whole_words(NAME, start, end, RECORD, "record")
    _check_limit((end - start) // RECORD, limits, start)
    events = np.empty((end - start) // RECORD, dtype=EVENT_DTYPE)
    view = memoryview(events.view(np.uint8))
    got = 0
    while got < len(view):
        n = stream.readinto(view[got:])
        if not n:
            raise EventDecodeError(NAME, "file ended early", start + got)
        got += n
    extent = Extent()
    _settle_checked(events, None, extent, start)
    return Recording(events, extent.size(), NAME, sensor_from_header=False)


def write_events(path_or_file, events: np.ndarray) -> None:
    """Write events as packed 13-byte records (polarity 1 = ON)."""
    records = as_events(events).copy()
    records["p"] = records["p"] > 0
    write_parts(path_or_file, [records.tobytes()])


class PackedStream:
    """Incremental decoding of packed records: only the bytes of a record not yet complete are held."""

    def __init__(self, sensor_size: tuple[int, int] | None, limits: DecodeLimits):
        self.given_size = sensor_size
        self.limits = limits
        self.emitted = 0
        self.extent = Extent()
        self.carry = b""
        self.offset = 0  # byte offset of the first byte of ``carry``

    @property
    def buffered_bytes(self) -> int:
        return len(self.carry)

    @property
    def sensor_size(self) -> tuple[int, int] | None:
        return self.given_size

    def feed(self, chunk: memoryview) -> np.ndarray:
        have = len(self.carry) + len(chunk)
        n = have // RECORD
        if n == 0:
            self.carry += chunk
            return np.empty(0, dtype=EVENT_DTYPE)
        _check_limit(self.emitted + n, self.limits, self.offset)
        events = np.empty(n, dtype=EVENT_DTYPE)
        raw = events.view(np.uint8)
        split = n * RECORD - len(self.carry)
        raw[: len(self.carry)] = np.frombuffer(self.carry, dtype=np.uint8)
        raw[len(self.carry) :] = np.frombuffer(chunk, dtype=np.uint8, count=split)
        _settle_checked(events, self.given_size, self.extent, self.offset)
        self.carry = bytes(chunk[split:])
        self.offset += n * RECORD
        self.emitted += n
        return events

    def close(self) -> tuple[np.ndarray, tuple[int, int]]:
        check_whole_words(NAME, 0, self.offset + len(self.carry), RECORD, "record")
        return np.empty(0, dtype=EVENT_DTYPE), self.given_size or self.extent.size()


EVENTS = Format(NAME, (".events",), lambda head: False, _decode, "packed 13-byte event records (t, x, y, p)")
