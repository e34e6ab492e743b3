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

The file is read in 256 KB windows (cache-sized, so NumPy's temporaries stay in L2); the polarity
packets of a window are decoded together in one NumPy pass (a packet larger than a window is read
on its own in pieces) into a preallocated output.
"""

from __future__ import annotations

import itertools
import os
import re
import struct
from typing import BinaryIO

import numpy as np

from events.chips import CHIPS, chip_from_name
from events.errors import EventDecodeError
from events.event_sink import EventSink
from events.format import DecodeLimits, Format
from events.recording import Recording, smallest_sensor
from events.write_target import write_parts

NAME = "aedat3"
MAGIC = b"#!AER-DAT3"
END_HEADER = b"#!END-HEADER"
HEADER_LIMIT = 1 << 20
PACKET_HEADER = struct.Struct("<hhiiiiii")
POLARITY = 1
EVENT = np.dtype([("data", "<u4"), ("t", "<i4")])
CHUNK_EVENTS = 1 << 15
WINDOW = 256 << 10


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


def _decode_block(events: np.ndarray, high, offset_of, sensor, sink: EventSink) -> None:
    """Decode polarity ``events`` into ``sink``; ``high`` holds each event's ``tsOverflow << 31``
    (a scalar or an array) and ``offset_of(i)`` the file offset of event ``i``, for errors."""
    if len(events) == 0:
        return
    word, t = events["data"], events["t"]
    valid = (word & 1) == 1
    x, y = word >> 17, (word >> 2) & 0x7FFF
    if len(t) and int(t.min()) < 0 and (bad := valid & (t < 0)).any():
        raise EventDecodeError(NAME, "negative event timestamp", offset_of(int(bad.argmax())))
    if sensor is not None and len(t) and (int(x.max()) >= sensor[0] or int(y.max()) >= sensor[1]):
        bad = valid & ((x >= sensor[0]) | (y >= sensor[1]))
        if bad.any():
            i = int(bad.argmax())
            where = f"event at ({int(x[i])}, {int(y[i])}) outside the {sensor[0]}x{sensor[1]} sensor"
            raise EventDecodeError(NAME, where, offset_of(i))
    if not valid.all():
        word, t, x, y = word[valid], t[valid], x[valid], y[valid]
        high = high[valid] if isinstance(high, np.ndarray) else high
    full_t = t if isinstance(high, int) and high == 0 else high | t.astype(np.int64)
    sink.append(full_t, x, y, (word >> 1) & 1, offset_of(0))


def _stream_packet(stream, offset, number, overflow, sensor, sink: EventSink) -> None:
    """A polarity packet too large for the read window, read in bounded pieces."""
    stream.seek(offset)
    for done in range(0, number, CHUNK_EVENTS):
        n = min(CHUNK_EVENTS, number - done)
        data = stream.read(n * 8)
        if len(data) != n * 8:
            raise EventDecodeError(NAME, "file ended inside a polarity packet", offset + done * 8 + len(data))
        base = offset + done * 8
        _decode_block(np.frombuffer(data, dtype=EVENT), overflow << 31, lambda i, b=base: b + 8 * i, sensor, sink)


def _decode_window(window: bytes, bodies: list[int], counts: list[int], overflows: list[int], base, sensor, sink):
    """Decode the polarity packets found in one read window as a single block."""
    view = memoryview(window)
    data = b"".join(view[b : b + 8 * n] for b, n in zip(bodies, counts, strict=True))
    events = np.frombuffer(data, dtype=EVENT)
    ends = np.cumsum(counts)

    def offset_of(i: int) -> int:
        k = int(np.searchsorted(ends, i, side="right"))
        return base + bodies[k] + 8 * (i - (int(ends[k - 1]) if k else 0))

    high = np.repeat(np.asarray(overflows, dtype=np.int64) << 31, counts) if any(overflows) else 0
    _decode_block(events, high, offset_of, sensor, sink)


def _packet(window: bytes, at: int, offset: int, end: int) -> tuple[int, int, int, int, int]:
    """``(type, tsOverflow, eventNumber, body length, event size)`` of the header at ``at``, validated."""
    kind, _source, size, ts_offset, overflow, capacity, number, _valid = PACKET_HEADER.unpack_from(window, at)
    if size <= 0 or capacity < 0 or number < 0 or number > capacity or overflow < 0:
        problem = f"absurd packet header (type {kind}, size {size}, capacity {capacity}, number {number})"
        raise EventDecodeError(NAME, problem, offset)
    if capacity * size > end - offset - PACKET_HEADER.size:
        raise EventDecodeError(NAME, f"packet of {capacity} x {size} bytes runs past the end of the file", offset)
    if kind == POLARITY and (size != 8 or ts_offset != 4):
        raise EventDecodeError(NAME, f"polarity packet with event size {size}, timestamp offset {ts_offset}", offset)
    return kind, overflow, number, capacity * size, size


def _decode(stream: BinaryIO, limits: DecodeLimits) -> Recording:
    lines, pos = _read_header(stream)
    _check_format(lines)
    sensor = header_sensor(lines)
    end = stream.seek(0, os.SEEK_END)
    sink = EventSink(NAME, limits.max_events, (end - pos) // 8)
    skipped: dict[int, int] = {}
    while pos < end:
        stream.seek(pos)
        window = stream.read(min(WINDOW, end - pos))
        at = 0
        bodies, counts, overflows = [], [], []
        while at + PACKET_HEADER.size <= len(window):
            kind, overflow, number, length, _ = _packet(window, at, pos + at, end)
            body = at + PACKET_HEADER.size
            if body + length > len(window):
                if at == 0:  # larger than the window: handled on its own, then the window restarts after it
                    if kind == POLARITY:
                        _stream_packet(stream, pos + body, number, overflow, sensor, sink)
                    else:
                        skipped[kind] = skipped.get(kind, 0) + 1
                    at = body + length
                break
            if kind == POLARITY:
                bodies.append(body)
                counts.append(number)
                overflows.append(overflow)
            else:
                skipped[kind] = skipped.get(kind, 0) + 1
            at = body + length
        if at == 0:
            raise EventDecodeError(NAME, "file ended inside a packet header", pos)
        if bodies:
            _decode_window(window, bodies, counts, overflows, pos, sensor, sink)
        pos += at
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
