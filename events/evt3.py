"""Prophesee EVT 3.0 ``.raw`` files (IMX636 / Gen4.1 and later sensors): format name ``evt3``.

Layout: a ``%`` header (see ``events.prophesee_header``), then little-endian 16-bit words whose
top 4 bits are the type and low 12 bits the content. The encoding is stateful:

- ``0x0`` EVT_ADDR_Y: ``y`` = bits 0-10 (bit 11 is the system type); sets the current row and
  marks the following events as CD events. ``0x1`` (the row of an exposure-measurement / non-CD
  event) sets the row but marks the following events as non-CD: they are dropped, as in OpenEB;
- ``0x2`` EVT_ADDR_X: one CD event at ``x`` = bits 0-10, polarity bit 11 (1 = ON), on the
  current row at the current time;
- ``0x3`` VECT_BASE_X: the base column (bits 0-10) and polarity (bit 11) of the vectors after it;
- ``0x4`` VECT_12 / ``0x5`` VECT_8: a 12 / 8 bit validity mask; bit ``i`` set is a CD event at
  ``base + i``; then the base moves on by 12 / 8 (the sensor sends VECT_12, VECT_12, VECT_8 for
  32 pixels; any other sequence is decoded word by word);
- ``0x6`` EVT_TIME_LOW: the low 12 bits of the time; ``0x8`` EVT_TIME_HIGH: bits 12-23;
- ``0xA`` EXT_TRIGGER, ``0xE`` OTHERS, ``0x7`` / ``0xF`` CONTINUED, ``0xD`` IMU and the unused
  types are skipped (trigger / external / monitoring events are not part of the output).

Time policy, as OpenEB's ``EVT3Decoder`` with time shifting off (the vendor decoder):

- words before the first TIME_HIGH are dropped (no time base yet; rows and vector bases set
  there are dropped too);
- TIME_HIGH resets the low 12 bits to 0 when its value changes (a repeated TIME_HIGH keeps
  them); TIME_LOW sets them. An event's time is ``loops * 2**24 + (high << 12 | low)``;
- the 24-bit time wraps: a TIME_HIGH at least 2048 (half its range) below the previous one
  starts a new loop; a smaller step back is taken as it is;
- TIME_LOW (or TIME_HIGH) stepping back a few µs, as happens in real recordings, gives events
  with that earlier time: timestamps are exactly what the words say, never clamped or reordered
  (OpenEB does the same; faery clamps time to its running maximum and ignores TIME_HIGH jumps
  it considers implausible, the evt3 package resets time low at every TIME_HIGH, repeated or
  not, and counts a loop only for a drop of 4085 or more; all agree on well-formed recordings);
- faery's ``% t0`` header line, when present, is added to every timestamp.

Events before the first EVT_ADDR_Y, or after a non-CD row, are dropped, and vectors before the
first VECT_BASE_X are dropped, as OpenEB does. Words are decoded one by one: OpenEB 5 reads a
VECT_12 as the start of a VECT_12 + VECT_12 + VECT_8 group and an OTHERS ERC counter as taking
the next three words, which is the same on every stream the sensor writes. Validation (hostile
input): a file that ends inside a word, an event (single or from a vector) outside the sensor
size (stated or derived, see ``events.prophesee_header``), a header that declares another EVT
version, or more than ``DecodeLimits.max_events`` events raise ``EventDecodeError``; the output
never grows past the limit (a file of dense vectors cannot allocate more).

Speed: decoding is a compiled loop (numba, already the framing's runtime dependency) over 2 MB
chunks, not NumPy: the format is a state machine, and a NumPy formulation (``decode_numpy``: the
words of each kind gathered once, the state each event word sees spread with ``np.repeat`` over
the runs of event words between state words, vector masks expanded bit rank by bit rank) needs
about twenty array passes per word and, at the 2.5-4 words per event of real files, runs at a
fifth of the native decoders' speed. It is kept as the reference the compiled loop is tested and
fuzzed against. The loop writes each event straight into the packed output (a record, not four
strided column views), indexes with unsigned integers (no negative-index fix-up per access),
leaves the sensor extent to the output (only a header without geometry needs it), and expands a
vector word by writing all 12 slots and advancing by each mask bit, with no branch per bit. An
outer loop works out how many words are sure to fit the room left (12 slots each), so the inner
loop tests only the word index (a sixth faster than testing the room on every word). What is
left is mostly the branch on each word's type (a loop over the same words that only tracks row
and time, writing nothing, takes over 80% of its time); formulations without that branch
(selects or masks per word) were slower, as they lengthen the chain each word waits on. The loop
never writes past the room it was given (it stops while 12 slots remain), so hostile input
cannot make it overrun memory.
"""

from __future__ import annotations

from typing import BinaryIO

import numba
import numpy as np
from numba.cpython.unsafe.numbers import leading_zeros

from events.chunked import read_words
from events.errors import EventDecodeError
from events.event_sink import EventSink
from events.evt_common import (
    Extent,
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
from events.prophesee_header import header_bytes, sniff_evt_version
from events.recording import EVENT_DTYPE, Recording
from events.write_target import write_parts

NAME = "evt3"
MAX_SIZE = 2048  # 11-bit x and y
PIECE_WORDS = 1 << 15
Y_NONE = 0xFFFF  # no row yet (or a non-CD row: bit 15 set)
NO_BASE = -(1 << 40)  # no VECT_BASE_X yet: every vector event lands at a negative x and is dropped


class _State:
    __slots__ = ("base", "high", "high_abs", "loops", "pol", "started", "t", "y")

    def __init__(self) -> None:
        self.started = False
        self.high = 0  # last TIME_HIGH value (12 bits)
        self.loops = 0
        self.high_abs = 0  # loops * 4096 + high
        self.t = 0  # current time (µs, before t0)
        self.y = Y_NONE
        self.base = NO_BASE  # where the next vector word starts
        self.pol = 0


def _time_of_words(tw: np.ndarray, st: _State) -> tuple[np.ndarray, np.ndarray]:
    """The time after each TIME_LOW / TIME_HIGH word of ``tw`` (in order), updating ``st``.

    Returns ``(kept, times)``: the indices of the words that change the time (TIME_LOW and
    TIME_HIGH whose value differs from the previous TIME_HIGH) and the time after each of them.
    """
    th = np.flatnonzero(tw >= 0x8000)
    if len(th) == 0:
        return np.arange(len(tw)), (st.high_abs << 12) | (tw & 0xFFF).astype(np.int64)
    high = (tw[th] & 0xFFF).astype(np.int64)
    previous = np.empty_like(high)
    previous[0] = st.high
    previous[1:] = high[:-1]
    wrap = previous >= high + 2048  # OpenEB: back by half the range or more is a new loop
    high_abs = high + ((np.cumsum(wrap) + st.loops) << 12 if wrap.any() else st.loops << 12)
    same = high == previous  # a repeated TIME_HIGH changes nothing
    st.high = int(high[-1])
    if wrap.any():
        st.loops += int(wrap.sum())
    keep = np.ones(len(tw), dtype=bool)
    keep[th[same]] = False
    kept = np.flatnonzero(keep)
    kw = tw[kept]
    kept_th = np.flatnonzero(kw >= 0x8000)
    starts = np.empty(len(kept_th) + 1, dtype=np.int64)
    starts[0] = st.high_abs << 12
    starts[1:] = high_abs[~same] << 12
    times = np.repeat(starts, np.diff(kept_th, prepend=0, append=len(kw)))
    low = (kw & 0xFFF).astype(np.int64)
    low[kept_th] = 0
    times |= low
    st.high_abs = int(high_abs[-1])
    return kept, times


def _vector_starts(
    ne_w: np.ndarray, ne_evb: np.ndarray, ev_w: np.ndarray, is_base: np.ndarray, st: _State
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For the vector words among the event words: their event-word index, start column and polarity."""
    vec = np.flatnonzero(ev_w >= 0x4000)
    base_k = np.flatnonzero(is_base)  # VECT_BASE_X among the non-event words
    base_w = ne_w[base_k]
    base_evb = ne_evb[base_k]  # event words before each VECT_BASE_X
    step = np.where(ev_w[vec] < 0x5000, 12, 8)
    done = np.cumsum(step) - step  # columns advanced by earlier vector words of this piece
    # The last VECT_BASE_X before each vector word (0: the state carried in).
    which = np.searchsorted(base_evb, vec, side="right")
    base_x = np.empty(len(base_k) + 1, dtype=np.int64)
    base_x[0] = st.base
    base_x[1:] = base_w & 0x7FF
    pol = np.empty(len(base_k) + 1, dtype=np.uint8)
    pol[0] = st.pol
    pol[1:] = base_w >> 11 & 1
    # Columns advanced before each VECT_BASE_X: the vector words before it.
    base_done = np.zeros(len(base_k) + 1, dtype=np.int64)
    if len(vec):
        first_after = np.searchsorted(vec, base_evb)
        base_done[1:] = np.concatenate((done, [done[-1] + step[-1]]))[first_after]
    start = base_x[which] + done - base_done[which]
    last = len(base_k)
    total = int(done[-1] + step[-1]) if len(vec) else 0
    st.base = int(base_x[last] + total - base_done[last])
    st.pol = int(pol[last])
    return vec, start, pol[which]


def _emit_with_vectors(ev_w, ev_pos, y_ev, t_ev, valid, vectors, offset: int, sink: EventSink, size, extent) -> None:
    """Output the events of a piece whose event words include vectors (expanded bit by bit, in order)."""
    vec, vec_start, vec_pol = vectors
    vw = ev_w[vec]
    masks = (vw & np.where(vw < 0x5000, 0xFFF, 0xFF)).astype(np.uint32)
    masks[~valid[vec] | (vec_start < 0)] = 0
    counts = valid.astype(np.int64)
    counts[vec] = np.bitwise_count(masks)
    ends = np.cumsum(counts)
    n = int(ends[-1])
    if n == 0:
        return
    starts = ends - counts
    row, bit = mask_bits(masks)
    vec_counts = counts[vec]
    rank = np.arange(len(row)) - np.repeat(np.cumsum(vec_counts) - vec_counts, vec_counts)
    at_vec = starts[vec[row]] + rank
    word = np.empty(n, dtype=np.int64)  # the event word each output event comes from
    x = np.empty(n, dtype=np.int64)
    p = np.empty(n, dtype=np.uint8)
    single = valid.copy()
    single[vec] = False
    singles = np.flatnonzero(single)
    at_single = starts[singles]
    word[at_single] = singles
    x[at_single] = ev_w[singles] & 0x7FF
    p[at_single] = ev_w[singles] >> 11 & 1
    word[at_vec] = vec[row]
    x[at_vec] = vec_start[row] + bit
    p[at_vec] = vec_pol[row]
    y = y_ev[word]
    check_inside(NAME, x, y, size, lambda i: offset + 2 * int(ev_pos[word[i]]))
    extent.update(x, y)
    out = sink.reserve(n, offset + 2 * int(ev_pos[0]))
    out["t"] = t_ev[word]
    out["x"] = x
    out["y"] = y
    out["p"] = p


def _decode_piece(w: np.ndarray, offset: int, st: _State, sink: EventSink, size, t0: int, extent: Extent) -> None:
    if not st.started:
        first = np.flatnonzero((w >> 12) == 8)
        if len(first) == 0:
            return
        w = w[int(first[0]) :]
        offset += 2 * int(first[0])
        st.started = True
        high = int(w[0]) & 0xFFF
        st.high = high - 1 if high > 0 else 0  # OpenEB: the first TIME_HIGH always resets time low
        st.high_abs = st.high
        st.t = st.high_abs << 12
    is_ev = ((w - 0x2000) < 0x1000) | ((w - 0x4000) < 0x2000)  # ADDR_X, VECT_12, VECT_8
    ev_pos = np.flatnonzero(is_ev)
    n_ev = len(ev_pos)
    ne = np.flatnonzero(~is_ev)
    ne_w = w[ne]
    ne_evb = ne - np.arange(len(ne))  # event words before each non-event word

    # Rows: EVT_ADDR_Y (type 0) and the non-CD row (type 1, marked with bit 15).
    yk = np.flatnonzero(ne_w < 0x2000)
    rows = np.empty(len(yk) + 1, dtype=np.uint16)
    rows[0] = st.y
    yw = ne_w[yk]
    np.bitwise_or(yw & 0x7FF, (yw & 0x1000) << 3, out=rows[1:])
    st.y = int(rows[-1])
    # Time: TIME_LOW (type 6) and TIME_HIGH (type 8) words.
    tk = np.flatnonzero(((ne_w - 0x6000) < 0x1000) | ((ne_w - 0x8000) < 0x1000))
    t_start = st.t
    kept, times = _time_of_words(ne_w[tk], st)
    if len(times):
        st.t = int(times[-1])
    # Vector bases (only when the piece has vectors).
    ev_w = w[ev_pos]
    is_base = (ne_w - 0x3000) < 0x1000  # VECT_BASE_X
    vectors = None
    if n_ev and int(ev_w.max()) >= 0x4000:
        vectors = _vector_starts(ne_w, ne_evb, ev_w, is_base, st)
    elif is_base.any():
        last = int(ne_w[np.flatnonzero(is_base)[-1]])
        st.base, st.pol = last & 0x7FF, last >> 11 & 1
    if n_ev == 0:
        return

    y_ev = np.repeat(rows, np.diff(ne_evb[yk], prepend=0, append=n_ev))
    t_all = np.empty(len(times) + 1, dtype=np.int64)
    t_all[0] = t_start
    t_all[1:] = times
    if t0:
        t_all += t0
    t_ev = np.repeat(t_all, np.diff(ne_evb[tk[kept]], prepend=0, append=n_ev))
    valid = y_ev < 0x8000
    if vectors is not None:
        _emit_with_vectors(ev_w, ev_pos, y_ev, t_ev, valid, vectors, offset, sink, size, extent)
        return
    if not valid.all():
        keep = np.flatnonzero(valid)
        ev_w, y_ev, t_ev, ev_pos = ev_w[keep], y_ev[keep], t_ev[keep], ev_pos[keep]
    n = len(ev_w)
    if n == 0:
        return
    x = ev_w & 0x7FF
    check_inside(NAME, x, y_ev, size, lambda i: offset + 2 * int(ev_pos[i]))
    extent.update(x, y_ev)
    out = sink.reserve(n, offset + 2 * int(ev_pos[0]))
    out["t"] = t_ev
    out["x"] = x
    out["y"] = y_ev
    ev_w >>= 11
    ev_w &= 1
    out["p"] = ev_w


@numba.njit(cache=True, nogil=True)
def _run(w, state, width, height, t0, out):  # pragma: no cover - compiled
    """Run the EVT 3.0 state machine over ``w`` from word ``state[9]`` and ``state``.

    Fills ``out`` (``EVENT_DTYPE``) and stops before a word that might not fit (a vector word
    makes up to 12 events) or at the end; stores the state and the next word index back into
    ``state`` and returns the number of events written, or -2 with ``state[8]`` = the word index
    when an event lies outside ``width x height``. Slots past the returned count may be written.
    ``state[10]`` keeps the largest vector column, which may not fit the output's uint16 when the
    header states no size.
    """
    started, high, loops, high_abs = state[0], state[1], state[2], state[3]
    t, y, base, pol = state[4], state[5], state[6], state[7]
    cap = len(out) - 12
    k = 0
    i = state[9]
    n = len(w)
    if started == 0:  # words before the first TIME_HIGH are dropped (no time base yet)
        while i < n and (w[np.uint64(i)] >> 12) != 8:
            i += 1
        if i < n:
            started = 1
            c = np.int64(w[np.uint64(i)] & 0xFFF)
            high = c - 1 if c > 0 else 0  # OpenEB: the first TIME_HIGH always resets time low
            high_abs = high
            t = high_abs << 12
    while i < n and k <= cap:
        stop = min(n, i + (cap - k) // 12 + 1)  # words that fit whatever they make: one test per word
        while i < stop:
            v = np.int64(w[np.uint64(i)])
            kind = v >> 12
            c = v & 0xFFF
            if kind == 2:  # EVT_ADDR_X
                if y < 0x8000:
                    x = c & 0x7FF
                    if x >= width or y >= height:
                        state[8] = i
                        return -2
                    r = out[np.uint64(k)]
                    r.t = t + t0
                    r.x = x
                    r.y = y
                    r.p = c >> 11
                    k += 1
            elif kind <= 1:  # EVT_ADDR_Y (0) or a non-CD row (1)
                y = (c & 0x7FF) | (kind << 15)
            elif kind == 6:  # EVT_TIME_LOW
                t = (high_abs << 12) | c
            elif kind == 8:  # EVT_TIME_HIGH
                if c != high:
                    if high >= c + 2048:
                        loops += 1
                    high = c
                    high_abs = (loops << 12) + c
                    t = high_abs << 12
            elif kind == 3:  # VECT_BASE_X
                base = c & 0x7FF
                pol = c >> 11
            elif kind == 4 or kind == 5:  # VECT_12 / VECT_8
                bits = 12 if kind == 4 else 8
                m = c & ((1 << bits) - 1)
                if y < 0x8000 and base >= 0 and m:
                    last = base + 63 - leading_zeros(m)
                    if last >= width or y >= height:
                        state[8] = i
                        return -2
                    state[10] = max(state[10], last)
                    for b in range(12):
                        r = out[np.uint64(k)]
                        r.t = t + t0
                        r.x = base + b
                        r.y = y
                        r.p = pol
                        k += (m >> b) & 1
                base += bits
            i += 1
    state[0], state[1], state[2], state[3] = started, high, loops, high_abs
    state[4], state[5], state[6], state[7] = t, y, base, pol
    state[9] = i
    return k


def new_state() -> np.ndarray:
    """The compiled loop's state before the first word (see ``_run`` for what each slot holds)."""
    return np.array([0, 0, 0, 0, 0, Y_NONE, NO_BASE, 0, -1, 0, -1], dtype=np.int64)


BATCH_EVENTS = 1 << 20
NEAR_LIMIT = 64


def decode_words_compiled(words, offset, state, sink: EventSink, size, t0: int) -> None:
    """Run the compiled loop over one chunk straight into the sink, a batch of room at a time.

    The loop never writes past the room it is given (it stops
    while 12 slots remain), the unused slots are given back, and within ``NEAR_LIMIT`` events
    of ``max_events`` it fills a small scratch buffer instead so ``LimitExceededError`` comes
    exactly when the limit is passed.
    """
    width, height = size if size is not None else (1 << 30, 1 << 30)
    state[9] = 0
    while state[9] < len(words):
        at = offset + 2 * int(state[9])
        remaining = sink.remaining
        if remaining >= NEAR_LIMIT:
            room = min(BATCH_EVENTS, remaining, max(sink.free, NEAR_LIMIT))
            out = sink.reserve(room, at)
        else:
            room = NEAR_LIMIT
            out = np.empty(room, dtype=EVENT_DTYPE)
        n = _run(words, state, width, height, t0, out)
        if n == -2:
            raise EventDecodeError(NAME, f"event outside the {width}x{height} sensor", offset + 2 * int(state[8]))
        if remaining >= NEAR_LIMIT:
            sink.give_back(room - n)
        elif n:
            sink.append(out["t"][:n], out["x"][:n], out["y"][:n], out["p"][:n], at)


def _decode_with(stream: BinaryIO, limits: DecodeLimits, compiled: bool) -> Recording:
    body = open_evt_body(stream, NAME, "3.0", 2, MAX_SIZE)
    header, size, start, end = body.header, body.size, body.start, body.end
    words = (end - start) // 2
    sink = EventSink(NAME, limits.max_events, words, most=12 * words)  # one event per word, 12 per vector word
    extent = Extent()
    if not compiled:
        st = _State()
        for offset, words in read_words(stream, NAME, start, end, "<u2"):
            for i in range(0, len(words), PIECE_WORDS):
                _decode_piece(words[i : i + PIECE_WORDS], offset + 2 * i, st, sink, size, header.t0, extent)
        return make_recording(NAME, sink.result(), header, {"evt_version": "3.0"}, extent)
    state = new_state()
    for offset, words in read_words(stream, NAME, start, end, "<u2"):
        decode_words_compiled(words, offset, state, sink, size, header.t0)
    events = sink.result()
    if size is None:  # only then is the extent needed: taken from the output, not in the loop
        extent.update(events["x"], events["y"])
        extent.x = max(extent.x, int(state[10]))
    return make_recording(NAME, events, header, {"evt_version": "3.0"}, extent)


def _decode(stream: BinaryIO, limits: DecodeLimits) -> Recording:
    return _decode_with(stream, limits, compiled=True)


def decode_numpy(stream: BinaryIO, limits: DecodeLimits) -> Recording:
    """The same decoding by the NumPy formulation (the reference the compiled loop is checked against)."""
    return _decode_with(stream, limits, compiled=False)


def encode_words(events: np.ndarray, sensor_size: tuple[int, int]) -> np.ndarray:
    """The EVT 3.0 words (uint16) for time-ordered events, as the sensor groups them.

    Consecutive events with the same time, row and polarity and increasing columns inside one
    32-pixel-aligned group become VECT_BASE_X + VECT_12 + VECT_12 + VECT_8 (when the group lies
    inside the sensor); every other event is an EVT_ADDR_X. EVT_ADDR_Y is sent when the row
    changes, EVT_TIME_LOW when the time does, EVT_TIME_HIGH when its high bits do (starting
    from 0, in steps of at most 1024 and through every wrap, so every decoder unwraps it).
    """
    events = as_events(events)
    n = len(events)
    if n == 0:
        return np.zeros(0, dtype=np.uint16)
    t = events["t"].astype(np.int64)
    if int(t.max()) >= 1 << 50:
        raise ValueError("timestamps beyond 2**50 µs are not supported by this writer")
    x = events["x"].astype(np.int64)
    y = events["y"].astype(np.int64)
    p = (events["p"] > 0).astype(np.int64)
    group = x >> 5
    new = np.ones(n, dtype=bool)
    new[1:] = (t[1:] != t[:-1]) | (y[1:] != y[:-1]) | (p[1:] != p[:-1]) | (x[1:] <= x[:-1]) | (group[1:] != group[:-1])
    packet_starts = np.flatnonzero(new)
    packet_sizes = np.diff(packet_starts, append=n)
    vector_packet = (packet_sizes > 1) & ((group[packet_starts] + 1) * 32 <= sensor_size[0])
    in_vector = np.repeat(vector_packet, packet_sizes)
    unit_first = np.flatnonzero(new | ~in_vector)  # first event of each emitted unit
    unit_is_vector = in_vector[unit_first]
    ut, uy = t[unit_first], y[unit_first]
    m = len(unit_first)
    time_change = np.ones(m, dtype=bool)
    time_change[1:] = ut[1:] != ut[:-1]
    high = ut >> 12
    high_change = np.ones(m, dtype=bool)
    high_change[1:] = high[1:] != high[:-1]
    high_units = np.flatnonzero(high_change)
    th_counts, th_values = time_high_sequence(high[high_units], 4096, 1024)
    n_th = np.zeros(m, dtype=np.int64)
    n_th[high_units] = th_counts
    row_change = np.ones(m, dtype=bool)
    row_change[1:] = uy[1:] != uy[:-1]
    n_payload = np.where(unit_is_vector, 4, 1)
    sizes = n_th + time_change + row_change + n_payload
    starts = np.cumsum(sizes) - sizes
    words = np.empty(int(sizes.sum()), dtype=np.uint16)
    words[ragged_arange(starts[high_units], th_counts)] = 0x8000 | (th_values & 0xFFF)
    at = starts + n_th
    words[at[time_change]] = 0x6000 | (ut[time_change] & 0xFFF)
    at = at + time_change
    words[at[row_change]] = uy[row_change]
    at = at + row_change
    single = ~unit_is_vector
    words[at[single]] = 0x2000 | (p[unit_first[single]] << 11) | x[unit_first[single]]
    if unit_is_vector.any():
        vp = unit_first[unit_is_vector]
        base = group[vp] * 32
        bits = np.left_shift(1, x - (group << 5)).astype(np.int64)
        mask = np.bitwise_or.reduceat(bits, packet_starts)[vector_packet]
        va = at[unit_is_vector]
        words[va] = 0x3000 | (p[vp] << 11) | base
        words[va + 1] = 0x4000 | (mask & 0xFFF)
        words[va + 2] = 0x4000 | ((mask >> 12) & 0xFFF)
        words[va + 3] = 0x5000 | ((mask >> 24) & 0xFF)
    return words


def write_evt3(path_or_file, events: np.ndarray, sensor_size=None) -> None:
    """Write events as an EVT 3.0 ``.raw`` file (OpenEB header with ``% end``; polarity 1 = ON)."""
    size = check_writable(events, sensor_size, MAX_SIZE, MAX_SIZE, "EVT 3.0")
    header = header_bytes(["evt 3.0", f"format EVT3;height={size[1]};width={size[0]}", f"geometry {size[0]}x{size[1]}"])
    write_parts(path_or_file, [header + b"% end\n", encode_words(events, size).astype("<u2").tobytes()])


def _sniff(head: bytes) -> bool:
    return sniff_evt_version(head) == "3.0"


EVT3 = Format(NAME, (".raw",), _sniff, _decode, "Prophesee EVT 3.0 .raw")
