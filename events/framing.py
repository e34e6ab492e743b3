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
per event and with nothing allocated per sensor size; frames at sensor resolution skip even
that. Inner loops run over slices from index 0: numba then knows indices are not negative and
drops its per-access wraparound arithmetic, which made the loop a third slower.

Recordings of ``PARALLEL_MIN_EVENTS`` or more are shared with a helper thread (the kernels
release the GIL) through atomic work counters (``events.work_sharing``): the calling thread starts
at once and the helper claims what is left when it wakes, so its wake-up delay (a sizeable part
of framing a few hundred thousand events on these virtual machines) is never waited for.
numba's own ``parallel=True`` is not used because its default threading layer may not be
entered from several Python threads at once, which the service does.
"""

from __future__ import annotations

import functools
import os
from dataclasses import asdict, dataclass
from typing import Literal

import numba
import numpy as np

from events.errors import EventDecodeError
from events.work_sharing import HelperThreads, fetch_increment, wait_until

SplitBy = Literal["number", "time"]

THREADS = min(2, os.cpu_count() or 1)
PARALLEL_MIN_EVENTS = 1 << 18
MAX_SENSOR = 1 << 20  # coordinates are 16-bit; anything larger is a mistake, not a sensor
_HELPERS = HelperThreads(THREADS - 1, "framing")


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


NEXT, DONE = 0, 1  # slots of the shared work counters; splitting by time, thread k's units are at 2 + k
TIME_UNIT_EVENTS = 1 << 15  # events per unit of work when splitting by time


@numba.njit(cache=True, nogil=True, inline="always")
def _count_run(xs, ys, ps, flat, base, plane, w, width, height, sx, kx, sy, ky, scaled):  # pragma: no cover
    """Count events whose bin starts at ``base``; the index of the first outside the sensor, or -1.

    ``scaled`` is a constant at each call, so frames at sensor resolution skip the multiply.
    """
    for j in range(len(xs)):
        if (np.uint64(xs[j]) >= width) | (np.uint64(ys[j]) >= height):
            return j
        pixel = _offset(xs[j], ys[j], sx, kx, sy, ky, w) if scaled else np.uint64(ys[j]) * w + np.uint64(xs[j])
        flat[base + np.uint64(ps[j] != 0) * plane + pixel] += np.float32(1.0)
    return -1


@numba.njit(cache=True, nogil=True)
def _count_by_number(x, y, p, width, height, sx, kx, sy, ky, out, work, bad):  # pragma: no cover
    """Claim bins from ``work`` until none is left; zero each claimed bin's frames and count its events.

    Bin ``b`` holds events ``[b * N // T, (b + 1) * N // T)``, the remainder in the last bin;
    ``bad[b]`` gets its first event outside the sensor or -1.
    """
    steps = out.shape[0]
    w = np.uint64(out.shape[3])
    plane = np.uint64(out.shape[2]) * w
    flat = out.reshape(-1)
    scaled = width != out.shape[3] or height != out.shape[2]
    width, height = np.uint64(width), np.uint64(height)
    per_bin = len(x) // steps
    while True:
        b = fetch_increment(work, NEXT)
        if b >= steps:
            return
        start = b * per_bin
        stop = len(x) if b == steps - 1 else start + per_bin
        xs, ys, ps = x[start:stop], y[start:stop], p[start:stop]
        out[b] = 0
        base = np.uint64(2 * b) * plane
        if scaled:
            first = _count_run(xs, ys, ps, flat, base, plane, w, width, height, sx, kx, sy, ky, True)
        else:
            first = _count_run(xs, ys, ps, flat, base, plane, w, width, height, sx, kx, sy, ky, False)
        bad[b] = first if first < 0 else start + first
        fetch_increment(work, DONE)


@numba.njit(cache=True, nogil=True)
def _count_by_time(t, x, y, p, width, height, sx, kx, sy, ky, out, work, bad, thread):  # pragma: no cover
    """Claim units of ``TIME_UNIT_EVENTS`` events from ``work`` and count them into ``out`` (zeroed).

    Event ``i`` falls in bin ``(t[i] - t[0]) * T // (t[-1] - t[0])`` clipped to ``[0, T - 1]``;
    ``bad[u]`` gets unit ``u``'s first event outside the sensor or -1.
    """
    steps = out.shape[0]
    w = np.uint64(out.shape[3])
    plane = np.uint64(out.shape[2]) * w
    flat = out.reshape(-1)
    width, height = np.uint64(width), np.uint64(height)
    n = len(t)
    t0 = t[0]
    span = t[n - 1] - t0
    units = len(bad)
    while True:
        u = fetch_increment(work, NEXT)
        if u >= units:
            return
        start = u * TIME_UNIT_EVENTS
        ts, xs, ys, ps = t[start:], x[start:], y[start:], p[start:]
        first = -1
        for i in range(min(TIME_UNIT_EVENTS, n - start)):
            if (np.uint64(xs[i]) >= width) | (np.uint64(ys[i]) >= height):
                first = start + i
                break
            b = 0 if span <= 0 else min(max((ts[i] - t0) * steps // span, 0), steps - 1)
            flat[np.uint64(2 * b + (ps[i] != 0)) * plane + _offset(xs[i], ys[i], sx, kx, sy, ky, w)] += np.float32(1.0)
        bad[u] = first
        work[2 + thread] += 1
        fetch_increment(work, DONE)


@functools.lru_cache(maxsize=64)
def _kernel_scales(width: int, height: int, w: int, h: int) -> tuple[np.uint64, ...]:
    """The x and y ``Scale`` as the kernels take them (cached: a server sees few sensor sizes)."""
    sx, sy = Scale.of(width, w), Scale.of(height, h)
    return np.uint64(sx.factor), np.uint64(sx.shift), np.uint64(sy.factor), np.uint64(sy.shift)


def _count(events: np.ndarray, width: int, height: int, spec: FramingSpec) -> tuple[np.ndarray, int]:
    """The frames of every event and the first event outside the sensor (or -1).

    The calling thread always works; for large inputs helper threads join when they wake and
    claim what is left, so a late one costs nothing, and the caller never waits for a thread
    that has not started. By number each bin is one unit and all threads share the frames;
    by time units are event ranges and each thread counts into its own frames, summed after.
    """
    t, x, y, p = events["t"], events["x"], events["y"], events["p"]
    scales = _kernel_scales(width, height, spec.width, spec.height)
    shape = (spec.time_steps, 2, spec.height, spec.width)
    threads = THREADS if len(events) >= PARALLEL_MIN_EVENTS else 1
    work = np.zeros(2 + threads, np.int64)
    if spec.split_by == "number":
        bad = np.empty(spec.time_steps, np.int64)
        parts = [np.empty(shape, np.float32)] * threads

        def count(thread: int) -> None:
            _count_by_number(x, y, p, width, height, *scales, parts[thread], work, bad)
    else:
        bad = np.empty(-(-len(events) // TIME_UNIT_EVENTS), np.int64)
        parts = [np.zeros(shape, np.float32) for _ in range(threads)]

        def count(thread: int) -> None:
            _count_by_time(t, x, y, p, width, height, *scales, parts[thread], work, bad, thread)

    for thread in range(1, threads):
        _HELPERS.hand(functools.partial(count, thread))
    count(0)
    wait_until(work, DONE, len(bad))
    out = parts[0]
    if spec.split_by == "time":
        for thread in range(1, threads):
            if work[2 + thread]:
                out += parts[thread]
    found = bad[bad >= 0]
    return out, int(found.min()) if len(found) else -1


def frame_events(events: np.ndarray, sensor_size: tuple[int, int], spec: FramingSpec) -> np.ndarray:
    """Count events into ``float32 [T, 2, h, w]`` frames; too few events is an ``EventDecodeError``."""
    width, height = int(sensor_size[0]), int(sensor_size[1])
    n = len(events)
    if n < spec.time_steps:
        raise EventDecodeError("framing", f"{n} events cannot fill {spec.time_steps} time steps")
    if not (0 < width <= MAX_SENSOR and 0 < height <= MAX_SENSOR):
        raise EventDecodeError("framing", f"sensor size {width}x{height} is outside 1..{MAX_SENSOR} pixels a side")
    out, bad = _count(events, width, height, spec)
    if bad >= 0:
        x, y = int(events["x"][bad]), int(events["y"][bad])
        raise EventDecodeError("framing", f"event {bad} at ({x}, {y}) lies outside the {width}x{height} sensor")
    return out
