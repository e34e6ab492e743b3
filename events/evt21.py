"""Prophesee EVT 2.1 ``.raw`` files (IMX636 and later, vectorised CD events): format name ``evt21``.

Layout: a ``%`` header (see ``events.prophesee_header``), then little-endian 64-bit words whose
top 4 bits (63-60) are the type:

- ``0x0`` EVT_NEG / ``0x1`` EVT_POS: a CD vector: 6-bit time low (bits 59-54), ``x`` (53-43),
  ``y`` (42-32) and a 32-bit validity mask (31-0); bit ``i`` set is an event at ``(x + i, y)``
  with polarity the type (1 = ON), at ``TIME_HIGH << 6 | time low`` µs; events come out word by
  word, low bit first (OpenEB's order);
- ``0x8`` EVT_TIME_HIGH: bits 59-32 are bits 6-33 of the time;
- ``0xA`` EXT_TRIGGER, ``0xE`` OTHERS, ``0xF`` CONTINUED and the unused types are skipped
  (trigger / external / monitoring events are not part of the output).

The legacy word order (``% format EVT21;endianness=legacy``: the two 32-bit halves swapped, type in
bits 31-28) is read when the header asks for it.

Policy, as OpenEB's ``EVT21Decoder`` with time shifting off: words before the first TIME_HIGH are
dropped; the 34-bit time wraps only when TIME_HIGH goes from its maximum ``2**28 - 1`` to 0
(adds ``2**34``); any other step back is taken as it is (OpenEB logs it) and timestamps follow
it; nothing is clamped or reordered. faery's ``% t0`` header line, when present, is added.

Validation (hostile input): a file that ends inside a word, an event outside the sensor size
(stated or derived, see ``events.prophesee_header``), a header that declares another EVT version,
or more than ``DecodeLimits.max_events`` events (checked before a piece's masks are expanded)
raise ``EventDecodeError``.

Speed: NumPy per piece of 16K words; the time high of each word comes from ``np.repeat`` over the
runs between TIME_HIGH words and the masks are expanded with ``np.unpackbits``.
"""

from __future__ import annotations

from typing import BinaryIO

import numpy as np

from events.chunked import read_words
from events.errors import EventDecodeError
from events.event_sink import EventSink
from events.evt_common import (
    Extent,
    TimeHighState,
    as_events,
    check_inside,
    check_writable,
    make_recording,
    mask_bits,
    open_evt_body,
    ragged_arange,
    time_high_sequence,
)
from events.format import DecodeLimits, Format
from events.prophesee_header import PropheseeHeader, header_bytes, sniff_evt_version
from events.recording import Recording
from events.write_target import write_parts

NAME = "evt21"
MAX_SIZE = 2048  # 11-bit x and y
PIECE_WORDS = 1 << 14
CD_END = np.uint64(2 << 60)  # EVT_NEG and EVT_POS are the words below 2**61
TIME_HIGH = 0x8
LOOP_US = 1 << 34
MAX_HIGH = (1 << 28) - 1


def _decode_piece(w: np.ndarray, offset: int, st: TimeHighState, sink: EventSink, size, t0: int, extent) -> None:
    if not st.started:
        first = np.flatnonzero((w >> np.uint64(60)) == TIME_HIGH)
        if len(first) == 0:
            return
        w = w[int(first[0]) :]
        offset += 8 * int(first[0])
        st.started = True
        st.raw = int(w[0] >> np.uint64(32)) & MAX_HIGH
    cd = w < CD_END
    other = np.flatnonzero(~cd)
    ow = w[other]
    th_rank = np.flatnonzero((ow >> np.uint64(60)) == TIME_HIGH)
    raw = ((ow[th_rank] >> np.uint64(32)) & np.uint64(MAX_HIGH)).astype(np.int64)
    base = np.empty(len(raw) + 1, dtype=np.int64)
    base[0] = st.raw * 64 + st.loops * LOOP_US + t0
    if len(raw):
        previous = np.empty_like(raw)
        previous[0] = st.raw
        previous[1:] = raw[:-1]
        loops = np.cumsum(previous - raw >= MAX_HIGH) + st.loops  # only MAX_HIGH -> 0 is a wrap
        base[1:] = raw * 64 + loops * LOOP_US + t0
        st.raw, st.loops = int(raw[-1]), int(loops[-1])
    cd_pos = np.flatnonzero(cd)
    if len(cd_pos) == 0:
        return
    cw = w[cd_pos]
    masks = (cw & np.uint64(0xFFFF_FFFF)).astype(np.uint32)
    n = int(np.bitwise_count(masks).sum())
    if n == 0:
        return
    if n > sink.remaining:
        sink.reserve(n, offset)  # raises LimitExceededError before anything is expanded
    before = other[th_rank] - th_rank
    word_t = np.repeat(base, np.diff(before, prepend=0, append=len(cw)))
    word_t += ((cw >> np.uint64(54)) & np.uint64(0x3F)).astype(np.int64)
    row, bit = mask_bits(masks)
    x = ((cw >> np.uint64(43)) & np.uint64(0x7FF)).astype(np.int64)[row] + bit
    y = ((cw >> np.uint64(32)) & np.uint64(0x7FF)).astype(np.uint16)[row]
    check_inside(NAME, x, y, size, lambda i: offset + 8 * int(cd_pos[row[i]]))
    if size is None:
        extent.update(x, y)
    out = sink.reserve(n, offset)
    out["t"] = word_t[row]
    out["x"] = x
    out["y"] = y
    out["p"] = (cw >> np.uint64(60)).astype(np.uint8)[row]


def legacy_word_order(header: PropheseeHeader) -> bool:
    """Whether the header asks for the legacy word order (an unknown endianness is an error)."""
    endianness = header.format_options.get("endianness", "").lower()
    if endianness not in ("", "legacy", "little", "little_endian"):
        raise EventDecodeError(NAME, f"unknown EVT 2.1 endianness {endianness[:40]!r}", 0)
    return endianness == "legacy"


def decode_words(
    words: np.ndarray, offset: int, state: TimeHighState, sink: EventSink, size, t0: int, extent: Extent, legacy: bool
) -> None:
    """Decode consecutive words (``offset``: the byte offset of the first) into ``sink``, carrying ``state``."""
    for i in range(0, len(words), PIECE_WORDS):
        piece = words[i : i + PIECE_WORDS]
        if legacy:
            piece = (piece << np.uint64(32)) | (piece >> np.uint64(32))
        _decode_piece(piece, offset + 8 * i, state, sink, size, t0, extent)


def _decode(stream: BinaryIO, limits: DecodeLimits) -> Recording:
    body = open_evt_body(stream, NAME, "2.1", 8, MAX_SIZE)
    header, size, start, end = body.header, body.size, body.start, body.end
    legacy = legacy_word_order(header)
    sink = EventSink(NAME, limits.max_events, (end - start) // 8)
    state = TimeHighState()
    extent = Extent()
    for offset, words in read_words(stream, NAME, start, end, "<u8"):
        decode_words(words, offset, state, sink, size, header.t0, extent, legacy)
    extra = {"evt_version": "2.1", "word_order": "legacy" if legacy else "standard"}
    return make_recording(NAME, sink.result(), header, extra, extent)


def encode_words(events: np.ndarray, legacy: bool = False) -> np.ndarray:
    """The EVT 2.1 words (uint64) for time-ordered events, as the sensor groups them.

    Consecutive events with the same time, row and polarity and increasing columns inside one
    32-pixel-aligned group share one CD word (a mask over the group's first column); TIME_HIGH
    words start from 0 and step at most ``2**26`` (and through every wrap).
    """
    events = as_events(events)
    n = len(events)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    t = events["t"].astype(np.int64)
    if int(t.max()) >= 1 << 50:
        raise ValueError("timestamps beyond 2**50 µs are not supported by this writer")
    x = events["x"].astype(np.int64)
    y = events["y"].astype(np.int64)
    p = (events["p"] > 0).astype(np.int64)
    group = x >> 5
    new = np.ones(n, dtype=bool)
    new[1:] = (t[1:] != t[:-1]) | (y[1:] != y[:-1]) | (p[1:] != p[:-1]) | (x[1:] <= x[:-1]) | (group[1:] != group[:-1])
    first = np.flatnonzero(new)
    mask = np.bitwise_or.reduceat(np.left_shift(1, x - (group << 5)).astype(np.int64), first)
    ft = t[first]
    m = len(first)
    high = ft >> 6
    high_change = np.ones(m, dtype=bool)
    high_change[1:] = high[1:] != high[:-1]
    changes = np.flatnonzero(high_change)
    th_counts, th_values = time_high_sequence(high[changes], 1 << 28, 1 << 26)
    n_th = np.zeros(m, dtype=np.int64)
    n_th[changes] = th_counts
    cd_at = np.cumsum(n_th + 1) - 1
    words = np.empty(int(cd_at[-1]) + 1, dtype=np.uint64)
    words[ragged_arange(cd_at[changes] - th_counts, th_counts)] = ((TIME_HIGH << 28) | (th_values & MAX_HIGH)).astype(
        np.uint64
    ) << np.uint64(32)
    content = (p[first] << 28) | ((ft & 0x3F) << 22) | ((group[first] << 5) << 11) | y[first]
    words[cd_at] = (content.astype(np.uint64) << np.uint64(32)) | mask.astype(np.uint64)
    if legacy:
        words = (words << np.uint64(32)) | (words >> np.uint64(32))
    return words


def write_evt21(path_or_file, events: np.ndarray, sensor_size=None, legacy: bool = False) -> None:
    """Write events as an EVT 2.1 ``.raw`` file (OpenEB header with ``% end``; polarity 1 = ON).

    ``legacy=True`` writes the legacy word order and says so in the header.
    """
    size = check_writable(events, sensor_size, MAX_SIZE, MAX_SIZE, "EVT 2.1")
    order = ";endianness=legacy" if legacy else ""
    header = header_bytes(
        ["evt 2.1", f"format EVT21;height={size[1]};width={size[0]}{order}", f"geometry {size[0]}x{size[1]}"]
    )
    write_parts(path_or_file, [header + b"% end\n", encode_words(events, legacy).astype("<u8").tobytes()])


def _sniff(head: bytes) -> bool:
    return sniff_evt_version(head) == "2.1"


EVT21 = Format(NAME, (".raw",), _sniff, _decode, "Prophesee EVT 2.1 .raw")
