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
from there on (smaller steps back are kept as the file gives them).

The file is read in 2 MB windows, each decoded by one compiled pass (numba, ``nogil``) that reads
the raw bytes, unwraps the timestamp, drops skipped records and writes t, x, y, p straight into the
preallocated packed output (``EventSink``). A hand-written loop rather than NumPy because NumPy
needs a pass and a temporary per step (byte swap, unwrap, mask, compaction, four scatters into the
13-byte records), several times the memory traffic of writing the output once; the loop writes
every record and advances the output only for kept ones, so it has no data-dependent branch.
"""

from __future__ import annotations

import os
from typing import BinaryIO

import numba
import numpy as np

from events.chips import CHIPS, Chip, chip_from_name
from events.chunked import read_words
from events.errors import EventDecodeError
from events.event_sink import EventSink
from events.format import DecodeLimits, Format
from events.recording import EVENT_DTYPE, Recording
from events.write_target import write_parts

NAME = "aedat2"
MAGIC = b"#!AER-DAT2"
HEADER_LIMIT = 1 << 20
CHUNK_EVENTS = 1 << 18
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


@numba.njit(cache=True, nogil=True)
def _swap(word):  # pragma: no cover - compiled
    """A big-endian uint32 read as little-endian, put right (LLVM makes this one bswap)."""
    return ((word & 0xFF) << 24) | ((word & 0xFF00) << 8) | ((word >> 8) & 0xFF00) | (word >> 24)


@numba.njit(cache=True, nogil=True)
def _decode_records(words, out, state, davis, width, height, strict):  # pragma: no cover - compiled
    """Decode records (``words``: the raw bytes as native uint32, two per record) into ``out`` (at
    least one slot per record) in one pass.

    Returns ``(events kept, problem)``: a problem is an address above 16 bits in ``strict`` DVS128
    mode, or a DAVIS DVS event outside ``width x height`` (the caller finds which). Every record is
    written and the count advances only for kept ones, so the loop has no data-dependent branch.
    ``state`` = [last raw timestamp (-1: none yet), wraps so far] carries the unwrap across windows.
    """
    if len(words) == 0:
        return np.uint64(0), False
    last = state[0] if state[0] >= 0 else _swap(words[1])
    wraps, kept, problem = state[1], np.uint64(0), False
    for i in range(len(words) // 2):
        a, t = _swap(words[2 * i]), _swap(words[2 * i + 1])
        wraps += last - t > 1 << 31
        last = t
        event = out[kept]
        event.t = t + (wraps << 32)
        if davis:
            x_raw, y = (a >> 12) & 0x3FF, (a >> 22) & 0x1FF
            keep = (a & 0x80000400) == 0
            problem |= keep & ((x_raw >= width) | (y >= height))
            event.x, event.y, event.p = width - 1 - x_raw, y, (a >> 11) & 1
        else:
            keep = a < 0x8000
            problem |= strict & (a > 0xFFFF)
            event.x, event.y, event.p = (~a >> 1) & 0x7F, (a >> 8) & 0x7F, ~a & 1
        kept += np.uint64(keep)
    state[0], state[1] = last, wraps
    return kept, problem


def _outside(buf: np.ndarray, chip: Chip, offset: int) -> EventDecodeError:
    """The error for the first DVS event in ``buf`` outside ``chip`` (``_decode_records`` saw one)."""
    a = buf.view(RECORD)["a"]
    x_raw, y = (a >> 12) & 0x3FF, (a >> 22) & 0x1FF
    i = int((((a & 0x80000400) == 0) & ((x_raw >= chip.width) | (y >= chip.height))).argmax())
    problem = f"DVS event at raw ({int(x_raw[i])}, {int(y[i])}) outside the {chip.name} sensor"
    return EventDecodeError(NAME, problem, offset + 8 * i)


def _davis_fallback(stream: BinaryIO, start: int, end: int) -> Chip:
    """The smallest DAVIS sensor that holds every DVS coordinate of an unnamed chip's file."""
    max_x = max_y = 0
    for _, records in read_words(stream, NAME, start, end, RECORD, CHUNK_EVENTS * 8):
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
    state = np.array([-1, 0], dtype=np.int64)
    davis = chip.layout != "dvs128"
    for offset, buf in read_words(stream, NAME, start, end, np.uint8, CHUNK_EVENTS * 8):
        n = len(buf) // 8
        near_limit = sink.count + n > sink.max_events  # decode into scratch: only the count may go to the sink
        out = np.empty(n, dtype=EVENT_DTYPE) if near_limit else sink.reserve(n, offset)
        kept, problem = _decode_records(buf.view(np.uint32), out, state, davis, chip.width, chip.height, strict_dvs128)
        if problem:
            raise _outside(buf, chip, offset) if davis else _NotDvs128
        if near_limit:
            sink.reserve(kept, offset)[:] = out[:kept]
        else:
            sink.give_back(n - kept)
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
