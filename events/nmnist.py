"""N-MNIST / N-Caltech101 ``.bin`` files (Orchard et al. 2015, ATIS): format name ``nmnist``.

Layout: no header; 5 bytes (40 bits) per event: byte 0 ``x`` (8 bits), byte 1 ``y`` (8 bits),
byte 2 bit 7 the polarity (1 = ON), then a 23-bit big-endian timestamp in µs (byte 2 bits 0-6,
bytes 3 and 4). As in the datasets' own reader (Orchard's ``eventvision.py``, which tonic's
``read_mnist_file`` copies), a record with ``y == 240`` is a timestamp-overflow marker: it is not
an event, and it adds ``2**13`` µs to its own and every later timestamp.

Detection: with no header, content sniffing is a plausibility test, not a magic number, and this
format comes last in ``events.formats.FORMATS`` so every other format is tried first. The first
bytes must not look like text or another format's header (``%``, ``#``, ``PK``, ``\\x93NUMPY``), hold
at least 4 records (all of them when the file is shorter than the sniff window, which must then
be a multiple of 5 bytes), and their timestamps must be non-decreasing for at least 95% of steps
with ``y <= 240``. A ``.bin`` file name breaks a tie with any other match. Pass
``format="nmnist"`` to skip detection.

Sensor: none is stored (N-MNIST is 34 x 34, N-Caltech101 recordings vary up to about 240 x 180), so
the recording gets the smallest size holding every event and ``sensor_from_header=False``.

Validation: a file that is not a whole number of 5-byte records, or more than
``DecodeLimits.max_events`` events, raises ``EventDecodeError``; any other 40-bit pattern is a
valid event.

Speed: the output is allocated once (the record count is known); the timestamp is read as one
big-endian uint32 view per record (bytes 1-4, ``y`` masked off), so each piece costs a handful of
NumPy passes.
"""

from __future__ import annotations

from typing import BinaryIO

import numpy as np

from events.chunked import check_whole_words, data_end, read_words
from events.event_sink import EventSink
from events.evt_common import Extent, as_events
from events.format import DecodeLimits, Format
from events.recording import Recording, smallest_sensor
from events.write_target import write_parts

NAME = "nmnist"
RECORD = 5
PIECE_RECORDS = 1 << 17
OVERFLOW_Y = 240
OVERFLOW_US = 1 << 13
MAX_TS = (1 << 23) - 1
_FOREIGN = (b"%", b"#", b"PK", b"\x93NUMPY")


def _fields(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x, y, p, ts)`` of ``raw`` (uint8, whole records); ``ts`` before overflow markers."""
    n = len(raw) // RECORD
    rec = raw.reshape(n, RECORD)
    be = np.ndarray((n,), dtype=">u4", buffer=raw, offset=1, strides=(RECORD,))
    ts = be & MAX_TS
    return rec[:, 0], rec[:, 1], rec[:, 2] >> 7, ts


def _decode(stream: BinaryIO, limits: DecodeLimits) -> Recording:
    start, end = stream.tell(), data_end(stream)
    check_whole_words(NAME, start, end, RECORD, "5-byte event")
    sink = EventSink(NAME, limits.max_events, (end - start) // RECORD)
    overflows = 0
    extent = Extent()
    for offset, raw in read_words(stream, NAME, start, end, np.uint8, chunk_bytes=RECORD * PIECE_RECORDS):
        n = len(raw) // RECORD
        rec = raw.reshape(n, RECORD)
        be = np.ndarray((n,), dtype=">u4", buffer=raw, offset=1, strides=(RECORD,))
        marks = np.flatnonzero(rec[:, 1] == OVERFLOW_Y)
        if len(marks) == 0:  # the common case (recordings shorter than 2**23 µs): straight into the output
            out = sink.reserve(n, offset)
            t = out["t"]
            np.bitwise_and(be, MAX_TS, out=t, casting="unsafe")
            if overflows:
                t += overflows * OVERFLOW_US
            out["x"] = rec[:, 0]
            out["y"] = rec[:, 1]
            np.right_shift(rec[:, 2], 7, out=out["p"])
            extent.update(rec[:, 0], rec[:, 1])
            continue
        # A marker (y == 240) adds 2**13 µs to its own and every later timestamp; it is not an event.
        keep = np.ones(n, dtype=bool)
        keep[marks] = False
        keep = np.flatnonzero(keep)
        kept_per_run = np.diff(marks, prepend=-1, append=n) - 1  # events before, between and after markers
        shift = np.repeat((np.arange(len(marks) + 1) + overflows) * OVERFLOW_US, kept_per_run)
        overflows += len(marks)
        kept = rec[keep]
        out = sink.reserve(len(keep), offset)
        t = out["t"]
        np.bitwise_and(be[keep], MAX_TS, out=t, casting="unsafe")
        t += shift
        out["x"] = kept[:, 0]
        out["y"] = kept[:, 1]
        np.right_shift(kept[:, 2], 7, out=out["p"])
        extent.update(kept[:, 0], kept[:, 1])
    events = sink.result()
    meta = {"overflow_markers": overflows, "sensor_source": "smallest size holding every event (no header)"}
    return Recording(events, extent.size(), NAME, sensor_from_header=False, metadata=meta)


def write_nmnist(path_or_file, events: np.ndarray, sensor_size=None) -> None:
    """Write events as N-MNIST ``.bin`` records (``x, y < 256``, ``y != 240``; polarity 1 = ON).

    Timestamps from ``2**23`` µs on are carried by overflow markers (``y == 240`` records, each
    adding ``2**13`` µs), as the dataset's format does; they must then be non-decreasing enough that
    every event still fits the 23-bit field after the markers already written.
    """
    check_writable_unsorted(events, sensor_size)
    events = as_events(events)
    t = events["t"].astype(np.int64)
    if len(t) and int(t.min()) < 0:
        raise ValueError("N-MNIST timestamps must be non-negative")
    if len(t) and int((events["y"] == OVERFLOW_Y).sum()):
        raise ValueError("y == 240 is the N-MNIST overflow marker, not an event row")
    need = np.maximum((t - MAX_TS + OVERFLOW_US - 1) // OVERFLOW_US, 0)
    marks = np.maximum.accumulate(need) if len(t) else need
    field = t - marks * OVERFLOW_US
    if len(t) and (int(field.min()) < 0 or int(field.max()) > MAX_TS):
        raise ValueError("timestamps step back too far after an overflow marker to fit 23 bits")
    at = np.arange(len(t)) + marks  # record index of each event: the markers go just before it
    out = np.zeros((len(t) + int(marks[-1] if len(t) else 0), RECORD), dtype=np.uint8)
    out[:, 1] = OVERFLOW_Y  # every record that is not an event is a marker
    out[at, 0] = events["x"]
    out[at, 1] = events["y"]
    out[at, 2] = ((events["p"] > 0).astype(np.uint8) << 7) | (field >> 16).astype(np.uint8)
    out[at, 3] = (field >> 8) & 0xFF
    out[at, 4] = field & 0xFF
    write_parts(path_or_file, [out.tobytes()])


def check_writable_unsorted(events: np.ndarray, sensor_size) -> tuple[int, int]:
    """Field checks for N-MNIST (timestamps may be unsorted; coordinates must fit one byte)."""
    events = np.asarray(events)
    if events.dtype.names is None or not {"t", "x", "y", "p"} <= set(events.dtype.names):
        raise ValueError("events must be a structured array with fields t, x, y, p")
    size = smallest_sensor(events) if sensor_size is None else (int(sensor_size[0]), int(sensor_size[1]))
    if not (1 <= size[0] <= 256 and 1 <= size[1] <= 256):
        raise ValueError(f"N-MNIST cannot describe a {size[0]}x{size[1]} sensor (at most 256x256)")
    if len(events) and (int(events["x"].max()) >= size[0] or int(events["y"].max()) >= size[1]):
        raise ValueError(f"events do not fit the {size[0]}x{size[1]} sensor")
    return size


def _sniff(head: bytes) -> bool:
    if head.startswith(_FOREIGN) or len(head) < 4 * RECORD:
        return False
    if len(head) < 4096 and len(head) % RECORD:
        return False
    raw = np.frombuffer(head, dtype=np.uint8, count=len(head) - len(head) % RECORD)
    first = raw[:256]
    if np.all(((first >= 32) & (first < 127)) | (first == 9) | (first == 10) | (first == 13)):
        return False  # text, not records
    _, y, _, ts = _fields(raw)
    if int(y.max()) > OVERFLOW_Y:
        return False
    marks = y == OVERFLOW_Y
    t = ts.astype(np.int64) + np.cumsum(marks) * OVERFLOW_US
    t = t[~marks]
    if len(t) < 4:
        return False
    return int((np.diff(t) < 0).sum()) <= 0.05 * (len(t) - 1)


NMNIST = Format(NAME, (".bin",), _sniff, _decode, "N-MNIST / N-Caltech101 .bin (40-bit ATIS events)")
