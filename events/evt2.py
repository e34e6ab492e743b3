"""Prophesee EVT 2.0 ``.raw`` files (Gen3/Gen3.1/Gen4 sensors): format name ``evt2``.

Layout: a ``%`` header (see ``events.prophesee_header``), then little-endian 32-bit words whose
top 4 bits are the type:

- ``0x0`` CD_OFF / ``0x1`` CD_ON: ``y`` bits 0-10, ``x`` bits 11-21, 6-bit time low bits 22-27;
  the event's time is ``TIME_HIGH << 6 | time low`` µs and its polarity the type (1 = ON);
- ``0x8`` EVT_TIME_HIGH: bits 0-27 are bits 6-33 of the time;
- ``0xA`` EXT_TRIGGER, ``0xE`` OTHERS, ``0xF`` CONTINUED and the unused types are skipped
  (trigger / external events are not part of the output).

Policy, as OpenEB's ``EVT2Decoder`` with time shifting off (the vendor decoder):

- words before the first TIME_HIGH are dropped (there is no time base yet);
- the 34-bit time wraps: a TIME_HIGH more than ``2**34 - 64 - 10000`` µs below the previous one
  starts a new loop (adds ``2**34``); a smaller step back is taken as it is, so the timestamps
  go back too (faery instead treats every step back as a wrap and clamps time to its running
  maximum; both agree on every recording that keeps time in order);
- a CD event's timestamp is exactly ``time high + time low``; nothing is clamped or reordered;
- faery's ``% t0`` header line, when present, is added to every timestamp.

Validation (hostile input): a file that ends inside a word, an event outside the sensor size
(stated or derived, see ``events.prophesee_header``), a header that declares another EVT
version, or more than ``DecodeLimits.max_events`` events raise ``EventDecodeError``. Gen3
files whose header has no geometry (e.g. ``plugin_name hal_plugin_gen3_fx3``) get 640x480 from
the generation; files naming nothing known get the smallest size holding every event and
``sensor_from_header=False``.

Speed: NumPy over 2 MB chunks in pieces of 64K words (the temporaries stay in cache). Non-CD
words (a few percent) are located once; each CD word's time high comes from ``np.repeat`` of the
per-TIME_HIGH base over the runs between them, so no per-word state array is built.
"""

from __future__ import annotations

from typing import BinaryIO

import numpy as np

from events.chunked import read_words
from events.event_sink import EventSink
from events.evt_common import (
    Extent,
    TimeHighState,
    as_events,
    check_inside,
    check_writable,
    make_recording,
    open_evt_body,
    ragged_arange,
    time_high_sequence,
)
from events.format import DecodeLimits, Format
from events.prophesee_header import header_bytes, sniff_evt_version
from events.recording import Recording
from events.write_target import write_parts

NAME = "evt2"
MAX_SIZE = 2048  # 11-bit x and y
CD_END = 0x2000_0000  # CD_OFF and CD_ON are the words below 2**29
TIME_HIGH = 0x8
# OpenEB: a TIME_HIGH at least MaxTimestamp - LoopThreshold below the last one is a wrap.
WRAP_MIN_US = ((1 << 28) - 1) * 64 - 10_000
LOOP_US = 1 << 34
PIECE_WORDS = 1 << 16  # NumPy temporaries of a piece stay in cache


def _decode_piece(words: np.ndarray, offset: int, state: TimeHighState, sink: EventSink, size, t0: int, extent) -> None:
    if not state.started:
        th = np.flatnonzero((words >> 28) == TIME_HIGH)
        if len(th) == 0:
            return
        first = int(th[0])
        words = words[first:]
        offset += 4 * first
        state.started = True
        state.raw = int(words[0]) & 0x0FFF_FFFF
    cd = words < CD_END
    other = np.flatnonzero(~cd)
    other_words = words[other]
    th_rank = np.flatnonzero((other_words >> 28) == TIME_HIGH)
    raw = (other_words[th_rank] & 0x0FFF_FFFF).astype(np.int64)
    base = np.empty(len(raw) + 1, dtype=np.int64)
    base[0] = state.raw * 64 + state.loops * LOOP_US + t0
    if len(raw):
        previous = np.empty_like(raw)
        previous[0] = state.raw
        previous[1:] = raw[:-1]
        loops = np.cumsum((previous - raw) * 64 >= WRAP_MIN_US) + state.loops
        np.multiply(raw, 64, out=base[1:])
        base[1:] += loops * LOOP_US + t0
        state.raw = int(raw[-1])
        state.loops = int(loops[-1])
    cd_words = words[cd]
    n = len(cd_words)
    if n == 0:
        return
    # CD words before each TIME_HIGH: its position minus the non-CD words before it.
    before = other[th_rank] - th_rank
    x = cd_words >> 11
    x &= 0x7FF
    y = cd_words & 0x7FF
    check_inside(NAME, x, y, size, lambda i: offset + 4 * int(np.flatnonzero(cd)[i]))
    if size is None:
        extent.update(x, y)
    t = np.repeat(base, np.diff(before, prepend=0, append=n))
    low = cd_words >> 22
    low &= 0x3F
    t += low
    out = sink.reserve(n, offset)
    out["t"] = t
    out["x"] = x
    out["y"] = y
    out["p"] = cd_words >> 28


def decode_words(
    words: np.ndarray, offset: int, state: TimeHighState, sink: EventSink, size, t0: int, extent: Extent
) -> None:
    """Decode consecutive words (``offset``: the byte offset of the first) into ``sink``, carrying ``state``."""
    for i in range(0, len(words), PIECE_WORDS):
        _decode_piece(words[i : i + PIECE_WORDS], offset + 4 * i, state, sink, size, t0, extent)


def _decode(stream: BinaryIO, limits: DecodeLimits) -> Recording:
    body = open_evt_body(stream, NAME, "2.0", 4, MAX_SIZE)
    sink = EventSink(NAME, limits.max_events, (body.end - body.start) // 4)
    state = TimeHighState()
    extent = Extent()
    for offset, words in read_words(stream, NAME, body.start, body.end, "<u4"):
        decode_words(words, offset, state, sink, body.size, body.header.t0, extent)
    return make_recording(NAME, sink.result(), body.header, {"evt_version": "2.0"}, extent)


def encode_words(events: np.ndarray) -> np.ndarray:
    """The EVT 2.0 words (uint32) for time-ordered events: TIME_HIGH when needed, one CD word each."""
    events = as_events(events)
    t = events["t"].astype(np.int64)
    n = len(t)
    if n == 0:
        return np.array([TIME_HIGH << 28], dtype=np.uint32)
    if int(t.max()) >= 1 << 50:
        raise ValueError("timestamps beyond 2**50 µs are not supported by this writer")
    unit = t >> 6
    new = np.empty(n, dtype=bool)
    new[0] = True
    np.not_equal(unit[1:], unit[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    counts, values = time_high_sequence(unit[starts], 1 << 28, 1 << 26)
    th_count = np.zeros(n, dtype=np.int64)
    th_count[starts] = counts
    cd_pos = np.cumsum(th_count + 1) - 1
    words = np.empty(int(cd_pos[-1]) + 1, dtype=np.uint32)
    words[ragged_arange(cd_pos[starts] - counts, counts)] = (TIME_HIGH << 28) | (values & 0x0FFF_FFFF)
    p = (events["p"] > 0).astype(np.uint32)
    words[cd_pos] = (
        (p << 28) | ((t & 0x3F).astype(np.uint32) << 22) | (events["x"].astype(np.uint32) << 11) | events["y"]
    )
    return words


def write_evt2(path_or_file, events: np.ndarray, sensor_size=None) -> None:
    """Write events as an EVT 2.0 ``.raw`` file (OpenEB header with ``% end``; polarity 1 = ON)."""
    size = check_writable(events, sensor_size, MAX_SIZE, MAX_SIZE, "EVT 2.0")
    header = header_bytes(["evt 2.0", f"format EVT2;height={size[1]};width={size[0]}", f"geometry {size[0]}x{size[1]}"])
    write_parts(path_or_file, [header + b"% end\n", encode_words(events).astype("<u4").tobytes()])


def _sniff(head: bytes) -> bool:
    return sniff_evt_version(head) == "2.0"


EVT2 = Format(NAME, (".raw",), _sniff, _decode, "Prophesee EVT 2.0 .raw")
