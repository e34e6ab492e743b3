"""Prophesee ``.dat`` files of CD events (Metavision / psee_loader, e.g. the Gen1 and 1Mpx
automotive datasets): format name ``dat``.

Layout: a ``%`` header (``% Version 2``, ``% Width 1280``, ``% Height 720``, ``% Date ...``; see
``events.prophesee_header``), then one byte of event type and one byte of event size (8), then
little-endian 8-byte records: a 32-bit timestamp (µs), then a 32-bit word packing

- version 2 (and files that name no version, as Metavision reads them): ``x`` bits 0-13,
  ``y`` bits 14-27, polarity bits 28-31;
- version 1 (early ATIS files): ``x`` bits 0-8, ``y`` bits 9-16, polarity bits 17-20.

Only CD (type ``0x0C``) and 2D (``0x00``) files hold polarity events; an external-trigger file
(``0x0E``) or any other type is rejected (trigger events are not part of the output). A file that
does not start with ``%`` has no header and no type/size bytes (Metavision's rule for such files):
it decodes only when ``format="dat"`` is given, as version 2. A header with nothing after it
(faery writes that for an empty recording) is an empty recording.

Policy: the 32-bit timestamp wraps every 71.6 minutes; a timestamp more than ``2**31`` µs below the
previous one is a wrap and adds ``2**32`` from there on (faery's rule). A smaller step back is
kept as the file gives it (Metavision's reader keeps raw timestamps; faery clamps them to the
running maximum, so the two differ only on such files). faery's ``% T0`` header line, when present,
is added to every timestamp. Polarity must be 0 (OFF) or 1 (ON): any other value is rejected rather
than guessed (Metavision reads bit 28 only, faery any non-zero value as ON).

Validation (hostile input): a file that ends inside a record or inside the type/size bytes, an
event size other than 8, an event outside the stated ``Width`` x ``Height`` (files without a size
get the smallest size holding every event, ``sensor_from_header=False``), an unknown version, or
more than ``DecodeLimits.max_events`` events raise ``EventDecodeError``.

Speed: the record count is known from the file size, so the output is allocated once; NumPy
decodes 64K records at a time from 2 MB chunks.
"""

from __future__ import annotations

from typing import BinaryIO

import numpy as np

from events.chunked import check_whole_words, data_end, read_words
from events.errors import EventDecodeError
from events.event_sink import EventSink
from events.evt_common import Extent, as_events, check_inside, check_writable, make_recording
from events.format import DecodeLimits, Format
from events.prophesee_header import PropheseeHeader, header_bytes, read_header, sniff_evt_version, split_lines
from events.recording import Recording
from events.write_target import write_parts

NAME = "dat"
PIECE_RECORDS = 1 << 16
RECORD = np.dtype([("t", "<u4"), ("d", "<u4")])
CD_TYPES = {0x0C: "cd", 0x00: "2d"}
# version: (x mask, y shift, y mask, polarity shift, largest width, largest height)
LAYOUTS = {1: (0x1FF, 9, 0xFF, 17, 512, 256), 2: (0x3FFF, 14, 0x3FFF, 28, 16384, 16384)}


def _unwrap(raw: np.ndarray, state: list[int]) -> np.ndarray:
    t = raw.astype(np.int64)
    previous = np.empty_like(t)
    previous[0] = state[0] if state[0] >= 0 else t[0]
    previous[1:] = t[:-1]
    back = (previous - t) > (1 << 31)
    state[0] = int(t[-1])
    if back.any():
        wraps = np.cumsum(back) + state[1]
        state[1] = int(wraps[-1])
        return t + (wraps << 32)
    return t + (state[1] << 32) if state[1] else t


def _decode(stream: BinaryIO, limits: DecodeLimits) -> Recording:
    begin = stream.tell()
    head = stream.read(1)
    stream.seek(begin)
    if head == b"%":
        header = read_header(stream, NAME, 16384, 16384)
        if header.evt_version is not None:
            raise EventDecodeError(NAME, f"the header declares EVT {header.evt_version} (a .raw file), not .dat", 0)
        version_text = header.fields.get("version", "2").strip()
        if version_text not in ("1", "2"):
            raise EventDecodeError(NAME, f"unsupported .dat version {version_text[:40]!r} (1 or 2)", 0)
        version = int(version_text)
        start, end = header.data_offset, data_end(stream)
        if end == start:
            kind = "cd"
        else:
            type_size = stream.read(2)
            if len(type_size) < 2:
                raise EventDecodeError(NAME, "file ends inside the event type/size bytes", start)
            if type_size[0] not in CD_TYPES:
                what = " (external triggers)" if type_size[0] == 0x0E else ""
                raise EventDecodeError(NAME, f"event type 0x{type_size[0]:02X}{what} is not CD events", start)
            if type_size[1] != 8:
                raise EventDecodeError(NAME, f"event size {type_size[1]} (expected 8)", start + 1)
            kind = CD_TYPES[type_size[0]]
            start += 2
    else:
        header, version, kind = PropheseeHeader(data_offset=begin), 2, "cd (no header)"
        start, end = begin, data_end(stream)
    x_mask, y_shift, y_mask, p_shift, max_w, max_h = LAYOUTS[version]
    size = header.stated_size
    if size is not None and (size[0] > max_w or size[1] > max_h):
        raise EventDecodeError(NAME, f"size {size[0]}x{size[1]} beyond what version {version} can address", 0)
    check_whole_words(NAME, start, end, 8, "record")
    sink = EventSink(NAME, limits.max_events, (end - start) // 8)
    state = [-1, 0]
    extent = Extent()
    for offset, records in read_words(stream, NAME, start, end, RECORD):
        for i in range(0, len(records), PIECE_RECORDS):
            piece = records[i : i + PIECE_RECORDS]
            at = offset + 8 * i
            d = piece["d"]
            p = d >> p_shift
            p &= 0xF
            if int(p.max()) > 1:
                bad = int(np.argmax(p > 1))
                raise EventDecodeError(NAME, f"polarity field {int(p[bad])} is neither 0 nor 1", at + 8 * bad)
            x = d & x_mask
            y = d >> y_shift
            y &= y_mask
            check_inside(NAME, x, y, size, lambda j, at=at: at + 8 * j)
            if size is None:
                extent.update(x, y)
            t = _unwrap(piece["t"], state)
            if header.t0:
                t += header.t0
            out = sink.reserve(len(piece), at)
            out["t"] = t
            out["x"] = x
            out["y"] = y
            out["p"] = p
    return make_recording(NAME, sink.result(), header, {"dat_version": version, "event_type": kind}, extent)


def write_dat(path_or_file, events: np.ndarray, sensor_size=None) -> None:
    """Write CD events as a version-2 ``.dat`` file (Metavision's header, type 0x0C, 8-byte records).

    Timestamps must start below ``2**32`` µs and never step forward by ``2**31`` µs or more (the
    32-bit field wraps and the reader unwraps only steps it can tell apart).
    """
    size = check_writable(events, sensor_size, 16384, 16384, ".dat")
    events = as_events(events)
    t = events["t"].astype(np.int64)
    if len(t) and (int(t[0]) >= 1 << 32 or (len(t) > 1 and int(np.diff(t).max()) >= 1 << 31)):
        raise ValueError(".dat cannot represent a first timestamp >= 2**32 or a gap >= 2**31 µs")
    records = np.empty(len(events), dtype=RECORD)
    records["t"] = (t & 0xFFFF_FFFF).astype(np.uint32)
    records["d"] = (
        events["x"].astype(np.uint32)
        | (events["y"].astype(np.uint32) << 14)
        | ((events["p"] > 0).astype(np.uint32) << 28)
    )
    header = header_bytes(["Data file containing CD events.", "Version 2", f"Width {size[0]}", f"Height {size[1]}"])
    write_parts(path_or_file, [header, bytes([0x0C, 8]), records.tobytes()])


def _sniff(head: bytes) -> bool:
    if not head.startswith(b"%") or sniff_evt_version(head) is not None:
        return False
    lines, end, state = split_lines(head)
    if state == "done" and lines and lines[-1][1][1:].strip().lower() != b"end":
        return end + 2 > len(head) or (head[end] in (0x00, 0x0C, 0x0E) and head[end + 1] == 8)
    keys = {text[1:].strip().split(b" ", 1)[0].lower() for _, text in lines}
    return bool(keys & {b"version", b"width", b"height"})


DAT = Format(NAME, (".dat",), _sniff, _decode, "Prophesee .dat (CD events)")
