"""cAER AEDAT 3.1 files (``#!AER-DAT3.1``): the DVS128 Gesture recordings and cAER/DV logs.

Layout: ``#`` header lines ending with ``#!END-HEADER``, then packets, little-endian. Each
packet is a 28-byte header (int16 eventType, int16 eventSource, int32 eventSize, int32
eventTSOffset, int32 eventTSOverflow, int32 eventCapacity, int32 eventNumber, int32
eventValid) followed by ``eventCapacity * eventSize`` bytes of events.

Policies:
- only polarity packets (type 1, 8-byte events: int32 data, int32 timestamp) are decoded;
  every other packet type (special, frame, IMU, ...) is skipped by its declared size;
- in a polarity event, bit 0 of data is the valid mark (invalid events are dropped), bit 1 the
  polarity (1 = ON), bits 2..16 y, bits 17..31 x; the first ``eventNumber`` events of the
  packet are read (``eventNumber > eventCapacity`` is malformed);
- timestamp (µs) = ``(eventTSOverflow << 31) | timestamp``; a negative value is malformed;
- sensor size: from the ``#Source <id>: <name>`` line (DVS128, DAVIS240/346/640, DVXplorer),
  or ``sizeX``/``sizeY`` (``dvsSizeX``/``dvsSizeY``) values anywhere in the header; with none,
  the smallest size holding every event (``sensor_from_header=False``);
- ``#Format:`` other than ``RAW`` (cAER's compressed variants) is rejected; AEDAT 3.0 files
  (``#!AER-DAT3.0``, same packet layout) are read the same way.

The file is read in 2 MB windows. Per window, a compiled walk (numba, ``nogil``) checks the packet
headers and lists the runs of polarity events, then a second compiled function makes a single pass
over those runs, writing each valid event's t, x, y, p straight into the preallocated packed output
(``EventSink``); kept apart, the event loop compiles to tighter code than one function doing both.
A packet that runs past a window carries over (events still to read, its tsOverflow, padding), so
packets of any size take the same path. A hand-written loop rather than NumPy because DVS Gesture
files hold many small packets (a Python step per packet costs as much as decoding it) and NumPy
needs a pass and a temporary per step (valid mask, compaction, timestamp, four scatters into the
13-byte records); the loop writes every event and advances the output only for valid ones, so it
has no data-dependent branch.
"""

from __future__ import annotations

import itertools
import os
import re
import struct
from typing import BinaryIO

import numba
import numpy as np

from events.chips import CHIPS, chip_from_name
from events.errors import EventDecodeError
from events.event_sink import EventSink
from events.format import DecodeLimits, Format
from events.recording import EVENT_DTYPE, Recording, smallest_sensor
from events.write_target import write_parts

NAME = "aedat3"
MAGIC = b"#!AER-DAT3"
END_HEADER = b"#!END-HEADER"
HEADER_LIMIT = 1 << 20
PACKET_HEADER = struct.Struct("<hhiiiiii")
POLARITY = 1
EVENT = np.dtype([("data", "<u4"), ("t", "<i4")])
WINDOW = 2 << 20


def _read_header(stream: BinaryIO) -> tuple[list[str], int]:
    head = stream.read(HEADER_LIMIT)
    if not head.startswith(MAGIC):
        raise EventDecodeError(NAME, "missing '#!AER-DAT3' header line", 0)
    end = head.find(END_HEADER)
    if end < 0:
        raise EventDecodeError(NAME, f"no '#!END-HEADER' line in the first {HEADER_LIMIT} bytes", len(head))
    line_end = head.find(b"\n", end)
    if line_end < 0:
        raise EventDecodeError(NAME, "header ends without a newline (truncated file)", end)
    lines = [ln.strip() for ln in head[:end].decode("latin-1").splitlines() if ln.strip()]
    return lines, line_end + 1


def header_sensor(lines: list[str]) -> tuple[int, int] | None:
    """The sensor size the header states (explicit sizes win over a known source name)."""
    text = "\n".join(lines)
    width = re.search(r"sizeX\D{0,40}?(\d+)", text, re.I)
    height = re.search(r"sizeY\D{0,40}?(\d+)", text, re.I)
    if width and height and 0 < int(width.group(1)) <= 65536 and 0 < int(height.group(1)) <= 65536:
        return int(width.group(1)), int(height.group(1))
    for line in lines:
        match = re.match(r"#-?\s*Source\s*-?\d+\s*:\s*(.*)", line)
        chip = chip_from_name(match.group(1)) if match else None
        if chip is not None:
            return chip.width, chip.height
    return None


def _check_format(lines: list[str]) -> None:
    for line in lines:
        match = re.match(r"#\s*Format\s*:\s*(\S+)", line)
        if match and match.group(1).upper() != "RAW":
            raise EventDecodeError(NAME, f"unsupported '#Format: {match.group(1)}' (only RAW)", 0)


ABSURD, PAST_END, BAD_POLARITY = 1, 2, 3
PENDING, HIGH, PADDING = 0, 1, 2
NO_SENSOR = 1 << 15  # above every x and y a polarity event can hold


@numba.njit(cache=True, nogil=True)
def _le32(buf, at):  # pragma: no cover - compiled
    """The signed little-endian int32 at ``buf[at]``."""
    v = np.int64(buf[at]) | (np.int64(buf[at + 1]) << 8) | (np.int64(buf[at + 2]) << 16) | (np.int64(buf[at + 3]) << 24)
    return v - (v >> 31 << 32)


@numba.njit(cache=True, nogil=True)
def _le64(buf, at):  # pragma: no cover - compiled
    """The little-endian int64 at ``buf[at]`` (LLVM makes this one load)."""
    value = np.int64(0)
    for i in range(8):
        value |= np.int64(buf[at + i]) << (8 * i)
    return value


@numba.njit(cache=True, nogil=True)
def _polarity_events(body, out, high, width, height):  # pragma: no cover - compiled
    """Decode the polarity events in ``body`` into ``out`` (one slot per event); returns ``(kept, problem)``.

    Every event is written and the count advances only for valid ones, so the loop has no
    data-dependent branch; a problem (a valid event with a negative timestamp or outside the
    sensor) is only flagged, and the caller finds which event it was.
    """
    kept, problem = np.uint64(0), False
    for i in range(len(body) // 8):
        event_bytes = _le64(body, 8 * i)  # int32 data, then int32 timestamp
        t, valid = event_bytes >> 32, event_bytes & 1
        x, y = (event_bytes >> 17) & 0x7FFF, (event_bytes >> 2) & 0x7FFF
        problem |= (valid == 1) & ((t < 0) | (x >= width) | (y >= height))
        event = out[kept]
        event.t, event.x, event.y, event.p = high | t, x, y, (event_bytes >> 1) & 1
        kept += np.uint64(valid)
    return kept, problem


@numba.njit(cache=True, nogil=True)
def _walk_packets(buf, to_end, state, problem, runs, kinds):  # pragma: no cover - compiled
    """Walk the packet headers in ``buf`` (``to_end`` bytes from its start to the end of the file),
    validating each; returns ``(polarity runs, skipped packets, bytes consumed)``.

    ``runs`` (one row per 36 bytes, the smallest packet with an event) gets each run of polarity
    events in ``buf``: offset, event count, ``tsOverflow << 31``; ``kinds`` (one per 28 bytes) the
    type of each skipped packet. A packet may start or end outside ``buf``: ``state`` = [polarity
    events still to read, their ``tsOverflow << 31``, padding bytes after them] carries it to the
    next window, and a body that runs past the window counts as consumed. A problem stops the walk:
    ``problem`` = [code, offset in ``buf``, the header's type, size, capacity, number, timestamp
    offset].
    """
    at, found, others, n = 0, 0, 0, len(buf)
    pending, high, padding = state[PENDING], state[HIGH], state[PADDING]
    while True:
        count = min(pending, (n - at) // 8)
        if count:
            runs[found, 0], runs[found, 1], runs[found, 2] = at, count, high
            found += 1
            pending -= count
            at += 8 * count
        if pending:
            break
        at += padding
        padding = 0
        if at + 28 > n:
            break
        kind = _le32(buf, at) << 48 >> 48
        size, ts_offset, overflow = _le32(buf, at + 4), _le32(buf, at + 8), _le32(buf, at + 12)
        capacity, number = _le32(buf, at + 16), _le32(buf, at + 20)
        problem[2], problem[3], problem[4], problem[5], problem[6] = kind, size, capacity, number, ts_offset
        if size <= 0 or capacity < 0 or number < 0 or number > capacity or overflow < 0:
            problem[0], problem[1] = ABSURD, at
            break
        if capacity * size > to_end - at - 28:
            problem[0], problem[1] = PAST_END, at
            break
        if kind == POLARITY:
            if size != 8 or ts_offset != 4:
                problem[0], problem[1] = BAD_POLARITY, at
                break
            pending, high, padding = number, overflow << 31, 8 * (capacity - number)
        else:
            kinds[others] = kind
            others += 1
            padding = capacity * size
        at += 28
    state[PENDING], state[HIGH], state[PADDING] = pending, high, padding
    return found, others, at


@numba.njit(cache=True, nogil=True)
def _decode_runs(buf, runs, out, width, height):  # pragma: no cover - compiled
    """Decode the polarity ``runs`` that ``_walk_packets`` found in ``buf`` into ``out`` (at least one
    slot per event); returns ``(kept, index of the run with a bad event or -1)``."""
    kept = 0
    for r in range(len(runs)):
        at, count, high = runs[r, 0], runs[r, 1], runs[r, 2]
        got, bad = _polarity_events(buf[at : at + 8 * count], out[kept : kept + count], high, width, height)
        if bad:
            return kept, r
        kept += np.int64(got)
    return kept, -1


def _bad_event(body: np.ndarray, offset: int, sensor) -> EventDecodeError:
    """The error for the first valid event in ``body`` that ``_polarity_events`` flagged."""
    events = body.view(EVENT)
    word, t = events["data"], events["t"]
    x, y = word >> 17, (word >> 2) & 0x7FFF
    width, height = sensor if sensor is not None else (NO_SENSOR, NO_SENSOR)
    i = int((((word & 1) == 1) & ((t < 0) | (x >= width) | (y >= height))).argmax())
    if t[i] < 0:
        return EventDecodeError(NAME, "negative event timestamp", offset + 8 * i)
    where = f"event at ({int(x[i])}, {int(y[i])}) outside the {sensor[0]}x{sensor[1]} sensor"
    return EventDecodeError(NAME, where, offset + 8 * i)


def _problem(problem: np.ndarray, pos: int) -> EventDecodeError:
    """The error for a header problem ``_walk_packets`` met in the window read at ``pos``."""
    code, at, kind, size, capacity, number, ts_offset = problem.tolist()
    if code == ABSURD:
        where = f"absurd packet header (type {kind}, size {size}, capacity {capacity}, number {number})"
    elif code == PAST_END:
        where = f"packet of {capacity} x {size} bytes runs past the end of the file"
    else:
        where = f"polarity packet with event size {size}, timestamp offset {ts_offset}"
    return EventDecodeError(NAME, where, pos + at)


def _count_kinds(skipped: dict[int, int], kinds: np.ndarray) -> None:
    """Add the skipped packet ``kinds`` of one window to ``skipped`` (new types in order of appearance)."""
    values, first, counts = np.unique(kinds, return_index=True, return_counts=True)
    for i in np.argsort(first).tolist():
        skipped[int(values[i])] = skipped.get(int(values[i]), 0) + int(counts[i])


def _read_window(stream: BinaryIO, buffer: np.ndarray, pos: int, want: int) -> np.ndarray:
    """``want`` bytes from ``pos`` into the reusable ``buffer``."""
    stream.seek(pos)
    view, got = memoryview(buffer)[:want], 0
    while got < want:
        part = stream.readinto(view[got:])
        if not part:
            raise EventDecodeError(NAME, "file ended early", pos + got)
        got += part
    return buffer[:want]


def _decode(stream: BinaryIO, limits: DecodeLimits) -> Recording:
    lines, pos = _read_header(stream)
    _check_format(lines)
    sensor = header_sensor(lines)
    end = stream.seek(0, os.SEEK_END)
    sink = EventSink(NAME, limits.max_events, (end - pos) // 8)
    width, height = sensor if sensor is not None else (NO_SENSOR, NO_SENSOR)
    state, problem = np.zeros(3, dtype=np.int64), np.zeros(7, dtype=np.int64)
    buffer = np.empty(min(WINDOW, end - pos), dtype=np.uint8)
    runs = np.empty((len(buffer) // 36 + 2, 3), dtype=np.int64)
    kinds = np.empty(len(buffer) // 28 + 1, dtype=np.int16)
    skipped: dict[int, int] = {}
    while pos < end:
        buf = _read_window(stream, buffer, pos, min(WINDOW, end - pos))
        slots = len(buf) // 8
        near_limit = sink.count + slots > sink.max_events  # decode into scratch: only the count may go to the sink
        out = np.empty(slots, dtype=EVENT_DTYPE) if near_limit else sink.reserve(slots, pos)
        found, others, used = _walk_packets(buf, end - pos, state, problem, runs, kinds)
        if problem[0]:
            raise _problem(problem, pos)
        if others:
            _count_kinds(skipped, kinds[:others])
        kept, bad = _decode_runs(buf, runs[:found], out, width, height)
        if bad >= 0:
            at, count, _ = runs[bad].tolist()
            raise _bad_event(buf[at : at + 8 * count], pos + at, sensor)
        if near_limit:
            sink.reserve(kept, pos)[:] = out[:kept]
        else:
            sink.give_back(slots - kept)
        if used == 0:
            raise EventDecodeError(NAME, "file ended inside a packet header", pos)
        pos += used
    events = sink.result()
    metadata = {"header": lines, "skipped_packets_by_type": skipped}
    if sensor is None:
        return Recording(events, smallest_sensor(events), NAME, sensor_from_header=False, metadata=metadata)
    return Recording(events, sensor, NAME, sensor_from_header=True, metadata=metadata)


def write_aedat3(
    path_or_file, events: np.ndarray, sensor_size=None, source: str | None = "DVS128", packet_events: int = 4096
) -> None:
    """Write polarity events as cAER AEDAT 3.1, ``packet_events`` per packet, all valid.

    ``source`` names the camera on the ``#Source 1:`` line (None: no source line, so readers
    fall back); a given ``sensor_size`` must match it.
    """
    if source is not None:
        chip = chip_from_name(source)
        if chip is None:
            raise ValueError(f"unknown source {source!r}; known: {', '.join(CHIPS)}")
        if sensor_size is not None and tuple(sensor_size) != (chip.width, chip.height):
            raise ValueError(f"sensor {tuple(sensor_size)} is not the {source}'s {chip.width}x{chip.height}")
    header = ["#!AER-DAT3.1", "#Format: RAW"]
    if source is not None:
        header.append(f"#Source 1: {source}")
    header += ["#Start-Time: 2017-03-08 15:28:58 (TZ+0100)", "#!END-HEADER"]
    parts = [("\r\n".join(header) + "\r\n").encode("ascii")]
    t = events["t"].astype(np.int64)
    if len(t) and int(t.min()) < 0:
        raise ValueError("AEDAT 3.1 timestamps must be non-negative")
    data = (events["x"].astype(np.uint32) << 17) | (events["y"].astype(np.uint32) << 2)
    data |= ((events["p"] > 0).astype(np.uint32) << 1) | 1
    overflow = t >> 31  # one packet holds one tsOverflow: cut where it changes, and every packet_events
    cuts = sorted({*range(0, len(t), packet_events), *(np.flatnonzero(np.diff(overflow)) + 1).tolist(), len(t)})
    for start, stop in itertools.pairwise(cuts):
        body = np.empty(stop - start, dtype=EVENT)
        body["data"] = data[start:stop]
        body["t"] = (t[start:stop] & 0x7FFFFFFF).astype(np.int32)
        n = stop - start
        parts += [PACKET_HEADER.pack(POLARITY, 1, 8, 4, int(overflow[start]), n, n, n), body.tobytes()]
    write_parts(path_or_file, parts)


AEDAT3 = Format(
    NAME, (".aedat", ".aedat3"), lambda head: head.startswith(MAGIC), _decode, "cAER AEDAT 3.1 packets (DVS128 Gesture)"
)
