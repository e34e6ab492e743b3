"""A growing output array that streaming decoders fill chunk by chunk.

Decoders read a file in bounded chunks and append the decoded events here, so a large file
costs the output plus one chunk, not the raw file plus a list of pieces to concatenate. The
buffer starts at a capacity hint (e.g. the most events the remaining bytes could hold), grows
by ``ndarray.resize`` (realloc, usually in place) and is trimmed the same way at the end.
``max_events`` is enforced on every append, before anything is allocated for it.
"""

from __future__ import annotations

import numpy as np

from events.errors import LimitExceededError
from events.recording import EVENT_DTYPE


class EventSink:
    """Append-only ``EVENT_DTYPE`` buffer with a hard cap on the number of events."""

    def __init__(self, format: str, max_events: int, capacity_hint: int = 0):
        self.format = format
        self.max_events = max_events
        self.count = 0
        self._buffer = np.empty(max(0, min(capacity_hint, max_events)), dtype=EVENT_DTYPE)

    def reserve(self, n: int, offset: int | None = None) -> np.ndarray:
        """A view of the next ``n`` slots, to be filled column by column by the caller."""
        end = self.count + n
        if end > self.max_events:
            raise LimitExceededError(self.format, f"more than {self.max_events} events", offset)
        if end > len(self._buffer):
            self._buffer.resize(min(self.max_events, max(end, len(self._buffer) * 3 // 2 + 1024)), refcheck=False)
        view = self._buffer[self.count : end]
        self.count = end
        return view

    def expect(self, total: int) -> None:
        """Grow once to an estimated final count (e.g. extrapolated from the bytes read so far)."""
        target = min(self.max_events, total)
        if target > len(self._buffer):
            self._buffer.resize(target, refcheck=False)

    def extrapolate(self, needed: int, done: int, total: int, most: int) -> None:
        """Grow to the count the input read so far predicts for the whole (``done`` of ``total``
        bytes), at least ``needed`` more and at most ``most`` events.

        For inputs whose events per byte vary (compressed packets, EVT 3.0 vectors): growing
        re-extrapolates each time room runs short, so the grown-but-unused tail (which NumPy
        zero-fills, so it is resident) stays a fraction of a percent of the output instead of
        up to half of it.
        """
        predicted = int(self.count * total / max(1, done) * 1.005) + 1024
        self.expect(max(self.count + needed, min(predicted, most)))

    @property
    def free(self) -> int:
        """Slots already allocated past ``count`` (reserving at most this many never reallocates)."""
        return len(self._buffer) - self.count

    def give_back(self, n: int) -> None:
        """Return the last ``n`` slots of the latest ``reserve`` unused (a decoder that reserved room
        for the most events its next input could make, then filled fewer)."""
        self.count -= n

    def append(self, t, x, y, p, offset: int | None = None) -> None:
        """Add four equally long columns (p already 1 = ON, 0 = OFF)."""
        view = self.reserve(len(t), offset)
        view["t"] = t
        view["x"] = x
        view["y"] = y
        view["p"] = p

    def result(self) -> np.ndarray:
        """The events appended so far, in order (the buffer is trimmed in place)."""
        self._buffer.resize(self.count, refcheck=False)
        return self._buffer
