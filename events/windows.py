"""A long recording cut into windows and framed for the model in one pass (DESIGN.md section 10).

Policy:
- window ``k`` is ``[start + k * stride, start + k * stride + window)`` in microseconds, ``start``
  being the earliest event time; windows follow until one starts after the last event, so every
  event lies in at least one window when ``stride <= window`` (a larger stride leaves gaps);
- a window holds the events whose ``t`` falls in it; one with fewer than ``min_events`` events
  (never fewer than T, which cannot fill T bins) is idle and not framed;
- each classified window is framed exactly as ``frame_events`` frames its events alone (split by
  number or time over the window's own events), counted by one compiled pass over all windows;
- a recording not sorted by time is first stably sorted by ``t`` (a copy): windows are defined by
  time, and each window then frames its events in time order, ties in file order;
- more windows than ``max_windows`` is a ``LimitExceededError`` (413 in the service), raised before
  any memory is spent on frames;
- with noise filters in the spec (``denoise_us``, ``hot_pixels``), each window is filtered on its
  own, exactly as ``frame_events`` filters a file holding only that window's events, and a window
  left with fewer than ``min_events`` events after filtering is idle too (``frame_window``, which
  the live stream uses as well).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from events.denoise import remove_noise
from events.errors import LimitExceededError
from events.framing import FramingSpec, frame_events, frame_runs

MAX_WINDOW_US = 1 << 40  # about 12.7 days: keeps every window bound and bin start inside int64
MAX_TIME_STEPS = 1 << 22  # with MAX_WINDOW_US, k * span < 2**62 when finding the bins by time


@dataclass(frozen=True)
class Windows:
    """Every window of a recording and the frames of those that are not idle.

    ``frames[j]`` belongs to window ``classified[j]``.
    """

    start_us: np.ndarray  # int64 [n]
    end_us: np.ndarray  # int64 [n], exclusive
    events: np.ndarray  # int64 [n], events in each window
    idle: np.ndarray  # bool [n]
    frames: np.ndarray  # float32 [n_classified, T, 2, h, w]

    def __len__(self) -> int:
        return len(self.start_us)

    @property
    def classified(self) -> np.ndarray:
        """Indices of the windows that were framed, in order."""
        return np.flatnonzero(~self.idle)


def frame_windows(
    events: np.ndarray,
    sensor_size: tuple[int, int],
    spec: FramingSpec,
    *,
    window_us: int,
    stride_us: int,
    min_events: int,
    max_windows: int,
) -> Windows:
    """Cut ``events`` into windows of ``window_us`` every ``stride_us`` and frame the busy ones (module policy)."""
    window_us, stride_us, max_windows = int(window_us), int(stride_us), int(max_windows)
    if not (0 < window_us <= MAX_WINDOW_US and 0 < stride_us <= MAX_WINDOW_US):
        raise ValueError(f"window and stride must be 1..{MAX_WINDOW_US} us, not {window_us} and {stride_us}")
    if spec.time_steps > MAX_TIME_STEPS:
        raise ValueError(f"at most {MAX_TIME_STEPS} time steps per window, not {spec.time_steps}")
    t = np.ascontiguousarray(events["t"])  # searched several times: one copy of the strided column
    if len(t) > 1 and (t[1:] < t[:-1]).any():
        order = np.argsort(t, kind="stable")
        events, t = events[order], t[order]
    if len(t) == 0:
        nothing = np.empty(0, np.int64)
        frames = np.empty((0, spec.time_steps, 2, spec.height, spec.width), np.float32)
        return Windows(nothing, nothing, nothing, np.empty(0, bool), frames)
    first, last = int(t[0]), int(t[-1])
    if last > np.iinfo(np.int64).max - 2 * MAX_WINDOW_US:
        raise ValueError(f"event times up to {last} us leave no room for window bounds in int64")
    count = (last - first) // stride_us + 1
    if count > max_windows:
        raise LimitExceededError(
            "windows", f"{count} windows of {window_us} us every {stride_us} us; at most {max_windows} allowed"
        )
    starts = first + stride_us * np.arange(count, dtype=np.int64)
    ends = starts + window_us
    lows = np.searchsorted(t, starts, side="left")
    highs = np.searchsorted(t, ends, side="left")
    sizes = highs - lows
    idle = sizes < max(int(min_events), spec.time_steps)
    if spec.denoise_us or spec.hot_pixels:
        framed = {}
        for i in np.flatnonzero(~idle):
            window = frame_window(events[lows[i] : highs[i]], sensor_size, spec, min_events)
            if window is None:
                idle[i] = True
            else:
                framed[i] = window
        empty = np.empty((0, spec.time_steps, 2, spec.height, spec.width), np.float32)
        frames = np.stack([framed[i] for i in sorted(framed)]) if framed else empty
        return Windows(starts, ends, sizes.astype(np.int64), idle, frames)
    busy = ~idle
    bounds = _bin_bounds(t, lows[busy], highs[busy], spec)
    frames = frame_runs(events, sensor_size, spec, bounds)
    return Windows(starts, ends, sizes.astype(np.int64), idle, frames)


def frame_window(
    events: np.ndarray, sensor_size: tuple[int, int], spec: FramingSpec, min_events: int
) -> np.ndarray | None:
    """One window's ``float32 [T, 2, h, w]`` frames as ``frame_events`` makes them from its events alone
    (noise filters included), or None when it is idle: fewer than ``min_events`` (at least T) events,
    before or after the filters."""
    least = max(int(min_events), spec.time_steps)
    if len(events) < least:
        return None
    if spec.denoise_us or spec.hot_pixels:
        events, _ = remove_noise(events, sensor_size, spec.denoise_us, spec.hot_pixels)
        if len(events) < least:
            return None
        spec = replace(spec, denoise_us=0, hot_pixels=False)
    return frame_events(events, sensor_size, spec)


def _bin_bounds(t: np.ndarray, lows: np.ndarray, highs: np.ndarray, spec: FramingSpec) -> np.ndarray:
    """``int64 [n, T + 1]``: where each bin of each window ``t[lows[i]:highs[i]]`` begins, and its end.

    The rules of ``frame_events`` applied to every window at once. By number: ``N // T`` events a
    bin, the remainder in the last. By time: bin ``k`` starts at the first event at or after
    ``t_first + ceil(k * span / T)``; a window of zero span puts everything in bin 0.
    """
    steps = spec.time_steps
    k = np.arange(steps + 1, dtype=np.int64)
    if spec.split_by == "number":
        bounds = lows[:, None] + k[None, :] * ((highs - lows) // steps)[:, None]
    else:
        t_first, span = t[lows], t[highs - 1] - t[lows]
        bin_starts = t_first[:, None] - (-k[None, 1:steps] * span[:, None]) // steps
        inner = np.searchsorted(t, bin_starts.ravel(), side="left").reshape(bin_starts.shape)
        inner[span == 0] = highs[span == 0, None]
        bounds = np.concatenate([lows[:, None], inner, highs[:, None]], axis=1)
    bounds[:, -1] = highs
    return bounds.astype(np.int64, copy=False)


__all__ = ["Windows", "frame_window", "frame_windows"]
