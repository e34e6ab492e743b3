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

Either split makes each bin one range of events. Split by time, the bins' first times are
computed exactly with Python integers and each range is found by binary search on the times;
the loop then only checks that an event's time lies in its range's bin. Events out of time
order fail that check and are counted afterwards, each looked up on its own: a sorted recording
has none, so framing by time costs about what framing by number does, with no division per
event (which made it 2.5x slower before) and no product of times that could overflow.

Recordings of ``PARALLEL_MIN_EVENTS`` or more are shared with a helper thread (the kernels
release the GIL) through atomic work counters (``events.work_sharing``): the calling thread starts
at once and the helper claims what is left when it wakes, so its wake-up delay (a sizeable part
of framing a few hundred thousand events on these virtual machines) is never waited for.
numba's own ``parallel=True`` is not used because its default threading layer may not be
entered from several Python threads at once, which the service does.

``frame_runs`` counts many samples at once, each bin a run of events its caller chose (the windows
of a long recording, ``events.windows``): one compiled call instead of one ``frame_events`` each,
in the calling thread only.
"""

from __future__ import annotations

import functools
import os
from dataclasses import asdict, dataclass
from typing import Literal

import numba
import numpy as np

from events.denoise import NoiseReport, remove_noise
from events.errors import EventDecodeError
from events.work_sharing import HelperThreads, fetch_increment, wait_until

SplitBy = Literal["number", "time"]

THREADS = min(2, os.cpu_count() or 1)
PARALLEL_MIN_EVENTS = 1 << 18
MAX_SENSOR = 1 << 20  # coordinates are 16-bit; anything larger is a mistake, not a sensor
_HELPERS = HelperThreads(THREADS - 1, "framing")


@dataclass(frozen=True)
class FramingSpec:
    """How a model wants its input: T bins, ``width x height`` frames, split by count or time, after
    the noise filters (``events.denoise``): background activity within ``denoise_us`` (0 = off) and
    hot pixels (``hot_pixels``)."""

    time_steps: int
    width: int
    height: int
    split_by: SplitBy = "number"
    denoise_us: int = 0
    hot_pixels: bool = False

    def __post_init__(self) -> None:
        if self.time_steps < 1 or self.width < 1 or self.height < 1:
            raise ValueError(f"time_steps, width and height must be positive: {self}")
        if self.split_by not in ("number", "time"):
            raise ValueError(f"split_by must be 'number' or 'time', not {self.split_by!r}")
        if self.denoise_us < 0:
            raise ValueError(f"denoise_us must be 0 (off) or positive, not {self.denoise_us}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> FramingSpec:
        """A spec from its dict; one written before the noise filters existed has them off."""
        return cls(
            int(data["time_steps"]),
            int(data["width"]),
            int(data["height"]),
            data.get("split_by", "number"),
            int(data.get("denoise_us", 0)),
            bool(data.get("hot_pixels", False)),
        )


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


NEXT, DONE = 0, 1  # slots of the shared work counters
NOTED_STRAYS = 1024  # events out of time order noted per bin, so counting them needs no second scan


@numba.njit(cache=True, nogil=True, inline="always")
def _count_run(ts, xs, ys, ps, low, high, flat, base, geometry, strayed, scaled, timed):  # pragma: no cover
    """Count a run of events into the bin whose frames start at ``base`` (``geometry``: see ``_geometry``).

    ``timed``: only events with ``low <= t <= high``; the others are strays, left for
    ``_count_strays``, and the first ``len(strayed)`` of them noted there. Returns the first
    counted event outside the sensor (or -1) and the number of strays before it. ``scaled`` and
    ``timed`` are constants at each call, so frames at sensor resolution skip the multiply and a
    split by number never reads times.
    """
    plane, w, width, height, sx, kx, sy, ky = geometry
    strays = 0
    for j in range(len(xs)):
        if timed and ((ts[j] < low) | (ts[j] > high)):
            if strays < len(strayed):
                strayed[strays] = j
            strays += 1
            continue
        if (np.uint64(xs[j]) >= width) | (np.uint64(ys[j]) >= height):
            return j, strays
        pixel = _offset(xs[j], ys[j], sx, kx, sy, ky, w) if scaled else np.uint64(ys[j]) * w + np.uint64(xs[j])
        flat[base + np.uint64(ps[j] != 0) * plane + pixel] += np.float32(1.0)
    return -1, strays


@numba.njit(cache=True, nogil=True, inline="always")
def _geometry(out, width, height, sx, kx, sy, ky):  # pragma: no cover - compiled
    """What placing an event in ``out`` needs: plane size, frame width, sensor size and scales."""
    w = np.uint64(out.shape[3])
    return np.uint64(out.shape[2]) * w, w, np.uint64(width), np.uint64(height), sx, kx, sy, ky


@numba.njit(cache=True, nogil=True, inline="always")
def _bin_times(starts, b):  # pragma: no cover - compiled
    """The first and last time of bin ``b`` (see ``_bin_starts``)."""
    return starts[b], starts[b + 1] - 1 if b + 1 < len(starts) else np.iinfo(np.int64).max


@numba.njit(cache=True, nogil=True)
def _count_by_number(x, y, p, width, height, sx, kx, sy, ky, out, work, bad):  # pragma: no cover - compiled
    """Claim bins from ``work`` until none is left; zero each claimed bin's frames and count its events.

    Bin ``b`` holds events ``[b * N // T, (b + 1) * N // T)``, the remainder in the last bin;
    ``bad[b]`` gets its first event outside the sensor or -1.
    """
    steps = out.shape[0]
    geometry = _geometry(out, width, height, sx, kx, sy, ky)
    flat = out.reshape(-1)
    scaled = width != out.shape[3] or height != out.shape[2]
    per_bin = len(x) // steps
    while True:
        b = fetch_increment(work, NEXT)
        if b >= steps:
            return
        start = b * per_bin
        stop = len(x) if b == steps - 1 else start + per_bin
        xs, ys, ps = x[start:stop], y[start:stop], p[start:stop]
        out[b] = 0
        base = np.uint64(2 * b) * geometry[0]
        if scaled:
            first, _ = _count_run(xs, xs, ys, ps, 0, 0, flat, base, geometry, bad[:0], True, False)
        else:
            first, _ = _count_run(xs, xs, ys, ps, 0, 0, flat, base, geometry, bad[:0], False, False)
        bad[b] = first if first < 0 else start + first
        fetch_increment(work, DONE)


@numba.njit(cache=True, nogil=True)
def _count_by_time(  # pragma: no cover - compiled
    t, x, y, p, width, height, sx, kx, sy, ky, bounds, starts, out, work, bad, strays, strayed
):
    """Claim bins from ``work`` until none is left; zero each claimed bin's frames and count its events.

    Bin ``b`` counts those of events ``[bounds[b], bounds[b + 1])`` whose time is in the bin;
    ``strays[b]`` gets how many were not and ``strayed[b]`` the first of them (offsets in the
    range). ``bad[b]`` gets the first counted event outside the sensor or -1.
    """
    steps = out.shape[0]
    geometry = _geometry(out, width, height, sx, kx, sy, ky)
    flat = out.reshape(-1)
    scaled = width != out.shape[3] or height != out.shape[2]
    while True:
        b = fetch_increment(work, NEXT)
        if b >= steps:
            return
        start, stop = bounds[b], bounds[b + 1]
        ts, xs, ys, ps = t[start:stop], x[start:stop], y[start:stop], p[start:stop]
        low, high = _bin_times(starts, min(b, len(starts) - 1))
        out[b] = 0
        base = np.uint64(2 * b) * geometry[0]
        if scaled:
            first, strays[b] = _count_run(ts, xs, ys, ps, low, high, flat, base, geometry, strayed[b], True, True)
        else:
            first, strays[b] = _count_run(ts, xs, ys, ps, low, high, flat, base, geometry, strayed[b], False, True)
        bad[b] = first if first < 0 else start + first
        fetch_increment(work, DONE)


@numba.njit(cache=True, nogil=True)
def _count_strays(  # pragma: no cover - compiled
    t, x, y, p, width, height, sx, kx, sy, ky, bounds, starts, out, bad, strays, strayed
):
    """Count the strays ``_count_by_time`` left, each in its own bin, and lower ``bad[b]`` if one of
    range ``b``'s lies outside the sensor. Noted strays are visited directly; a range with more
    than ``strayed`` holds is scanned again."""
    plane, w, width, height, sx, kx, sy, ky = _geometry(out, width, height, sx, kx, sy, ky)
    flat = out.reshape(-1)
    later = starts[1:]
    for b in range(out.shape[0]):
        start, stop = bounds[b], bounds[b + 1]
        low, high = _bin_times(starts, min(b, len(starts) - 1))
        noted = strays[b] <= strayed.shape[1]
        for k in range(strays[b] if noted else stop - start):
            i = start + (strayed[b, k] if noted else k)
            if low <= t[i] <= high:
                continue
            if (np.uint64(x[i]) >= width) | (np.uint64(y[i]) >= height):
                if bad[b] < 0 or i < bad[b]:
                    bad[b] = i
                break
            home = np.uint64(2 * np.searchsorted(later, t[i], side="right"))
            flat[(home + np.uint64(p[i] != 0)) * plane + _offset(x[i], y[i], sx, kx, sy, ky, w)] += np.float32(1.0)


@numba.njit(cache=True, nogil=True)
def _count_runs(x, y, p, width, height, sx, kx, sy, ky, bounds, out, bad):  # pragma: no cover - compiled
    """Count run ``b`` of row ``i`` of ``bounds`` into the zeroed ``out[i * T + b]``; ``bad[i]`` gets
    row ``i``'s first event outside the sensor (its counting stops there) or stays -1."""
    steps = bounds.shape[1] - 1
    geometry = _geometry(out, width, height, sx, kx, sy, ky)
    flat = out.reshape(-1)
    scaled = width != out.shape[3] or height != out.shape[2]
    for i in range(len(bounds)):
        for b in range(steps):
            start, stop = bounds[i, b], bounds[i, b + 1]
            xs, ys, ps = x[start:stop], y[start:stop], p[start:stop]
            base = np.uint64(2 * (i * steps + b)) * geometry[0]
            if scaled:
                first, _ = _count_run(xs, xs, ys, ps, 0, 0, flat, base, geometry, bad[:0], True, False)
            else:
                first, _ = _count_run(xs, xs, ys, ps, 0, 0, flat, base, geometry, bad[:0], False, False)
            if first >= 0:
                bad[i] = start + first
                break


def _bin_starts(t_first: int, t_last: int, time_steps: int) -> np.ndarray:
    """The earliest time of each bin when ``[t_first, t_last]`` is cut into equal spans.

    Bin ``k`` starts at ``t_first + ceil(k * span / T)``: exactly the times whose
    ``(t - t_first) * T // span`` is ``k``, computed with Python integers so no span overflows.
    ``starts[0]`` is the smallest int64, so earlier events count in bin 0 and later ones in the
    last; a recording of zero or negative span has the one bin.
    """
    span = t_last - t_first
    starts = [np.iinfo(np.int64).min]
    if span > 0:
        starts += [t_first - (-k * span // time_steps) for k in range(1, time_steps)]
    return np.array(starts, np.int64)


@numba.njit(cache=True, nogil=True)
def _bin_bounds(t, starts, time_steps):  # pragma: no cover - compiled
    """Where each bin's events begin in ``t``, as if it were sorted, and the end: ``T + 1`` indices.

    For a sorted recording bin ``b`` is exactly ``[bounds[b], bounds[b + 1])``. For any other the
    binary search still gives ordered indices that cover every event once; events whose time
    lies outside their range's bin are the strays ``_count_strays`` counts afterwards. Compiled
    because NumPy's ``searchsorted`` first copies a strided column (the whole time column).
    """
    bounds = np.full(time_steps + 1, len(t), np.int64)
    bounds[0] = 0
    for b in range(1, len(starts)):
        bounds[b] = max(bounds[b - 1], np.searchsorted(t, starts[b], side="left"))
    return bounds


@functools.lru_cache(maxsize=64)
def _kernel_scales(width: int, height: int, w: int, h: int) -> tuple[np.uint64, ...]:
    """The x and y ``Scale`` as the kernels take them (cached: a server sees few sensor sizes)."""
    sx, sy = Scale.of(width, w), Scale.of(height, h)
    return np.uint64(sx.factor), np.uint64(sx.shift), np.uint64(sy.factor), np.uint64(sy.shift)


def _count(events: np.ndarray, width: int, height: int, spec: FramingSpec) -> tuple[np.ndarray, int]:
    """The frames of every event and the first event outside the sensor (or -1).

    Each bin is a unit of work over one range of events, and its frames belong to whichever
    thread claims it. The calling thread always works; for large inputs helper threads join when
    they wake and claim what is left, so a late one costs nothing, and the caller never waits
    for a thread that has not started. Split by time, events out of time order are counted
    after, by the caller alone: a sorted recording has none.
    """
    t, x, y, p = events["t"], events["x"], events["y"], events["p"]
    n, steps = len(events), spec.time_steps
    scales = _kernel_scales(width, height, spec.width, spec.height)
    out = np.empty((steps, 2, spec.height, spec.width), np.float32)
    work = np.zeros(2, np.int64)
    bad = np.empty(steps, np.int64)
    if spec.split_by == "number":
        count = functools.partial(_count_by_number, x, y, p, width, height, *scales, out, work, bad)
    else:
        starts = _bin_starts(int(t[0]), int(t[-1]), steps)
        bounds = _bin_bounds(t, starts, steps)
        strays, strayed = np.zeros(steps, np.int64), np.empty((steps, NOTED_STRAYS), np.int64)
        count = functools.partial(
            _count_by_time, t, x, y, p, width, height, *scales, bounds, starts, out, work, bad, strays, strayed
        )
    for _ in range(1, THREADS if n >= PARALLEL_MIN_EVENTS else 1):
        _HELPERS.hand(count)
    count()
    wait_until(work, DONE, steps)
    if spec.split_by == "time" and strays.any():
        _count_strays(t, x, y, p, width, height, *scales, bounds, starts, out, bad, strays, strayed)
    found = bad[bad >= 0]
    return out, int(found.min()) if len(found) else -1


def frame_events(events: np.ndarray, sensor_size: tuple[int, int], spec: FramingSpec) -> np.ndarray:
    """Filter noise as ``spec`` says, then count events into ``float32 [T, 2, h, w]`` frames; too few
    events is an ``EventDecodeError``."""
    return frame_and_report(events, sensor_size, spec)[0]


def frame_and_report(
    events: np.ndarray, sensor_size: tuple[int, int], spec: FramingSpec
) -> tuple[np.ndarray, NoiseReport]:
    """``frame_events``, and what the noise filters removed on the way."""
    width, height = _sensor(sensor_size)
    report = NoiseReport(spec.denoise_us, spec.hot_pixels)
    if spec.denoise_us or spec.hot_pixels:
        events, report = remove_noise(events, (width, height), spec.denoise_us, spec.hot_pixels)
    n = len(events)
    if n < spec.time_steps:
        left = " left after noise filtering" if report.hot_pixel_events or report.background_events else ""
        raise EventDecodeError("framing", f"{n} events{left} cannot fill {spec.time_steps} time steps")
    out, bad = _count(events, width, height, spec)
    _check_inside(events, bad, width, height)
    return out, report


def frame_runs(events: np.ndarray, sensor_size: tuple[int, int], spec: FramingSpec, bounds: np.ndarray) -> np.ndarray:
    """Count run ``bounds[i, b]:bounds[i, b + 1]`` of ``events`` into frame ``[i, b]``: float32 ``[n, T, 2, h, w]``.

    ``bounds`` is ``int64 [n, T + 1]``, non-decreasing along each row and within ``[0, len(events)]``;
    the caller decides which events make each bin (``events.windows`` cuts windows with it). One
    compiled call counts every run, in the calling thread: handing rows to a helper thread cost more
    than it saved on a shared machine (``bench.windows``), and a server frames requests in parallel anyway.
    """
    bounds = np.ascontiguousarray(bounds, np.int64)
    n = len(bounds)
    if bounds.shape != (n, spec.time_steps + 1):
        raise ValueError(f"bounds must be [n, {spec.time_steps + 1}], not {list(bounds.shape)}")
    if n and (bounds.min() < 0 or bounds.max() > len(events) or (np.diff(bounds, axis=1) < 0).any()):
        raise ValueError("bounds must be non-decreasing runs inside the events")
    width, height = _sensor(sensor_size)
    out = np.zeros((n, spec.time_steps, 2, spec.height, spec.width), np.float32)
    bad = np.full(n, -1, np.int64)
    planes = out.reshape(n * spec.time_steps, 2, spec.height, spec.width)
    scales = _kernel_scales(width, height, spec.width, spec.height)
    _count_runs(events["x"], events["y"], events["p"], width, height, *scales, bounds, planes, bad)
    found = bad[bad >= 0]
    _check_inside(events, int(found.min()) if len(found) else -1, width, height)
    return out


def _sensor(sensor_size: tuple[int, int]) -> tuple[int, int]:
    width, height = int(sensor_size[0]), int(sensor_size[1])
    if not (0 < width <= MAX_SENSOR and 0 < height <= MAX_SENSOR):
        raise EventDecodeError("framing", f"sensor size {width}x{height} is outside 1..{MAX_SENSOR} pixels a side")
    return width, height


def _check_inside(events: np.ndarray, bad: int, width: int, height: int) -> None:
    """Raise for event ``bad`` (the first counted one outside the sensor), if any."""
    if bad >= 0:
        x, y = int(events["x"][bad]), int(events["y"][bad])
        raise EventDecodeError("framing", f"event {bad} at ({x}, {y}) lies outside the {width}x{height} sensor")
