"""Events -> ``[T, 2, h, w]`` count frames, the one framing used by training and serving.

Spec (DESIGN.md section 4): ``x' = x * w // W``, ``y' = y * h // H``; channel 0 = OFF,
channel 1 = ON; ``split_by="number"`` gives T bins of ``N // T`` events in order with the
remainder in the last bin (SpikingJelly's convention); ``split_by="time"`` gives T equal spans
of ``[t_first, t_last]`` with the last event in the last bin (a zero-length recording puts
every event in bin 0; in a recording not sorted by time, events before ``t_first`` count in the
first bin and events after ``t_last`` in the last, never outside the frames).

The counting loop is compiled with numba: a single pass with no temporaries is several times
faster than any NumPy formulation (each needs int64 copies of every column). Sensor to frame
coordinates are a multiply and a shift (``Scale``), cheaper than a division or a lookup table
per event and with nothing allocated per sensor size. Recordings of ``PARALLEL_MIN_EVENTS``
or more are split over ``THREADS`` threads, the calling one and a pool (the kernels release
the GIL): by bins when splitting by number, so each thread owns whole frames, otherwise by
event ranges into private frames that are summed. numba's own ``parallel=True`` is not used
because its default threading layer may not be entered from several Python threads at once,
which the service does.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Literal

import numba
import numpy as np

from events.errors import EventDecodeError

SplitBy = Literal["number", "time"]

THREADS = min(2, os.cpu_count() or 1)
PARALLEL_MIN_EVENTS = 1 << 18
MAX_SENSOR = 1 << 20  # coordinates are 16-bit; anything larger is a mistake, not a sensor
_POOL = ThreadPoolExecutor(max_workers=max(1, THREADS - 1), thread_name_prefix="framing")


@dataclass(frozen=True)
class FramingSpec:
    """How a model wants its input: T bins, ``width x height`` frames, split by count or time."""

    time_steps: int
    width: int
    height: int
    split_by: SplitBy = "number"

    def __post_init__(self) -> None:
        if self.time_steps < 1 or self.width < 1 or self.height < 1:
            raise ValueError(f"time_steps, width and height must be positive: {self}")
        if self.split_by not in ("number", "time"):
            raise ValueError(f"split_by must be 'number' or 'time', not {self.split_by!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> FramingSpec:
        return cls(int(data["time_steps"]), int(data["width"]), int(data["height"]), data.get("split_by", "number"))


@dataclass(frozen=True)
class Scale:
    """``v -> v * frame // sensor`` for every 16-bit coordinate ``v``, as ``(v * factor) >> shift``.

    Exact: ``factor / 2**shift`` exceeds ``frame / sensor`` by at most ``2**-shift``, so for
    ``v < 2**16`` the product is off by less than ``1 / sensor``, which is less than the
    distance from ``v * frame / sensor`` to the next integer whenever that is not zero. A
    multiply and a shift replace a per-event division or a table lookup.
    """

    factor: int
    shift: int

    @classmethod
    def of(cls, sensor: int, frame: int) -> Scale:
        if not 0 < frame < 1 << 29 or sensor < 1:
            raise ValueError(f"cannot scale a {sensor}-pixel axis to {frame}")
        shift = 17 + sensor.bit_length()
        return cls((frame << shift) // sensor + 1, shift)


@numba.njit(cache=True, nogil=True, inline="always")
def _offset(x, y, sx, kx, sy, ky, w):  # pragma: no cover - compiled
    """The flat offset of sensor pixel ``(x, y)`` inside one ``h x w`` plane."""
    return ((np.uint64(y) * sy) >> ky) * w + ((np.uint64(x) * sx) >> kx)


@numba.njit(cache=True, nogil=True)
def _count_by_number(x, y, p, width, height, sx, kx, sy, ky, out, start, stop) -> int:  # pragma: no cover
    """Events ``[start, stop)`` into bins of ``N // T`` events in order, remainder in the last.

    Returns the first bad event index or -1.
    """
    steps = out.shape[0]
    w = np.uint64(out.shape[3])
    plane = np.uint64(out.shape[2]) * w
    flat = out.reshape(-1)
    width, height = np.uint64(width), np.uint64(height)
    n = len(x)
    per_bin = n // steps
    b = min(start // per_bin, steps - 1)
    i = start
    while i < stop:
        end = stop if b == steps - 1 else min((b + 1) * per_bin, stop)
        base = np.uint64(2 * b) * plane
        for j in range(i, end):
            if (np.uint64(x[j]) >= width) | (np.uint64(y[j]) >= height):
                return j
            flat[base + np.uint64(p[j] != 0) * plane + _offset(x[j], y[j], sx, kx, sy, ky, w)] += np.float32(1.0)
        i = end
        b += 1
    return -1


@numba.njit(cache=True, nogil=True)
def _count_by_time(t, x, y, p, width, height, sx, kx, sy, ky, out, start, stop) -> int:  # pragma: no cover
    """Events ``[start, stop)`` into T equal spans of ``[t_first, t_last]``; returns the first bad index or -1."""
    steps = out.shape[0]
    w = np.uint64(out.shape[3])
    plane = np.uint64(out.shape[2]) * w
    flat = out.reshape(-1)
    width, height = np.uint64(width), np.uint64(height)
    t0 = t[0]
    span = t[len(t) - 1] - t0
    for i in range(start, stop):
        if (np.uint64(x[i]) >= width) | (np.uint64(y[i]) >= height):
            return i
        b = 0 if span <= 0 else min(max((t[i] - t0) * steps // span, 0), steps - 1)
        flat[np.uint64(2 * b + (p[i] != 0)) * plane + _offset(x[i], y[i], sx, kx, sy, ky, w)] += np.float32(1.0)
    return -1


@functools.lru_cache(maxsize=64)
def _kernel_scales(width: int, height: int, w: int, h: int) -> tuple[np.uint64, ...]:
    """The x and y ``Scale`` as the kernels take them (cached: a server sees few sensor sizes)."""
    sx, sy = Scale.of(width, w), Scale.of(height, h)
    return np.uint64(sx.factor), np.uint64(sx.shift), np.uint64(sy.factor), np.uint64(sy.shift)


def _cuts(n: int, steps: int, split_by: SplitBy) -> tuple[np.ndarray, bool]:
    """Event ranges for the threads, and whether they cover disjoint bins (so may share one output)."""
    if split_by == "number" and steps >= THREADS:
        bins = np.linspace(0, steps, THREADS + 1).astype(np.int64)
        cuts = bins * (n // steps)
        cuts[-1] = n
        return cuts, True
    return np.linspace(0, n, THREADS + 1).astype(np.int64), False


def _count(events: np.ndarray, width: int, height: int, out: np.ndarray, split_by: SplitBy) -> int:
    """Count every event into ``out``, on ``THREADS`` threads for large inputs; the first bad index or -1."""
    t, x, y, p = events["t"], events["x"], events["y"], events["p"]

    scales = _kernel_scales(width, height, out.shape[3], out.shape[2])

    def count(part: np.ndarray, start: int, stop: int) -> int:
        if split_by == "time":
            return _count_by_time(t, x, y, p, width, height, *scales, part, start, stop)
        return _count_by_number(x, y, p, width, height, *scales, part, start, stop)

    n = len(events)
    if n < PARALLEL_MIN_EVENTS or THREADS < 2:
        return count(out, 0, n)
    cuts, disjoint = _cuts(n, out.shape[0], split_by)
    parts = [out] * THREADS if disjoint else [out] + [np.zeros_like(out) for _ in range(THREADS - 1)]
    ranges = list(zip(parts, cuts[:-1], cuts[1:], strict=True))
    jobs = [_POOL.submit(count, part, a, b) for part, a, b in ranges[1:]]
    first = count(*ranges[0])  # on this thread: waking a second pool worker took milliseconds
    bad = [i for i in (first, *(job.result() for job in jobs)) if i >= 0]
    if not disjoint:
        for part in parts[1:]:
            out += part
    return min(bad) if bad else -1


def frame_events(events: np.ndarray, sensor_size: tuple[int, int], spec: FramingSpec) -> np.ndarray:
    """Count events into ``float32 [T, 2, h, w]`` frames; too few events is an ``EventDecodeError``."""
    width, height = int(sensor_size[0]), int(sensor_size[1])
    n = len(events)
    if n < spec.time_steps:
        raise EventDecodeError("framing", f"{n} events cannot fill {spec.time_steps} time steps")
    if not (0 < width <= MAX_SENSOR and 0 < height <= MAX_SENSOR):
        raise EventDecodeError("framing", f"sensor size {width}x{height} is outside 1..{MAX_SENSOR} pixels a side")
    out = np.zeros((spec.time_steps, 2, spec.height, spec.width), dtype=np.float32)
    bad = _count(events, width, height, out, spec.split_by)
    if bad >= 0:
        x, y = int(events["x"][bad]), int(events["y"][bad])
        raise EventDecodeError("framing", f"event {bad} at ({x}, {y}) lies outside the {width}x{height} sensor")
    return out
