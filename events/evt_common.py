"""Pieces the Prophesee decoders and writers share: opening the word stream, recordings,
coordinate checks, vector masks, and the TIME_HIGH sequence the writers emit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from events.chunked import check_whole_words, data_end
from events.errors import EventDecodeError
from events.prophesee_header import PropheseeHeader, read_header, sensor_for
from events.recording import EVENT_DTYPE, Recording, smallest_sensor


class Extent:
    """The largest column and row seen so far (so the fallback sensor size needs no pass over the output)."""

    def __init__(self) -> None:
        self.x = -1
        self.y = -1

    def update(self, x: np.ndarray, y: np.ndarray) -> None:
        if len(x):
            self.x = max(self.x, int(x.max()))
            self.y = max(self.y, int(y.max()))

    def size(self) -> tuple[int, int]:
        return (self.x + 1, self.y + 1) if self.x >= 0 else (1, 1)


@dataclass(slots=True)
class TimeHighState:
    """What EVT 2.0 / 2.1 decoding carries from one word to the next: the time base and its wraps."""

    started: bool = False  # a TIME_HIGH has been seen (words before the first are dropped)
    raw: int = 0  # last TIME_HIGH value (28 bits)
    loops: int = 0  # 34-bit wraps so far


@dataclass(frozen=True)
class EvtBody:
    """Where an EVT file's words are, what its header says, and the sensor events must fit."""

    header: PropheseeHeader
    size: tuple[int, int] | None
    start: int
    end: int


def open_evt_body(stream: BinaryIO, fmt: str, version: str, word_bytes: int, max_size: int) -> EvtBody:
    """Read the ``%`` header, check it declares ``version`` (or none), and that the body is whole words."""
    header = read_header(stream, fmt, max_size, max_size)
    check_evt_version(header, fmt, version)
    start, end = header.data_offset, data_end(stream)
    check_whole_words(fmt, start, end, word_bytes)
    return EvtBody(header, sensor_for(header)[0], start, end)


def check_evt_version(header: PropheseeHeader, fmt: str, version: str) -> None:
    """Raise if the header declares an EVT version other than ``version`` (none declared is fine)."""
    if header.evt_version not in (None, version):
        raise EventDecodeError(fmt, f"the header declares EVT {header.evt_version}, not EVT {version}", 0)


def make_recording(
    fmt: str, events: np.ndarray, header: PropheseeHeader, extra: dict | None = None, extent: Extent | None = None
) -> Recording:
    """The ``Recording`` for decoded events under the header's sensor-size policy."""
    size, source = sensor_for(header)
    metadata = header.metadata()
    if extra:
        metadata.update(extra)
    if size is None:
        metadata["sensor_source"] = "smallest size holding every event (the header states no size)"
        fallback = extent.size() if extent is not None else smallest_sensor(events)
        return Recording(events, fallback, fmt, sensor_from_header=False, metadata=metadata)
    metadata["sensor_source"] = source
    return Recording(events, size, fmt, sensor_from_header=True, metadata=metadata)


def check_inside(fmt: str, x: np.ndarray, y: np.ndarray, size, offset_of) -> None:
    """Raise if any event lies outside ``size``; ``offset_of(i)`` is the byte offset of event ``i``'s word."""
    if size is None or len(x) == 0:
        return
    width, height = size
    if int(x.max()) < width and int(y.max()) < height:
        return
    i = int(np.argmax((x >= width) | (y >= height)))
    raise EventDecodeError(
        fmt, f"event at ({int(x[i])}, {int(y[i])}) lies outside the {width}x{height} sensor", offset_of(i)
    )


def mask_bits(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(word, bit)`` of every set bit of the uint32 ``masks``, word by word, low bit first.

    One round per bit rank: each round takes the lowest set bit of every mask that still has one
    (``m & -m``; its index is the popcount of that bit minus one) and writes it to its slot, so the
    cost follows the number of events, not the mask width.
    """
    masks = np.asarray(masks, dtype=np.uint32)
    counts = np.bitwise_count(masks).astype(np.int64)
    n = int(counts.sum())
    word = np.empty(n, dtype=np.int64)
    bit = np.empty(n, dtype=np.uint8)
    if n == len(masks) and (n == 0 or int(counts.min()) == 1):  # one bit each: the common case
        word[:] = np.arange(n)
        np.bitwise_count((masks & (0 - masks)) - np.uint32(1), out=bit)
        return word, bit
    active = np.flatnonzero(counts)
    slot = (np.cumsum(counts) - counts)[active]
    m = masks[active]
    while len(active):
        low = m & (0 - m)
        word[slot] = active
        bit[slot] = np.bitwise_count(low - np.uint32(1))
        m ^= low
        slot += 1
        left = np.flatnonzero(m)
        if len(left) < len(m):
            active, m, slot = active[left], m[left], slot[left]
    return word, bit


def time_high_stops(previous: int, target: int, period: int, step: int) -> np.ndarray:
    """The TIME_HIGH values (absolute, in time-high units) a writer emits to move from ``previous`` to ``target``.

    Every value in ``(previous, target]`` that is a multiple of ``step`` or the last value of a
    ``period`` (so each wrap is seen as ``period - 1 -> 0``), then ``target`` itself. Every decoder
    (OpenEB, faery, the evt3 package) unwraps that sequence the same way.
    """
    if target <= previous:
        return np.array([target], dtype=np.int64)
    multiples = np.arange((previous // step + 1) * step, target + 1, step, dtype=np.int64)
    tops = np.arange((previous + 1) // period * period + period - 1, target + 1, period, dtype=np.int64)
    stops = np.union1d(multiples, tops)
    if len(stops) == 0 or stops[-1] != target:
        stops = np.append(stops, np.int64(target))
    return stops


def time_high_sequence(units: np.ndarray, period: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    """TIME_HIGH words a writer needs before each of ``units`` (increasing targets; the first starts from nothing).

    Returns ``(counts, values)``: how many TIME_HIGH words go before each target and all their
    absolute values in order (the stops of ``time_high_stops``; almost always just the target).
    """
    units = np.asarray(units, dtype=np.int64)
    previous = np.empty_like(units)
    previous[:1] = -1
    previous[1:] = units[:-1]
    counted = (units % step == 0) | (units % period == period - 1)
    counts = units // step - previous // step + (units + 1) // period - (previous + 1) // period + ~counted
    values = np.repeat(units, counts)
    multi = np.flatnonzero(counts > 1)
    if len(multi):
        ends = np.cumsum(counts)
        for i in multi:
            values[ends[i] - counts[i] : ends[i]] = time_high_stops(int(previous[i]), int(units[i]), period, step)
    return counts, values


def ragged_arange(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``concatenate([arange(s, s + c) for s, c in zip(starts, counts)])`` without the loop."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    offsets = np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(np.asarray(starts, dtype=np.int64), counts) + (np.arange(total, dtype=np.int64) - offsets)


def check_writable(events: np.ndarray, sensor_size, max_width: int, max_height: int, fmt: str) -> tuple[int, int]:
    """Validate events for a writer; returns the sensor size to write (the smallest holding all if None)."""
    events = np.asarray(events)
    if events.dtype.names is None or not {"t", "x", "y", "p"} <= set(events.dtype.names):
        raise ValueError("events must be a structured array with fields t, x, y, p")
    size = smallest_sensor(events) if sensor_size is None else (int(sensor_size[0]), int(sensor_size[1]))
    if not (1 <= size[0] <= max_width and 1 <= size[1] <= max_height):
        raise ValueError(f"{fmt} cannot describe a {size[0]}x{size[1]} sensor (at most {max_width}x{max_height})")
    if len(events):
        t = events["t"]
        if int(t.min()) < 0:
            raise ValueError(f"{fmt} timestamps must be non-negative")
        if np.any(np.diff(t.astype(np.int64)) < 0):
            raise ValueError(f"{fmt} needs timestamps in non-decreasing order")
        if int(events["x"].max()) >= size[0] or int(events["y"].max()) >= size[1]:
            raise ValueError(f"events do not fit the {size[0]}x{size[1]} sensor")
    return size


def as_events(events) -> np.ndarray:
    return np.asarray(events).astype(EVENT_DTYPE, copy=False)
