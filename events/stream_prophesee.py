"""Incremental decoding of Prophesee EVT 2.0 / 2.1 / 3.0 byte streams (``events.StreamDecoder``'s EVT side).

The ``%`` header is held until it is complete (its last line and the first data byte, or ``% end``),
then parsed by the file decoders' ``read_header`` on exactly the bytes the file decoder sees, so
the sensor size, the version check and every header error are the file decoder's. After it, each
chunk's whole words go straight to the file decoder's word loop (``decode_words`` of ``evt2`` /
``evt21``, the compiled loop of ``evt3``) with its state carried between chunks in the version's
state object; only the bytes of a word not yet complete (at most 7) are held. Policies (time
stepping back, wraps, rows and vector bases, sensor checks, ``max_events``) are the file
decoders' own code, so the events are exactly ``events.load``'s for the whole stream.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from events import evt2, evt3, evt21
from events.chunked import check_whole_words
from events.event_sink import EventSink, StreamCount
from events.evt_common import Extent, TimeHighState, check_evt_version
from events.format import DecodeLimits
from events.prophesee_header import HEADER_LIMIT, PropheseeHeader, read_header, sensor_for, split_lines
from events.recording import EVENT_DTYPE


@dataclass(frozen=True)
class EvtVersion:
    """How one EVT version's words are cut and decoded.

    ``decode(words, offset, state, sink, size, header, extent)`` runs the file decoder's loop over
    whole words; ``new_state(header)`` is its state before the first word. ``extent_from_output``:
    the loop leaves the sensor extent to its output and keeps the largest vector column (which may
    not fit the output's uint16) in slot 10 of its state (EVT 3.0; the others track the extent).
    """

    name: str
    version: str
    word_bytes: int
    dtype: str
    new_state: Callable[[PropheseeHeader], object]
    decode: Callable[[np.ndarray, int, object, EventSink, object, PropheseeHeader, Extent], None]
    max_size: int = 2048  # 11-bit x and y
    most_per_word: int | None = None  # events one word can make, when more than one (vectors)
    extent_from_output: bool = False


@dataclass
class Evt21State:
    """EVT 2.1 carries its word order (from the header) besides the time base."""

    time: TimeHighState
    legacy: bool


VERSIONS = {
    "evt2": EvtVersion(
        "evt2",
        "2.0",
        4,
        "<u4",
        lambda header: TimeHighState(),
        lambda w, o, st, sink, size, h, ext: evt2.decode_words(w, o, st, sink, size, h.t0, ext),
        max_size=evt2.MAX_SIZE,
    ),
    "evt21": EvtVersion(
        "evt21",
        "2.1",
        8,
        "<u8",
        lambda header: Evt21State(TimeHighState(), evt21.legacy_word_order(header)),
        lambda w, o, st, sink, size, h, ext: evt21.decode_words(w, o, st.time, sink, size, h.t0, ext, st.legacy),
        max_size=evt21.MAX_SIZE,
    ),
    "evt3": EvtVersion(
        "evt3",
        "3.0",
        2,
        "<u2",
        lambda header: evt3.new_state(),
        lambda w, o, st, sink, size, h, ext: evt3.decode_words_compiled(w, o, st, sink, size, h.t0),
        max_size=evt3.MAX_SIZE,
        most_per_word=12,
        extent_from_output=True,
    ),
}


class EvtStream:
    """One EVT stream: header bytes until the header is complete, then words decoded as they come."""

    def __init__(self, name: str, sensor_size: tuple[int, int] | None, limits: DecodeLimits):
        self.spec = VERSIONS[name]
        self.given_size = sensor_size
        self.count = StreamCount(name, limits.max_events)
        self.extent = Extent()
        self.pending = bytearray()  # header bytes, then the bytes of an incomplete word
        self.scanned = 0  # header lines before this offset are complete
        self.header: PropheseeHeader | None = None
        self.size: tuple[int, int] | None = None  # every event must lie inside it
        self.state: object = None
        self.offset = 0  # byte offset of the first pending byte

    @property
    def buffered_bytes(self) -> int:
        return len(self.pending)

    @property
    def sensor_size(self) -> tuple[int, int] | None:
        return self.size if self.header is not None else None

    def feed(self, chunk: memoryview) -> np.ndarray:
        if self.header is not None:
            return self._decode(chunk)
        head = bytes(chunk[: HEADER_LIMIT + 1 - len(self.pending)])
        at_line_start = len(self.pending) == self.scanned
        self.pending += head
        complete = (at_line_start or b"\n" in head) and self._header_complete()
        if not complete and len(self.pending) <= HEADER_LIMIT:
            return np.empty(0, dtype=EVENT_DTYPE)
        first = self._decode(self._open_header())
        if len(head) == len(chunk):
            return first
        return np.concatenate((first, self._decode(chunk[len(head) :])))

    def close(self) -> tuple[np.ndarray, tuple[int, int]]:
        out = np.empty(0, dtype=EVENT_DTYPE)
        if self.header is None:
            out = self._decode(self._open_header())
        spec = self.spec
        check_whole_words(spec.name, self.header.data_offset, self.offset + len(self.pending), spec.word_bytes)
        if self.size is not None:
            return out, self.size
        if spec.extent_from_output:
            self.extent.x = max(self.extent.x, int(self.state[10]))  # vector columns past uint16
        return out, self.extent.size()

    def _header_complete(self) -> bool:
        _, end, state = split_lines(bytes(self.pending[self.scanned :]))
        self.scanned += end
        return state == "done"

    def _open_header(self) -> memoryview:
        """Parse the header as the file decoder does (from the first ``HEADER_LIMIT + 1`` bytes).

        Returns the bytes held after it (the first body bytes); nothing is held any more.
        """
        spec = self.spec
        head = io.BytesIO(bytes(self.pending[: HEADER_LIMIT + 1]))
        header = read_header(head, spec.name, spec.max_size, spec.max_size)
        check_evt_version(header, spec.name, spec.version)
        self.state = spec.new_state(header)
        self.header = header
        self.size = sensor_for(header)[0] or self.given_size
        self.offset = header.data_offset
        body, self.pending = bytes(self.pending[header.data_offset :]), bytearray()
        return memoryview(body)

    def _decode(self, data: memoryview) -> np.ndarray:
        """Decode the whole words of ``pending + data``; keep the rest."""
        spec = self.spec
        if self.pending:
            need = spec.word_bytes - len(self.pending)
            if len(data) < need:
                self.pending += data
                return np.empty(0, dtype=EVENT_DTYPE)
            data = memoryview(bytes(self.pending) + bytes(data))
            self.pending = bytearray()
        whole = len(data) - len(data) % spec.word_bytes
        if whole:
            words = np.frombuffer(data[:whole], dtype=spec.dtype)
            n = len(words)
            sink = self.count.sink(n, most=spec.most_per_word and spec.most_per_word * n)
            spec.decode(words, self.offset, self.state, sink, self.size, self.header, self.extent)
            out = self.count.take(sink)
            if spec.extent_from_output and self.size is None:
                self.extent.update(out["x"], out["y"])
        else:
            out = np.empty(0, dtype=EVENT_DTYPE)
        self.offset += whole
        self.pending += data[whole:]
        return out
