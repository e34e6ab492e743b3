"""Packed event records, the byte stream a client sends when it has decoded events itself: format name ``events``.

Layout: no header; 13-byte little-endian records, one per event: ``t`` int64 µs, ``x`` uint16,
``y`` uint16, ``p`` uint8 (``EVENT_DTYPE`` packed, as ``ndarray.tobytes`` writes it). This is the
``events`` format of the live-stream protocol (DESIGN.md section 10).

Policy: records are kept in the order given (timestamps are not checked for order, as the other
decoders keep file order); ``p`` != 0 is ON. There is no geometry: the sensor is the one the
caller gives (every event must lie inside it) or else the smallest size holding every event
(``sensor_from_header=False``). Validation: a length that is not a whole number of records
(truncated), or more than ``DecodeLimits.max_events`` records, raises ``EventDecodeError``.

Speed: one compiled pass per piece (``_take``) normalises ``p``, checks the sensor and tracks the
extent while it copies the records into the output (NumPy needs four passes after a copy). A stream
(``PackedStream``) does all of a piece's work, the record held across pieces included, in one
compiled call (``_feed``) entered without numba's dispatcher, so the Python per piece is about 1 µs
of a 64 KB piece's 8; the rest is the copy into fresh memory, which the whole-file ``events.load``
makes in one long pass (BENCHMARKS.md, "Incremental decoding", with the floor of a bare copy).

Detection never picks this format (13-byte records have no magic bytes, so any content would
match): ``events.load`` reads it only with ``format="events"``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import BinaryIO

import numba
import numpy as np

from events.chunked import check_whole_words, data_end
from events.errors import EventDecodeError, LimitExceededError
from events.evt_common import as_events
from events.format import DecodeLimits, Format
from events.recording import EVENT_DTYPE, Recording
from events.write_target import write_parts

NAME = "events"
RECORD = EVENT_DTYPE.itemsize  # 13: the dtype is packed


def _check_limit(count: int, limits: DecodeLimits, offset: int) -> None:
    if count > limits.max_events:
        raise LimitExceededError(NAME, f"more than {limits.max_events} events", offset)


@numba.njit(cache=True, nogil=True)
def _take(records, out, lead, width, height, seen) -> int:  # pragma: no cover - compiled
    """Settle ``out[:lead]`` in place and ``records`` into ``out[lead:]``: ``p`` to 0 / 1, the largest
    ``x`` and ``y`` into ``seen``; the index in ``out`` of the first event outside ``width x height``,
    or -1 (then ``seen`` is left as it was).

    The piece is settled as it is copied, in one pass while each record is in registers, and the
    sensor is checked once on the maxima after the loops (a test per event that can leave the loop
    keeps it from being scheduled tightly: a third slower). In place, ``p`` is written only when it
    is not 0 / 1 (storing every event's costs as much as the rest of the loop)."""
    x_max, y_max = seen[0], seen[1]
    for i in range(lead):
        e = out[i]
        if e.p > 1:
            e.p = 1
        x_max, y_max = max(x_max, e.x), max(y_max, e.y)
    for i in range(len(records)):
        e = records[i]
        o = out[lead + i]
        x, y = e.x, e.y
        o.t, o.x, o.y, o.p = e.t, x, y, e.p != 0
        x_max, y_max = max(x_max, x), max(y_max, y)
    if (x_max >= width) | (y_max >= height):
        for i in range(lead + len(records)):
            if (out[i].x >= width) | (out[i].y >= height):
                return i
    seen[0], seen[1] = x_max, y_max
    return -1


def _raise_outside(events: np.ndarray, i: int, width: int, height: int, offset: int) -> None:
    where = f"({int(events['x'][i])}, {int(events['y'][i])})"
    raise EventDecodeError(NAME, f"event at {where} lies outside the {width}x{height} sensor", offset + RECORD * i)


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
    seen = np.full(2, -1, dtype=np.int64)
    bad = _take(events[:0], events, len(events), 1 << 16, 1 << 16, seen)
    if bad >= 0:  # pragma: no cover - a uint16 field always fits
        _raise_outside(events, bad, 1 << 16, 1 << 16, start)
    return Recording(events, _size(seen), NAME, sensor_from_header=False)


def _size(seen: np.ndarray) -> tuple[int, int]:
    """The smallest sensor holding every event (the largest ``x`` and ``y`` in ``seen``), (1, 1) if none."""
    return (int(seen[0]) + 1, int(seen[1]) + 1) if seen[0] >= 0 else (1, 1)


def write_events(path_or_file, events: np.ndarray) -> None:
    """Write events as packed 13-byte records (polarity 1 = ON)."""
    records = as_events(events).copy()
    records["p"] = records["p"] > 0
    write_parts(path_or_file, [records.tobytes()])


@numba.njit(cache=True, nogil=True)
def _feed(chunk, out, carry, state) -> int:  # pragma: no cover - compiled
    """One piece of a stream into ``out`` (``len(out)`` = the whole records the held bytes and ``chunk``
    make): the held record completed from ``chunk``'s first bytes goes first, then ``chunk``'s whole
    records (read where they lie), settled by ``_take``; ``chunk``'s last bytes are held in ``carry``.

    ``state`` is ``[held bytes, width, height, largest x, largest y]``. Returns ``_take``'s index of an
    event outside the sensor or -1; after an outside event the held bytes are left as they were. All
    of the piece's work is here, not in Python, because at 64 KB pieces each Python step around the
    copy costs a few percent of it."""
    held = state[0]
    total = held + len(chunk)
    if len(out) == 0:
        for i in range(len(chunk)):
            carry[held + i] = chunk[i]
        state[0] = total
        return -1
    head = lead = 0
    if held:
        head, lead = RECORD - held, 1
        for i in range(head):
            carry[held + i] = chunk[i]
        out[0] = np.frombuffer(carry, EVENT_DTYPE)[0]
    records = np.frombuffer(chunk[head : head + RECORD * (len(out) - lead)], EVENT_DTYPE)
    bad = _take(records, out, lead, state[1], state[2], state[3:5])
    if bad >= 0:
        return bad
    rest = total % RECORD
    for i in range(rest):
        carry[i] = chunk[len(chunk) - rest + i]
    state[0] = rest
    return -1


class PackedStream:
    """Incremental decoding of packed records: only the bytes of a record not yet complete are held.

    Per piece: one output array, filled by one compiled ``_feed`` (the held record, completed from the
    piece's first bytes in a fixed 13-byte carry, goes first; the piece's whole records are read where
    they lie and copied and settled by ``_take``; its last bytes go to the carry). At 64 KB pieces the
    Python around the copy is what costs, so the Python side only sizes the output and checks the
    limit, and calls ``_feed``'s compiled code directly (see ``_compiled_feed``).
    """

    def __init__(self, sensor_size: tuple[int, int] | None, limits: DecodeLimits):
        self.given_size = sensor_size
        self.limits = limits
        self.max_events = limits.max_events
        self.emitted = 0
        self.fed = 0  # bytes fed so far: ``fed - RECORD * emitted`` are held in ``carry``
        width, height = sensor_size or (1 << 16, 1 << 16)
        self.state = np.array([0, width, height, -1, -1], dtype=np.int64)  # see ``_feed``
        self.carry = np.zeros(RECORD, dtype=np.uint8)
        self.compiled = _compiled_feed()

    @property
    def buffered_bytes(self) -> int:
        return self.fed - RECORD * self.emitted

    @property
    def sensor_size(self) -> tuple[int, int] | None:
        return self.given_size

    def feed(self, chunk: memoryview) -> np.ndarray:
        """The records ``chunk`` (a 1-D memoryview of bytes) completes."""
        fed = self.fed + len(chunk)
        n = fed // RECORD - self.emitted
        if self.emitted + n > self.max_events:
            _check_limit(self.emitted + n, self.limits, RECORD * self.emitted)
        events = np.empty(n, EVENT_DTYPE)
        bad = self.compiled[chunk.readonly](chunk, events, self.carry, self.state)
        if bad >= 0:
            _raise_outside(events, bad, int(self.state[1]), int(self.state[2]), RECORD * self.emitted)
        self.fed = fed
        self.emitted += n
        return events

    def close(self) -> tuple[np.ndarray, tuple[int, int]]:
        check_whole_words(NAME, 0, self.fed, RECORD, "record")
        return np.empty(0, dtype=EVENT_DTYPE), self.given_size or _size(self.state[3:5])


@functools.cache
def _compiled_feed() -> dict[bool, Callable[..., int]]:
    """``_feed``'s compiled code for a read-only and for a writable byte memoryview, called without the
    dispatcher's per-call typing of four arguments (0.5 µs a call, a twentieth of a 64 KB piece); the dispatcher
    itself where numba offers no ``get_overload``. Direct calls skip numba's type checks, which is safe
    because ``feed`` passes exactly these types. Resolved at the first stream, not at import (the first
    call compiles or loads ``_feed``)."""
    compiled = {}
    for readonly in (True, False):
        chunk = memoryview(bytes(RECORD) if readonly else bytearray(RECORD))
        args = (chunk, np.empty(1, EVENT_DTYPE), np.zeros(RECORD, np.uint8), np.array([0, 1, 1, -1, -1], np.int64))
        _feed(*args)
        try:
            compiled[readonly] = _feed.get_overload(tuple(numba.typeof(a) for a in args))
        except (AttributeError, KeyError):  # pragma: no cover - a numba without it
            compiled[readonly] = _feed
    return compiled


EVENTS = Format(NAME, (".events",), lambda head: False, _decode, "packed 13-byte event records (t, x, y, p)")
