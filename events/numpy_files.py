"""``.npy`` / ``.npz`` event files as tonic and SpikingJelly write them.

Accepted layouts: a structured array with fields ``t, x, y, p`` (tonic's ``np.save``), or an
``.npz`` archive with one array per field ``t, x, y, p`` (SpikingJelly's DVS caches). ``t`` is
in microseconds (both libraries' convention); polarity is 1 = ON, 0 = OFF (``-1`` is read as OFF).
Pickled objects are never loaded. Zip members are size-checked before inflation.
"""

from __future__ import annotations

import io
import zipfile
from typing import BinaryIO

import numpy as np

from events.errors import EventDecodeError, LimitExceededError
from events.format import DecodeLimits, Format
from events.recording import EVENT_DTYPE, Recording, make_events, smallest_sensor

FIELDS = ("t", "x", "y", "p")


def _columns_to_recording(name: str, cols: dict[str, np.ndarray], limits: DecodeLimits) -> Recording:
    missing = [f for f in FIELDS if f not in cols]
    if missing:
        raise EventDecodeError(name, f"missing fields {missing}; need t, x, y, p")
    arrays = [np.asarray(cols[f]).reshape(-1) for f in FIELDS]
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise EventDecodeError(name, "fields t, x, y, p have different lengths")
    if n > limits.max_events:
        raise LimitExceededError(name, f"{n} events exceed the limit of {limits.max_events}")
    for f, a in zip(FIELDS, arrays, strict=True):
        if a.dtype.kind not in "iub" and not (a.dtype.kind == "f" and f == "t"):
            raise EventDecodeError(name, f"field {f!r} has non-integer dtype {a.dtype}")
    t, x, y, p = arrays
    if n and (x.min() < 0 or y.min() < 0 or x.max() > 65535 or y.max() > 65535):
        raise EventDecodeError(name, "coordinates outside 0..65535")
    p = (p > 0).astype(np.uint8)
    events = make_events(t.astype(np.int64), x, y, p)
    return Recording(events, smallest_sensor(events), name, sensor_from_header=False)


def _decode_npy(stream: BinaryIO, limits: DecodeLimits) -> Recording:
    try:
        array = np.load(stream, allow_pickle=False)
    except Exception as exc:
        raise EventDecodeError("npy", f"not a readable .npy array ({exc})", 0) from None
    if array.dtype.names is None:
        if array.ndim == 2 and array.shape[1] == 4:
            cols = {f: array[:, i] for i, f in enumerate(FIELDS)}
        else:
            raise EventDecodeError("npy", f"expected a structured t,x,y,p array or N x 4, got {array.shape}")
    else:
        cols = {f: array[f] for f in array.dtype.names}
    return _columns_to_recording("npy", cols, limits)


def _decode_npz(stream: BinaryIO, limits: DecodeLimits) -> Recording:
    try:
        with zipfile.ZipFile(stream) as archive:
            budget = limits.max_decompressed_bytes
            for info in archive.infolist():
                if info.file_size > budget:
                    raise LimitExceededError("npz", f"member {info.filename!r} inflates beyond the limit")
                ratio = info.file_size / max(info.compress_size, 1)
                if info.file_size > 1 << 20 and ratio > limits.max_compression_ratio:
                    raise LimitExceededError("npz", f"member {info.filename!r} has compression ratio {ratio:.0f}")
                budget -= info.file_size
            cols = {}
            for info in archive.infolist():
                key = info.filename.removesuffix(".npy")
                with archive.open(info) as member:
                    cols[key] = np.load(io.BytesIO(member.read()), allow_pickle=False)
    except EventDecodeError:
        raise
    except Exception as exc:
        raise EventDecodeError("npz", f"not a readable .npz archive ({type(exc).__name__}: {exc})", 0) from None
    if set(FIELDS) <= cols.keys():
        return _columns_to_recording("npz", cols, limits)
    for value in cols.values():
        if value.dtype.names and set(FIELDS) <= set(value.dtype.names):
            return _columns_to_recording("npz", {f: value[f] for f in FIELDS}, limits)
    raise EventDecodeError("npz", f"archive holds {sorted(cols)}, need arrays t, x, y, p")


def write_npz(path_or_file, events: np.ndarray) -> None:
    """Write events the way SpikingJelly caches them: one array per field, compressed."""
    np.savez_compressed(path_or_file, **{f: events[f] for f in FIELDS})


def write_npy(path_or_file, events: np.ndarray) -> None:
    """Write events the way tonic saves them: one structured array."""
    np.save(path_or_file, np.asarray(events, dtype=EVENT_DTYPE), allow_pickle=False)


NPZ = Format("npz", (".npz",), lambda head: head.startswith(b"PK\x03\x04"), _decode_npz, "NumPy archive t,x,y,p")
NPY = Format("npy", (".npy",), lambda head: head.startswith(b"\x93NUMPY"), _decode_npy, "NumPy structured array")
