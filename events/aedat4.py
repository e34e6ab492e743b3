"""DV AEDAT 4.0 files (``#!AER-DAT4.0``): DV / dv-processing recordings, converted CIFAR10-DVS.

Layout (little-endian): ``#!AER-DAT4.0\\r\\n``; int32 IOHeader size; the IOHeader flatbuffer
(compression: NONE, LZ4, LZ4_HIGH, ZSTD, ZSTD_HIGH; dataTablePosition, -1 when absent;
infoNode: XML describing the streams: id, ``typeIdentifier``, ``sizeX``/``sizeY``); then
packets: int32 stream id, int32 payload size, payload (compressed per the IOHeader, one LZ4
frame / ZSTD frame per packet). A payload is a size-prefixed flatbuffer with a 4-byte
identifier; ``EVTS`` is an EventPacket whose only field is a vector of 16-byte structs
(int64 t µs, int16 x, int16 y, bool on, 3 pad bytes). Packets end at dataTablePosition (the
file data table that follows is not needed), else at the end of the file.

Policies:
- events come from the first ``EVTS`` stream the infoNode declares; packets of every other
  stream (frames ``FRME``, IMU ``IMUS``, triggers ``TRIG``, other event streams) are skipped
  by their size without being decompressed; a packet for an undeclared stream id is malformed;
- ``on`` != 0 is ON; coordinates must lie inside the stream's ``sizeX`` x ``sizeY`` (its
  sensor size); a stream without sizes gets the smallest size holding its events
  (``sensor_from_header=False``); a file without any event stream is an error;
- decompression is bounded by a cap: ``DecodeLimits.max_compression_ratio`` x the compressed
  size (at least 64 KiB), and never more than what is left of ``max_decompressed_bytes``. A
  frame that declares its content size is checked against the cap before it is inflated (a ZSTD
  frame within it is then inflated in one call); any other frame is inflated in 1 MiB steps that
  stop as soon as the output passes the cap;
- the infoNode XML may not contain a DOCTYPE or entity declarations (entity expansion bombs).

The flatbuffers are read by ``events.flatbuffer_reader`` (bounds-checked; see why there); each
packet's event vector is viewed with ``np.frombuffer`` and checked and copied into the output by
one compiled pass (after decompression that copy is most of a packet's cost, and NumPy needs
five passes for it). The output room is reserved up front for compressed files (see
``EventSink``).
"""

from __future__ import annotations

import os
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import BinaryIO

import lz4.frame
import numba
import numpy as np
import zstandard

from events.errors import EventDecodeError, LimitExceededError
from events.event_sink import EventSink
from events.flatbuffer_reader import FlatBuffer
from events.format import DecodeLimits, Format
from events.recording import Recording, smallest_sensor
from events.write_target import write_parts

NAME = "aedat4"
MAGIC = b"#!AER-DAT4.0\r\n"
COMPRESSIONS = ("none", "lz4", "lz4_high", "zstd", "zstd_high")
EVENT = np.dtype([("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("on", "u1"), ("pad", "V3")])
# the same struct with x, y read unsigned (a negative int16 becomes >= 32768, outside any sensor,
# so one comparison per axis checks both bounds) and the padding unnamed, as numba needs it
EVENT_UNSIGNED = np.dtype(
    {"names": ["t", "x", "y", "on"], "formats": ["<i8", "<u2", "<u2", "u1"], "offsets": [0, 8, 10, 12], "itemsize": 16}
)
PACKET_HEADER = struct.Struct("<ii")
MAX_IO_HEADER = 16 << 20
STEP = 1 << 20
MIN_CAP = 64 << 10


@dataclass(frozen=True)
class Stream:
    """One stream declared in the infoNode."""

    id: int
    type: str
    size: tuple[int, int] | None


def _parse_info(xml: bytes, offset: int) -> list[Stream]:
    if b"<!DOCTYPE" in xml or b"<!ENTITY" in xml:
        raise EventDecodeError(NAME, "infoNode XML declares a DOCTYPE or entities", offset)
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise EventDecodeError(NAME, f"infoNode is not well-formed XML ({exc})", offset) from None
    out_info = next((n for n in root.iter("node") if n.get("name") == "outInfo"), None)
    if out_info is None:
        raise EventDecodeError(NAME, "infoNode has no 'outInfo' node (no streams)", offset)
    streams = []
    for node in out_info.findall("node"):
        attrs = {a.get("key"): (a.text or "").strip() for a in node.findall("attr")}
        info = next((n for n in node.findall("node") if n.get("name") == "info"), None)
        info_attrs = {a.get("key"): (a.text or "").strip() for a in info.findall("attr")} if info is not None else {}
        try:
            stream_id = int(node.get("name", ""))
            size = (int(info_attrs["sizeX"]), int(info_attrs["sizeY"])) if "sizeX" in info_attrs else None
        except (ValueError, KeyError):
            raise EventDecodeError(NAME, f"stream node {node.get('name')!r} has a bad id or size", offset) from None
        if size is not None and not (0 < size[0] <= 32768 and 0 < size[1] <= 32768):
            raise EventDecodeError(NAME, f"stream {stream_id} declares an absurd size {size}", offset)
        streams.append(Stream(stream_id, attrs.get("typeIdentifier", ""), size))
    return streams


def read_io_header(stream: BinaryIO) -> tuple[int, int, list[Stream], int]:
    """``(compression, dataTablePosition, streams, first packet offset)``."""
    head = stream.read(len(MAGIC) + 4)
    if not head.startswith(MAGIC):
        raise EventDecodeError(NAME, "missing '#!AER-DAT4.0' version line", 0)
    if len(head) < len(MAGIC) + 4:
        raise EventDecodeError(NAME, "file ends before the IOHeader size", len(head))
    (size,) = struct.unpack_from("<i", head, len(MAGIC))
    if not 0 < size <= MAX_IO_HEADER:
        raise EventDecodeError(NAME, f"absurd IOHeader size {size}", len(MAGIC))
    start = len(MAGIC) + 4
    data = stream.read(size)
    if len(data) != size:
        raise EventDecodeError(NAME, "file ends inside the IOHeader", start + len(data))
    fb = FlatBuffer(data, NAME, start)
    table = fb.root()
    compression = fb.scalar(table, 0, "<i", 0)
    if not 0 <= compression < len(COMPRESSIONS):
        raise EventDecodeError(NAME, f"unknown compression {compression}", start)
    position = fb.scalar(table, 1, "<q", -1)
    info = fb.string(table, 2)
    if info is None:
        raise EventDecodeError(NAME, "IOHeader has no infoNode", start)
    return compression, position, _parse_info(info, start), start + size


def _cap(compressed: int, budget: int, limits: DecodeLimits) -> int:
    return min(budget, max(MIN_CAP, int(compressed * limits.max_compression_ratio)))


def over_limit(size: int, compressed: int, budget: int, offset: int) -> LimitExceededError:
    if size > budget:
        return LimitExceededError(NAME, "decompressed data exceed the max_decompressed_bytes limit", offset)
    problem = f"packet inflates beyond the compression-ratio limit ({compressed} bytes in)"
    return LimitExceededError(NAME, problem, offset)


def _inflate_zstd(data: bytes, cap: int, context: zstandard.ZstdDecompressor):
    declared = zstandard.frame_content_size(data)
    if declared > cap:
        raise OverflowError(declared)
    if declared >= 0:  # the size is known and within the cap: one call, one exact allocation
        return context.decompress(data)
    reader = context.stream_reader(data, read_across_frames=True)
    out = bytearray()
    while chunk := reader.read(STEP):
        out += chunk
        if len(out) > cap:
            raise OverflowError(len(out))
    return out


def _inflate_lz4(data: bytes, cap: int):
    out = bytearray()
    remaining = data
    while remaining:
        declared = lz4.frame.get_frame_info(remaining)["content_size"]
        if declared > cap:
            raise OverflowError(declared)
        decompressor = lz4.frame.LZ4FrameDecompressor()
        chunk = decompressor.decompress(remaining, max_length=STEP)
        if decompressor.eof and not decompressor.unused_data and not out and len(chunk) <= cap:
            return chunk  # the usual packet: one frame inflated in one call, no extra copy
        out += chunk
        while not decompressor.eof:
            if len(out) > cap:
                raise OverflowError(len(out))
            if decompressor.needs_input:
                raise ValueError("truncated LZ4 frame")
            out += decompressor.decompress(b"", max_length=STEP)
        if len(out) > cap:
            raise OverflowError(len(out))
        remaining = decompressor.unused_data
    return out


def inflate(data: bytes, compression: int, budget: int, limits: DecodeLimits, offset: int, zstd_context):
    """The packet payload, inflated within the ratio and byte budget."""
    if compression == 0:
        return data
    cap = _cap(len(data), budget, limits)
    try:
        return _inflate_lz4(data, cap) if compression in (1, 2) else _inflate_zstd(data, cap, zstd_context)
    except OverflowError as exc:
        raise over_limit(int(exc.args[0]), len(data), budget, offset) from None
    except Exception as exc:  # a native decompressor's error must not reach the caller as-is
        kind = "LZ4" if compression in (1, 2) else "ZSTD"
        raise EventDecodeError(NAME, f"corrupt {kind} packet ({type(exc).__name__})", offset) from None


def decode_events(payload, offset: int, size: tuple[int, int] | None, sink: EventSink) -> None:
    if len(payload) < 8:
        raise EventDecodeError(NAME, "event packet shorter than a flatbuffer header", offset)
    (prefix,) = struct.unpack_from("<I", payload, 0)
    if prefix > len(payload) - 4:
        raise EventDecodeError(NAME, f"event packet size prefix {prefix} exceeds its {len(payload)} bytes", offset)
    fb = FlatBuffer(memoryview(payload)[4 : 4 + prefix], NAME, offset + 4)
    start, count = fb.vector(fb.root(b"EVTS"), 0, EVENT.itemsize)
    if count == 0:
        return
    events = np.frombuffer(payload, dtype=EVENT_UNSIGNED, count=count, offset=4 + start)
    width, height = size or (32768, 32768)
    if _copy_events(events, width, height, sink.reserve(count, offset)) >= 0:
        where = f"the {size[0]}x{size[1]} sensor" if size else "0..32767"
        raise EventDecodeError(NAME, f"event coordinates outside {where}", offset)


@numba.njit(cache=True, nogil=True)
def _copy_events(events, width, height, out) -> int:  # pragma: no cover - compiled
    """Copy packet events into the packed output in one pass; the first one outside the sensor or -1.

    One pass instead of NumPy's five (two maxima, four field copies and a polarity temporary):
    after decompression, this copy is most of what an event packet costs.
    """
    for i in range(len(events)):
        e = events[i]
        if (e.x >= width) | (e.y >= height):
            return i
        r = out[i]
        r.t = e.t
        r.x = e.x
        r.y = e.y
        r.p = e.on != 0
    return -1


def _decode(stream: BinaryIO, limits: DecodeLimits) -> Recording:
    compression, table_position, streams, pos = read_io_header(stream)
    by_id = {s.id: s for s in streams}
    target = next((s for s in streams if s.type == "EVTS"), None)
    if target is None:
        raise EventDecodeError(NAME, f"no event stream (streams: {[s.type for s in streams]})", pos)
    end = stream.seek(0, os.SEEK_END)
    if table_position >= 0:
        if not pos <= table_position <= end:
            raise EventDecodeError(NAME, f"dataTablePosition {table_position} outside the file", pos)
        end = table_position
    inflated = end - pos if compression == 0 else _cap(end - pos, limits.max_decompressed_bytes, limits)
    sink = EventSink(NAME, limits.max_events, (end - pos) // EVENT.itemsize, most=inflated // EVENT.itemsize)
    budget = limits.max_decompressed_bytes
    skipped: dict[str, int] = {}
    zstd_context = zstandard.ZstdDecompressor() if compression in (3, 4) else None
    while pos < end:
        stream.seek(pos)
        header = stream.read(PACKET_HEADER.size)
        if len(header) != PACKET_HEADER.size or pos + PACKET_HEADER.size > end:
            raise EventDecodeError(NAME, "file ends inside a packet header", pos)
        stream_id, size = PACKET_HEADER.unpack(header)
        body = pos + PACKET_HEADER.size
        if size < 0 or size > end - body:
            raise EventDecodeError(NAME, f"packet size {size} runs past the end of the data", pos)
        if stream_id not in by_id:
            raise EventDecodeError(NAME, f"packet for undeclared stream {stream_id}", pos)
        if stream_id == target.id:
            data = stream.read(size)
            if len(data) != size:
                raise EventDecodeError(NAME, "file ends inside a packet", body + len(data))
            payload = inflate(data, compression, budget, limits, body, zstd_context)
            budget -= len(payload)
            if budget < 0:
                raise over_limit(len(payload), size, budget + len(payload), body)
            decode_events(payload, body, target.size, sink)
        else:
            kind = by_id[stream_id].type
            skipped[kind] = skipped.get(kind, 0) + 1
        pos = body + size
    events = sink.result()
    metadata = {"compression": COMPRESSIONS[compression], "streams": [s.type for s in streams], "skipped": skipped}
    if target.size is None:
        return Recording(events, smallest_sensor(events), NAME, sensor_from_header=False, metadata=metadata)
    return Recording(events, target.size, NAME, sensor_from_header=True, metadata=metadata)


def _info_node(compression: str, size: tuple[int, int], source: str) -> bytes:
    width, height = size
    return (
        '<dv version="2.0">\n'
        '    <node name="outInfo" path="/outInfo/">\n'
        '        <node name="0" path="/outInfo/0/">\n'
        f'            <attr key="compression" type="string">{compression.upper()}</attr>\n'
        '            <attr key="originalModuleName" type="string">stlsnn-serve</attr>\n'
        '            <attr key="originalOutputName" type="string">events</attr>\n'
        '            <attr key="typeDescription" type="string">Array of events (polarity ON/OFF).</attr>\n'
        '            <attr key="typeIdentifier" type="string">EVTS</attr>\n'
        '            <node name="info" path="/outInfo/0/info/">\n'
        f'                <attr key="sizeX" type="int">{width}</attr>\n'
        f'                <attr key="sizeY" type="int">{height}</attr>\n'
        f'                <attr key="source" type="string">{source}</attr>\n'
        "            </node>\n"
        "        </node>\n"
        "    </node>\n"
        "</dv>\n"
    ).encode("ascii")


def io_header(compression: int, info: bytes, data_table_position: int = -1) -> bytes:
    """The IOHeader flatbuffer: root table with compression, dataTablePosition and infoNode.

    Layout (8-byte aligned from the buffer start, as DV writes it): root offset, ``IOHE``,
    vtable (10 bytes + 2 pad), table (soffset, int64 position, int32 compression, string
    offset), then the NUL-terminated string padded to 4 bytes.
    """
    vtable = struct.pack("<HHHHHH", 10, 20, 12, 4, 16, 0)
    table = struct.pack("<iqiI", 20 - 8, data_table_position, compression, 4)
    string = struct.pack("<I", len(info)) + info + b"\0"
    string += b"\0" * (-len(string) % 4)
    return struct.pack("<I", 20) + b"IOHE" + vtable + table + string


def event_packet(events: np.ndarray) -> bytes:
    """A size-prefixed ``EVTS`` EventPacket flatbuffer holding ``events`` (8-byte aligned elements)."""
    body = np.zeros(len(events), dtype=EVENT)
    body["t"] = events["t"]
    body["x"] = events["x"]
    body["y"] = events["y"]
    body["on"] = events["p"] > 0
    rest = struct.pack("<I", 16) + b"EVTS" + struct.pack("<HHHH", 6, 8, 4, 0) + struct.pack("<iII", 8, 4, len(body))
    return struct.pack("<I", len(rest) + body.nbytes) + rest + body.tobytes()


def write_aedat4(
    path_or_file,
    events: np.ndarray,
    sensor_size: tuple[int, int],
    compression: str = "lz4",
    packet_events: int = 10_000,
    source: str = "stlsnn-serve",
) -> None:
    """Write events as DV AEDAT 4.0 with one event stream, ``packet_events`` per packet.

    ``compression`` is one of none, lz4, lz4_high, zstd, zstd_high (one frame per packet).
    No file data table is written (dataTablePosition = -1), which DV readers accept.
    """
    kind = COMPRESSIONS.index(compression.lower())
    width, height = int(sensor_size[0]), int(sensor_size[1])
    if len(events) and (int(events["x"].max()) >= width or int(events["y"].max()) >= height):
        raise ValueError(f"events do not fit the {width}x{height} sensor")
    header = io_header(kind, _info_node(compression, (width, height), source))
    parts = [MAGIC, struct.pack("<i", len(header)), header]
    for start in range(0, len(events), packet_events):
        payload = event_packet(events[start : start + packet_events])
        if kind in (1, 2):
            payload = lz4.frame.compress(payload, compression_level=9 if kind == 2 else 0)
        elif kind in (3, 4):
            payload = zstandard.ZstdCompressor(level=19 if kind == 4 else 3).compress(payload)
        parts += [PACKET_HEADER.pack(0, len(payload)), payload]
    write_parts(path_or_file, parts)


AEDAT4 = Format(NAME, (".aedat4",), lambda head: head.startswith(MAGIC), _decode, "DV AEDAT 4.0 (LZ4/ZSTD packets)")
