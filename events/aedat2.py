"""jAER AEDAT 2.0 files (``#!AER-DAT2.0``): CIFAR10-DVS originals and DVS128/DAVIS jAER logs.

Layout: header lines that start with ``#`` (the first is ``#!AER-DAT2.0``), then big-endian
8-byte records: uint32 address, uint32 timestamp (µs). Like jAER, the header ends at the first
line that does not start with ``#``. Address layouts, as jAER's own extractors read them:

- DVS128 (128 x 128): ``x = 127 - ((a >> 1) & 0x7F)``, ``y = (a >> 8) & 0x7F``, and bit 0 set
  means OFF (jAER: ``type = 1 - (a & 1)``, so ``p = 1 - (a & 1)``). Addresses with bit 15 or
  above set are sync/stereo special events and are skipped.
- DAVIS240 (240 x 180) / DAVIS346 (346 x 260): ``y = (a >> 22) & 0x1FF``,
  ``x = W - 1 - ((a >> 12) & 0x3FF)``, ``p = (a >> 11) & 1`` (1 = ON). Records with bit 31 set
  (APS frame samples and IMU samples) and DVS records with bit 10 set (external trigger /
  special events) are skipped.

The chip comes from the ``# AEChip:`` line (else ``# HardwareInterface:``): a name containing
DVS128/Tmpdiff128, DAVIS240/SBret10 or DAVIS346. Fallback when no known chip is named: the
DVS128 layout if every address fits in 16 bits (CIFAR10-DVS files name no chip), else the
DAVIS layout with the smaller of DAVIS240 / DAVIS346 that holds every coordinate; either way
``sensor_from_header`` is False and ``metadata["chip"]`` says what was assumed.

Timestamps are 32-bit and wrap: a step back by more than 2**31 µs is a wrap and adds 2**32
from there on (smaller steps back are kept as the file gives them). The file is read in 256 KB
chunks into a preallocated output (``EventSink``); NumPy does all per-event work.
"""

from __future__ import annotations

import os
from typing import BinaryIO

import numpy as np

from events.chips import CHIPS, Chip, chip_from_name
from events.errors import EventDecodeError
from events.event_sink import EventSink
from events.format import DecodeLimits, Format
from events.recording import Recording
from events.write_target import write_parts

NAME = "aedat2"
MAGIC = b"#!AER-DAT2"
HEADER_LIMIT = 1 << 20
CHUNK_EVENTS = 1 << 15
RECORD = np.dtype([("a", ">u4"), ("t", ">u4")])
WRAP = 1 << 32


class _NotDvs128(Exception):
    """An address above 16 bits met while guessing the DVS128 layout for an unnamed chip."""


def _read_header(stream: BinaryIO) -> tuple[list[str], int]:
    """The ``#`` header lines (decoded, stripped) and the byte offset where records start."""
    head = stream.read(HEADER_LIMIT)
    if not head.startswith(MAGIC):
        raise EventDecodeError(NAME, "missing '#!AER-DAT2' header line", 0)
    lines, pos = [], 0
    while pos < len(head) and head[pos : pos + 1] == b"#":
        end = head.find(b"\n", pos)
        if end < 0:
            if len(head) == HEADER_LIMIT:
                raise EventDecodeError(NAME, f"header longer than {HEADER_LIMIT} bytes", pos)
            raise EventDecodeError(NAME, "header line not terminated (truncated file)", pos)
        lines.append(head[pos:end].decode("latin-1").strip())
        pos = end + 1
    return lines, pos


def _header_chip(lines: list[str]) -> Chip | None:
    for key in ("AEChip:", "HardwareInterface:"):
        for line in lines:
            if key in line:
                chip = chip_from_name(line.split(key, 1)[1])
                if chip is not None:
                    return chip
    return None


def _unwrap(raw_t: np.ndarray, state: list[int]) -> np.ndarray:
    """Unwrapped int64 µs timestamps; ``state`` = [last raw timestamp, wraps so far] carries across chunks."""
    t = raw_t.astype(np.int64)
    first_wraps = state[0] >= 0 and state[0] - int(t[0]) > 1 << 31
    steps = np.flatnonzero(t[:-1] - t[1:] > 1 << 31) + 1
    wraps = state[1] + first_wraps
    if len(steps) > 8:  # many wraps (only a hostile file): one cumulative pass instead of a loop
        previous = np.empty_like(t)
        previous[0], previous[1:] = (state[0] if state[0] >= 0 else t[0]), t[:-1]
        count = np.cumsum((previous - t) > (1 << 31)) + state[1]
        state[0], state[1] = int(t[-1]), int(count[-1])
        return t + (count << 32)
    if wraps:
        t += wraps << 32
    for step in steps:
        t[step:] += 1 << 32
    state[0], state[1] = int(raw_t[-1]), wraps + len(steps)
    return t


def _decode_chunk(records: np.ndarray, chip: Chip, strict_dvs128: bool, offset: int, sink: EventSink, state) -> None:
    a = records["a"]
    t = _unwrap(records["t"], state)
    if chip.layout == "dvs128":
        if strict_dvs128 and int(a.max()) > 0xFFFF:
            raise _NotDvs128
        keep = a < 0x8000
        if not keep.all():
            a, t = a[keep], t[keep]
        a = a.astype(np.uint16)  # all below 0x8000 now; 16-bit arithmetic halves the memory traffic
        sink.append(t, 127 - ((a >> 1) & 0x7F), (a >> 8) & 0x7F, 1 - (a & 1), offset)
        return
    keep = (a & 0x80000400) == 0
    if not keep.all():
        a, t = a[keep], t[keep]
    x_raw = (a >> 12) & 0x3FF
    y = (a >> 22) & 0x1FF
    if len(a) and (int(x_raw.max()) >= chip.width or int(y.max()) >= chip.height):
        raise EventDecodeError(
            NAME, f"DVS event at raw ({int(x_raw.max())}, {int(y.max())}) outside the {chip.name} sensor", offset
        )
    sink.append(t, chip.width - 1 - x_raw, y, (a >> 11) & 1, offset)


def _records(stream: BinaryIO, start: int, end: int):
    """Yield ``(byte offset, record array)`` chunks from ``start`` to ``end``."""
    stream.seek(start)
    offset = start
    while offset < end:
        want = min(CHUNK_EVENTS * 8, end - offset)
        data = stream.read(want)
        if len(data) != want:
            raise EventDecodeError(NAME, "file ended early", offset + len(data))
        yield offset, np.frombuffer(data, dtype=RECORD)
        offset += want


def _davis_fallback(stream: BinaryIO, start: int, end: int) -> Chip:
    """The smallest DAVIS sensor that holds every DVS coordinate of an unnamed chip's file."""
    max_x = max_y = 0
    for _, records in _records(stream, start, end):
        a = records["a"][(records["a"] & 0x80000400) == 0]
        if len(a):
            max_x = max(max_x, int(((a >> 12) & 0x3FF).max()))
            max_y = max(max_y, int(((a >> 22) & 0x1FF).max()))
    for chip in (CHIPS["DAVIS240"], CHIPS["DAVIS346"]):
        if max_x < chip.width and max_y < chip.height:
            return chip
    raise EventDecodeError(NAME, f"no chip named and DVS coordinates up to ({max_x}, {max_y}) fit no known sensor")


def _decode_pass(stream, start, end, chip: Chip, strict_dvs128: bool, limits: DecodeLimits) -> np.ndarray:
    sink = EventSink(NAME, limits.max_events, (end - start) // 8)
    state = [-1, 0]
    for offset, records in _records(stream, start, end):
        _decode_chunk(records, chip, strict_dvs128, offset, sink, state)
    return sink.result()


def _decode(stream: BinaryIO, limits: DecodeLimits) -> Recording:
    lines, start = _read_header(stream)
    end = stream.seek(0, os.SEEK_END)
    if (end - start) % 8:
        raise EventDecodeError(NAME, f"{(end - start) % 8} trailing bytes after the last 8-byte record", end)
    chip = _header_chip(lines)
    metadata = {"header": lines}
    if chip is not None:
        events = _decode_pass(stream, start, end, chip, False, limits)
        metadata["chip"] = chip.name
        return Recording(events, (chip.width, chip.height), NAME, sensor_from_header=True, metadata=metadata)
    try:
        chip = CHIPS["DVS128"]
        events = _decode_pass(stream, start, end, chip, True, limits)
    except _NotDvs128:
        chip = _davis_fallback(stream, start, end)
        events = _decode_pass(stream, start, end, chip, False, limits)
    metadata["chip"] = f"{chip.name} (assumed: no known chip in the header)"
    return Recording(events, (chip.width, chip.height), NAME, sensor_from_header=False, metadata=metadata)


def encode_addresses(events: np.ndarray, chip: Chip) -> np.ndarray:
    """jAER raw addresses (uint32) of polarity events for ``chip``; the inverse of the decoder."""
    x = events["x"].astype(np.uint32)
    y = events["y"].astype(np.uint32)
    on = (events["p"] > 0).astype(np.uint32)
    if len(events) and (int(x.max()) >= chip.width or int(y.max()) >= chip.height):
        raise ValueError(f"events do not fit the {chip.name} sensor ({chip.width}x{chip.height})")
    if chip.layout == "dvs128":
        return ((127 - x) << 1) | (y << 8) | (1 - on)
    return (y << 22) | ((chip.width - 1 - x) << 12) | (on << 11)


def write_aedat2(path_or_file, events: np.ndarray, sensor_size=None, chip: str | None = "DVS128") -> None:
    """Write polarity events as jAER AEDAT 2.0 for ``chip`` (None: no chip line, DVS128 layout).

    Timestamps are written modulo 2**32 (they wrap as a real recording's do).
    """
    target = CHIPS[chip.upper()] if chip else CHIPS["DVS128"]
    if sensor_size is not None and tuple(sensor_size) != (target.width, target.height):
        raise ValueError(f"sensor {tuple(sensor_size)} is not the {target.name}'s {target.width}x{target.height}")
    header = [
        "#!AER-DAT2.0",
        "# This is a raw AE data file - do not edit",
        "# Data format is int32 address, int32 timestamp (8 bytes total), repeated for each event",
        "# Timestamps tick is 1 us",
    ]
    if chip:
        header.append(f"# AEChip: {target.jaer_class}")
    records = np.empty(len(events), dtype=RECORD)
    records["a"] = encode_addresses(events, target)
    records["t"] = (events["t"].astype(np.int64) % WRAP).astype(np.uint32)
    write_parts(path_or_file, [("\r\n".join(header) + "\r\n").encode("ascii"), records.tobytes()])


AEDAT2 = Format(
    NAME, (".aedat", ".dat"), lambda head: head.startswith(MAGIC), _decode, "jAER AEDAT 2.0 (DVS128, DAVIS240/346)"
)
