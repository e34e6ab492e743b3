"""Incremental decoding of DV AEDAT 4.0 byte streams (``events.StreamDecoder``'s AEDAT 4 side).

The version line and IOHeader are held until complete, then parsed by the file decoder's
``read_io_header``. After it, packets are cut as they come: the 8-byte packet header is held,
then an event packet's payload is held until it is whole and goes through the file decoder's
``inflate`` and ``decode_events`` (same ratio and byte budget, same coordinate checks); packets
of other streams (frames, IMU, triggers) are counted off without being held. So between calls at
most one packet is held (within a call, the event packets the chunk completes are inflated, then
decoded into one output array), and the events are exactly ``events.load``'s for the whole file.

Stream-specific checks: a stream cannot hold a packet of any size, so an event packet whose
declared size exceeds what is left of ``max_decompressed_bytes`` (plus the most LZ4 / ZSTD framing
adds to data that does not compress) is refused at its header, before it is held (the file
decoder reaches the same verdict when inflating it; they differ only for a payload padded with
empty frames past that size, which the file decoder would read); a ``dataTablePosition`` ends the
packets there as in the file decoder (the bytes after it are counted off) and one past the end of
the stream is reported at close.
"""

from __future__ import annotations

import io
import struct

import numpy as np
import zstandard

from events import aedat4
from events.errors import EventDecodeError, LimitExceededError
from events.event_sink import StreamCount
from events.evt_common import Extent
from events.format import DecodeLimits
from events.recording import EVENT_DTYPE

PREFIX = len(aedat4.MAGIC) + 4
FRAMING_SLACK = 1 << 12  # more than an LZ4 / ZSTD frame adds to the data it holds, per 128 KiB block


def _most_compressed(budget: int) -> int:
    """The largest compressed payload that can inflate to at most ``budget`` bytes."""
    return budget + budget // 128 + FRAMING_SLACK


class Aedat4Stream:
    """One AEDAT 4 stream: the IOHeader, then one packet header or event packet held at a time."""

    def __init__(self, sensor_size: tuple[int, int] | None, limits: DecodeLimits):
        self.given_size = sensor_size
        self.limits = limits
        self.count = StreamCount(aedat4.NAME, limits.max_events)
        self.extent = Extent()
        self.pending = bytearray()
        self.pos = 0  # byte offset of the first pending byte
        self.target: aedat4.Stream | None = None
        self.size: tuple[int, int] | None = None  # every event must lie inside it
        self.by_id: dict[int, aedat4.Stream] = {}
        self.compression = 0
        self.end = -1  # dataTablePosition: packets stop there (-1: none)
        self.budget = limits.max_decompressed_bytes
        self.zstd_context: zstandard.ZstdDecompressor | None = None
        self.packet: int | None = None  # payload size of the event packet being held
        self.skip = 0  # bytes of a packet of another stream still to count off
        self.header_at = 0  # offset and declared size of the latest packet header
        self.header_size = 0

    @property
    def buffered_bytes(self) -> int:
        return len(self.pending)

    @property
    def sensor_size(self) -> tuple[int, int] | None:
        return self.size if self.target is not None else None

    def feed(self, chunk: memoryview) -> np.ndarray:
        payloads: list[tuple[bytes, int]] = []
        i = 0
        if self.target is None:
            i = self._take_io_header(chunk)
            if self.target is None:
                return np.empty(0, dtype=EVENT_DTYPE)
        while i < len(chunk):
            if self.end >= 0 and self.pos + len(self.pending) >= self.end:
                self.pos += len(chunk) - i  # the file data table and whatever follows it
                break
            if self.skip:
                n = min(self.skip, len(chunk) - i)
                self.skip -= n
                self.pos += n
                i += n
                continue
            want = aedat4.PACKET_HEADER.size if self.packet is None else self.packet
            if self.end >= 0:
                want = min(want, self.end - self.pos)
            take = min(want - len(self.pending), len(chunk) - i)
            self.pending += chunk[i : i + take]
            i += take
            if len(self.pending) == want:
                self._step(payloads)
        if self.packet is not None and self.packet == len(self.pending):
            self._step(payloads)  # an empty payload completes with its header
        return self._events(payloads)

    def close(self) -> tuple[np.ndarray, tuple[int, int]]:
        if self.target is None:
            aedat4.read_io_header(io.BytesIO(bytes(self.pending)))  # raises what the file decoder says
            raise EventDecodeError(aedat4.NAME, "stream ends inside the IOHeader", self.pos + len(self.pending))
        if self.end > self.pos + len(self.pending):
            raise EventDecodeError(aedat4.NAME, f"dataTablePosition {self.end} outside the file", PREFIX)
        if self.packet is not None or self.skip:
            problem = f"packet size {self.header_size} runs past the end of the data"
            raise EventDecodeError(aedat4.NAME, problem, self.header_at)
        if self.pending:
            raise EventDecodeError(aedat4.NAME, "file ends inside a packet header", self.pos)
        return np.empty(0, dtype=EVENT_DTYPE), self.size or self.extent.size()

    def _take_io_header(self, chunk: memoryview) -> int:
        """Hold the version line and IOHeader; parse them once whole. Returns the chunk bytes used."""
        before = len(self.pending)
        self.pending += chunk[: max(0, PREFIX - before)]
        if not aedat4.MAGIC.startswith(bytes(self.pending[: len(aedat4.MAGIC)])):
            raise EventDecodeError(aedat4.NAME, "missing '#!AER-DAT4.0' version line", 0)
        if len(self.pending) < PREFIX:
            return len(chunk)
        (size,) = struct.unpack_from("<i", self.pending, len(aedat4.MAGIC))
        if not 0 < size <= aedat4.MAX_IO_HEADER:
            raise EventDecodeError(aedat4.NAME, f"absurd IOHeader size {size}", len(aedat4.MAGIC))
        used = len(self.pending) - before
        rest = chunk[used : used + PREFIX + size - len(self.pending)]
        self.pending += rest
        used += len(rest)
        if len(self.pending) < PREFIX + size:
            return used
        compression, position, streams, first = aedat4.read_io_header(io.BytesIO(bytes(self.pending)))
        self.by_id = {s.id: s for s in streams}
        target = next((s for s in streams if s.type == "EVTS"), None)
        if target is None:
            raise EventDecodeError(aedat4.NAME, f"no event stream (streams: {[s.type for s in streams]})", first)
        if position >= 0 and position < first:
            raise EventDecodeError(aedat4.NAME, f"dataTablePosition {position} outside the file", first)
        self.target, self.compression, self.end = target, compression, position
        self.size = target.size or self.given_size
        self.zstd_context = zstandard.ZstdDecompressor() if compression in (3, 4) else None
        self.pending = bytearray()
        self.pos = first
        return used

    def _events(self, payloads: list[tuple[bytes, int]]) -> np.ndarray:
        """The events of the chunk's whole event packets, decoded into one array (no concatenation)."""
        sink = self.count.sink(sum(len(payload) for payload, _ in payloads) // aedat4.EVENT.itemsize)
        for payload, body in payloads:
            aedat4.decode_events(payload, body, self.size, sink)
        events = self.count.take(sink)
        if self.target is not None and self.target.size is None and self.given_size is None:
            self.extent.update(events["x"], events["y"])
        return events

    def _step(self, payloads: list[tuple[bytes, int]]) -> None:
        """Act on a whole packet header, or inflate a whole event packet in ``pending`` into ``payloads``."""
        if self.packet is None:
            self._packet_header()
            return
        size = self.packet
        body = self.pos
        payload = aedat4.inflate(
            bytes(self.pending), self.compression, self.budget, self.limits, body, self.zstd_context
        )
        self.budget -= len(payload)
        if self.budget < 0:
            raise aedat4.over_limit(len(payload), size, self.budget + len(payload), body)
        payloads.append((payload, body))
        self.pos += size
        self.pending = bytearray()
        self.packet = None

    def _packet_header(self) -> None:
        pos = self.pos
        if len(self.pending) < aedat4.PACKET_HEADER.size:  # the data table position cuts it short
            raise EventDecodeError(aedat4.NAME, "file ends inside a packet header", pos)
        stream_id, size = aedat4.PACKET_HEADER.unpack(self.pending)
        body = pos + aedat4.PACKET_HEADER.size
        if size < 0 or (self.end >= 0 and size > self.end - body):
            raise EventDecodeError(aedat4.NAME, f"packet size {size} runs past the end of the data", pos)
        if stream_id not in self.by_id:
            raise EventDecodeError(aedat4.NAME, f"packet for undeclared stream {stream_id}", pos)
        self.pending = bytearray()
        self.pos = body
        self.header_at, self.header_size = pos, size
        if stream_id != self.target.id:
            self.skip = size
            return
        if (self.compression == 0 and size > self.budget) or size > _most_compressed(self.budget):
            raise LimitExceededError(aedat4.NAME, "decompressed data exceed the max_decompressed_bytes limit", body)
        self.packet = size
