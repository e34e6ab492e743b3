"""Windows over a live event stream: cut each window as soon as no later event can fall in it.

The grid is the timeline's (DESIGN.md section 10): windows ``[s, s + window)`` start at the first
event and advance by ``stride``; a window closes when an event at or after its end arrives, or
at ``flush``, which closes every window that has started and begins a new grid at the next event.
For a time-ordered stream sent whole and flushed, the windows and their events are exactly those
``frame_windows`` cuts from the whole recording.

Policy for what a stream does that a file does not:
- an event older than the oldest open window (a camera's timestamp stepping back across a window
  edge) can no longer be placed: it is dropped and counted in ``late_events``;
- a time jump leaves empty windows: up to ``max_idle_run`` of them in a row are cut (and reported
  idle), the rest are skipped at once and counted in ``skipped_windows``, so a jump of hours costs
  no more than a jump of seconds;
- memory is bounded: more than ``max_buffered_events`` events waiting for their windows to close
  is a ``LimitExceededError``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from events.errors import LimitExceededError
from events.recording import EVENT_DTYPE


@dataclass(frozen=True)
class WindowCut:
    """One closed window and the events whose time falls in it, in arrival order."""

    start_us: int
    end_us: int  # exclusive
    events: np.ndarray


class WindowAssembler:
    """Feed decoded events with ``push``; each call returns the windows they closed."""

    def __init__(self, window_us: int, stride_us: int, max_buffered_events: int, max_idle_run: int = 64):
        if window_us < 1 or stride_us < 1:
            raise ValueError("window and stride must be at least 1 microsecond")
        self.window_us, self.stride_us = int(window_us), int(stride_us)
        self.max_buffered_events = int(max_buffered_events)
        self.max_idle_run = int(max_idle_run)
        self.late_events = 0
        self.skipped_windows = 0
        self._chunks: list[np.ndarray] = []
        self._start: int | None = None  # start of the oldest open window
        self._latest: int | None = None

    @property
    def buffered_events(self) -> int:
        return sum(len(chunk) for chunk in self._chunks)

    def push(self, events: np.ndarray) -> list[WindowCut]:
        """Add events in stream order; returns the windows that closed, oldest first."""
        if len(events) == 0:
            return []
        t = events["t"]
        if self._start is None:
            self._start = int(t[0])
        keep = t >= self._start
        if not keep.all():
            self.late_events += int((~keep).sum())
            events, t = events[keep], t[keep]
            if len(events) == 0:
                return []
        self._chunks.append(events)
        newest = int(t.max())
        self._latest = newest if self._latest is None else max(self._latest, newest)
        cuts = self._close_until(self._latest - self.window_us)
        if self.buffered_events > self.max_buffered_events:
            raise LimitExceededError(
                "stream",
                f"{self.buffered_events} events wait for their windows to close, over the limit of "
                f"{self.max_buffered_events}: send fewer events per window",
            )
        return cuts

    def flush(self) -> list[WindowCut]:
        """Close every window that has started; the next event starts a new grid."""
        if self._start is None:
            return []
        cuts = self._close_until(self._latest)
        self._chunks, self._start, self._latest = [], None, None
        return cuts

    def _close_until(self, last_start: int) -> list[WindowCut]:
        """Cut every window starting at or before ``last_start``."""
        cuts: list[WindowCut] = []
        idle_run = 0
        while self._start is not None and self._start <= last_start:
            buffered = self._buffer()
            start, end = self._start, self._start + self.window_us
            inside = buffered[(buffered["t"] >= start) & (buffered["t"] < end)]
            idle_run = idle_run + 1 if len(inside) == 0 else 0
            if idle_run > self.max_idle_run:
                self._skip_empty(buffered, last_start)
                idle_run = 0
                continue
            cuts.append(WindowCut(start, end, inside))
            self._start = start + self.stride_us
            remaining = buffered[buffered["t"] >= self._start]
            self._chunks = [remaining] if len(remaining) else []
        return cuts

    def _skip_empty(self, buffered: np.ndarray, last_start: int) -> None:
        """Jump over empty windows: to the first that can hold a buffered event, or past all that close.

        Every buffered event lies at or after the current (empty) window's end, so the jump is at
        least one stride.
        """
        if len(buffered):
            target = int(buffered["t"].min()) - self.window_us + 1  # earliest start whose window holds it
            steps = -(-(target - self._start) // self.stride_us)
        else:
            steps = (last_start - self._start) // self.stride_us + 1
        steps = max(1, steps)
        self.skipped_windows += steps
        self._start += steps * self.stride_us

    def _buffer(self) -> np.ndarray:
        if not self._chunks:
            return np.empty(0, dtype=EVENT_DTYPE)
        if len(self._chunks) > 1:
            self._chunks = [np.concatenate(self._chunks)]
        return self._chunks[0]
