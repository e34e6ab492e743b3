"""Noise filters run before framing: background activity and hot pixels (DESIGN.md section 14).

Background activity (``background_activity``): an event is kept when one of the 8 pixels around
it fired less than ``window_us`` before it (``0 <= t - t_neighbour < window_us``; a neighbour's
event at the same time, or later in a recording out of time order, counts too). The event's own
pixel does not count: noise is a pixel firing on its own, and a pixel firing twice (a noisy or a
flickering pixel, the usual burst after a noise event) would otherwise vouch for itself; real
edges move, so their events have fired neighbours. Every event, kept or dropped, updates its
pixel's last time. This is the convention of dv-processing's ``BackgroundActivityNoiseFilter``
(8 neighbours, own pixel excluded, strict window, all events update), except at the start: there
a pixel that never fired has fired "at time 0", so events in the first ``window_us`` of the
time axis pass unchecked; here a pixel that never fired supports nothing. tonic's ``denoise``
looks at the 4 pixels sharing a side only, with the same time-0 start.

Hot pixels (``hot_pixels``): a pixel is hot when its event count in the recording is more than
``HOT_MEDIAN_FACTOR`` times the median count of the pixels that fired at all (the recording's
typical pixel) *and* more than ``HOT_NEIGHBOUR_FACTOR`` times the count of its busiest neighbour.
The median alone cannot tell a hot pixel from a busy edge: in a 0.5 s gesture with sensor noise
most active pixels fire only through noise (median 2) while pixels on the moving edge fire 100
times, as a 200 Hz hot pixel does. What separates them is the neighbourhood: an edge moves, so
the pixels around a busy one are busy too, while a hot pixel's neighbours fire as little as any.
Two hot pixels side by side shield each other; at densities of 1e-3 that is about one hot pixel
in a hundred.

A live stream runs the background-activity rule as events arrive (``BackgroundActivityFilter``:
the same pass, its per-pixel last times kept across pieces), not per window: see
``service.routes.stream``.

Each filter is one compiled pass over the events plus, for hot pixels, one over the pixels:
O(events) time and O(sensor pixels) memory, on padded per-pixel arrays so the 8 neighbour
lookups need no border tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from events.errors import EventDecodeError

HOT_MEDIAN_FACTOR = 10
HOT_NEIGHBOUR_FACTOR = 4
_NEVER = np.iinfo(np.int64).min


@numba.njit(cache=True, nogil=True, inline="always")
def _neighbours(padded_width):  # pragma: no cover - compiled
    """Offsets of the 8 neighbours of a pixel in a plane padded by one pixel on every side."""
    w = padded_width
    return (-w - 1, -w, -w + 1, -1, 1, w - 1, w, w + 1)


@numba.njit(cache=True, nogil=True)
def _background_activity(events, t, x, y, width, height, window, last, out):  # pragma: no cover - compiled
    """Copy the events the background-activity rule keeps to the front of ``out``; returns how many,
    and the first event outside the sensor or -1. ``t, x, y`` are ``events``' columns; ``last``
    holds each padded pixel's last time, read and updated (the filter's whole state)."""
    padded = width + 2
    around = _neighbours(padded)
    kept = 0
    for i in range(len(t)):
        if (np.uint64(x[i]) >= width) | (np.uint64(y[i]) >= height):
            return kept, i
        c = (np.int64(y[i]) + 1) * padded + np.int64(x[i]) + 1
        now = t[i]
        since = now - window if now >= _NEVER + window else _NEVER  # no overflow for any int64 time
        supported = False
        for k in around:
            supported |= last[c + k] > since
        if supported:
            out[kept] = events[i]
            kept += 1
        last[c] = now
    return kept, -1


@numba.njit(cache=True, nogil=True)
def _hot_pixels(events, x, y, width, height, median_factor, neighbour_factor, out):  # pragma: no cover - compiled
    """Copy the events of pixels that are not hot to the front of ``out``; returns how many, the first
    event outside the sensor or -1, and the hot pixels found. Nothing is copied when none is hot."""
    padded = width + 2
    counts = np.zeros(padded * (height + 2), np.int64)
    for i in range(len(x)):
        if (np.uint64(x[i]) >= width) | (np.uint64(y[i]) >= height):
            return 0, i, 0
        counts[(np.int64(y[i]) + 1) * padded + np.int64(x[i]) + 1] += 1
    active = counts[counts > 0]
    floor = median_factor * np.median(active) if len(active) else 0.0
    around = _neighbours(padded)
    hot = np.zeros(len(counts), np.bool_)
    found = 0
    for row in range(1, height + 1):
        for c in range(row * padded + 1, row * padded + width + 1):
            if counts[c] <= floor:
                continue
            busiest = 0
            for k in around:
                busiest = max(busiest, counts[c + k])
            if counts[c] > neighbour_factor * busiest:
                hot[c] = True
                found += 1
    kept = 0
    if found:
        for i in range(len(x)):
            if not hot[(np.int64(y[i]) + 1) * padded + np.int64(x[i]) + 1]:
                out[kept] = events[i]
                kept += 1
    return kept, -1, found


def _sensor(sensor_size: tuple[int, int]) -> tuple[int, int]:
    width, height = int(sensor_size[0]), int(sensor_size[1])
    if width < 1 or height < 1:
        raise ValueError(f"sensor size {width}x{height} is not positive")
    return width, height


class BackgroundActivityFilter:
    """The background-activity rule over events that come in pieces, in order: each pixel's last time
    is kept from one piece to the next (as a camera's on-chip filter keeps it), so the pieces' kept
    events are exactly ``background_activity`` of the whole. State: one int64 per pixel of the padded
    sensor (7.4 MB for 1280x720), whatever the number of events."""

    def __init__(self, sensor_size: tuple[int, int], window_us: int):
        if window_us < 1:
            raise ValueError(f"window_us must be positive, not {window_us}")
        self.width, self.height = _sensor(sensor_size)
        self.window_us = int(window_us)
        self._last = np.full((self.width + 2) * (self.height + 2), _NEVER, np.int64)

    def filter(self, events: np.ndarray) -> tuple[np.ndarray, int]:
        """The events of this piece the rule keeps, in order, and the first event outside the sensor
        (-1 if none; the kept events are then only those before it, and the state is spent)."""
        out = np.empty_like(events)
        kept, bad = _background_activity(
            events,
            events["t"],
            events["x"],
            events["y"],
            self.width,
            self.height,
            np.int64(self.window_us),
            self._last,
            out,
        )
        return out[:kept], int(bad)


def background_activity(events: np.ndarray, sensor_size: tuple[int, int], window_us: int) -> tuple[np.ndarray, int]:
    """The events the background-activity filter keeps, in order, and the first event outside the
    ``(width, height)`` sensor (-1 if none; the kept events are then only those before it)."""
    return BackgroundActivityFilter(sensor_size, window_us).filter(events)


def hot_pixels(events: np.ndarray, sensor_size: tuple[int, int]) -> tuple[np.ndarray, int, int]:
    """The events of pixels that are not hot, in order (``events`` itself when none is), the first
    event outside the sensor (-1 if none) and how many hot pixels were found."""
    width, height = _sensor(sensor_size)
    out = np.empty_like(events)
    kept, bad, found = _hot_pixels(
        events, events["x"], events["y"], width, height, float(HOT_MEDIAN_FACTOR), HOT_NEIGHBOUR_FACTOR, out
    )
    return (out[:kept] if found else events), int(bad), int(found)


@dataclass(frozen=True)
class NoiseReport:
    """What the filters did to one recording: settings applied and events each removed."""

    denoise_us: int
    hot_pixels: bool
    hot_pixels_found: int = 0
    hot_pixel_events: int = 0
    background_events: int = 0

    def to_dict(self) -> dict:
        return {
            "denoise_us": self.denoise_us,
            "hot_pixels": self.hot_pixels,
            "hot_pixels_found": self.hot_pixels_found,
            "removed": {"hot_pixels": self.hot_pixel_events, "background_activity": self.background_events},
        }


def _outside(events: np.ndarray, bad: int, width: int, height: int) -> EventDecodeError:
    x, y = int(events["x"][bad]), int(events["y"][bad])
    return EventDecodeError("framing", f"event {bad} at ({x}, {y}) lies outside the {width}x{height} sensor")


def remove_noise(
    events: np.ndarray, sensor_size: tuple[int, int], denoise_us: int, hot: bool
) -> tuple[np.ndarray, NoiseReport]:
    """The events that pass the hot-pixel filter (if ``hot``), then the background-activity filter
    (if ``denoise_us`` > 0), and what each removed. Hot pixels go first, so that a hot pixel's
    events cannot vouch for the noise around it. An event outside the sensor is an ``EventDecodeError``."""
    width, height = _sensor(sensor_size)
    found = hot_removed = background_removed = 0
    if hot:
        kept, bad, found = hot_pixels(events, (width, height))
        if bad >= 0:
            raise _outside(events, bad, width, height)
        hot_removed, events = len(events) - len(kept), kept
    if denoise_us > 0:
        kept, bad = background_activity(events, (width, height), denoise_us)
        if bad >= 0:
            raise _outside(events, bad, width, height)
        background_removed, events = len(events) - len(kept), kept
    return events, NoiseReport(int(denoise_us), bool(hot), found, hot_removed, background_removed)
