"""A growing output array that streaming decoders fill chunk by chunk.

Decoders read a file in bounded chunks and append the decoded events here, so a large file
costs the output plus one chunk, not the raw file plus a list of pieces to concatenate. The
buffer starts at a capacity hint (e.g. the most events the remaining bytes could hold), grows
by ``ndarray.resize`` (realloc, usually in place) and is trimmed the same way at the end
(shrinking is free). Where the events per byte vary (compressed packets, EVT 3.0 vectors)
the decoder also gives the most events possible, reserved up front as untouched memory.
``max_events`` is enforced on every append, before anything is allocated for it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from events.errors import LimitExceededError
from events.recording import EVENT_DTYPE

RESERVE_FROM_BYTES = 64 << 20


def _reservable_events() -> int:
    """Half the machine's physical memory, in events."""
    try:
        ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        ram = 8 << 30
    return ram // 2 // EVENT_DTYPE.itemsize


class EventSink:
    """Append-only ``EVENT_DTYPE`` buffer with a hard cap on the number of events."""

    def __init__(
        self, format: str, max_events: int, capacity_hint: int = 0, most: int | None = None, counted_before: int = 0
    ):
        """``capacity_hint``: the events expected; ``most``: the most the input could hold;
        ``counted_before``: events a stream decoder already output from earlier chunks (they
        count against ``max_events`` but are not held here).

        With ``most`` of ``RESERVE_FROM_BYTES`` or more, that much room is allocated up front but
        left untouched (virtual memory, capped by ``max_events`` and half the machine's RAM), so
        a large input with more events than expected never grows the buffer: growing
        reallocates, NumPy zero-fills the new room, and with transparent huge pages moving a
        large block briefly costs a quarter of it again. Below that, growing is cheap.
        """
        self.format = format
        self.max_events = max_events
        self.count = 0
        self.counted_before = counted_before
        room_left = max(0, max_events - counted_before)
        hint = max(0, min(capacity_hint, room_left))
        room = hint
        if most is not None and most * EVENT_DTYPE.itemsize >= RESERVE_FROM_BYTES:
            room = max(hint, min(most, room_left, _reservable_events()))
        try:
            self._buffer = np.empty(room, dtype=EVENT_DTYPE)
        except MemoryError:  # a strict overcommit policy refuses the reservation: grow as needed
            self._buffer = np.empty(hint, dtype=EVENT_DTYPE)

    def reserve(self, n: int, offset: int | None = None) -> np.ndarray:
        """A view of the next ``n`` slots, to be filled column by column by the caller."""
        end = self.count + n
        if n > self.remaining:
            raise LimitExceededError(self.format, f"more than {self.max_events} events", offset)
        if end > len(self._buffer):
            most = self.max_events - self.counted_before
            self._buffer.resize(min(most, max(end, len(self._buffer) * 3 // 2 + 1024)), refcheck=False)
        view = self._buffer[self.count : end]
        self.count = end
        return view

    @property
    def remaining(self) -> int:
        """Events that may still be added before ``max_events`` is passed."""
        return self.max_events - self.counted_before - self.count

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


@dataclass
class StreamCount:
    """The events a stream decoder has output so far, so ``max_events`` holds across its chunks."""

    format: str
    max_events: int
    emitted: int = 0

    def sink(self, capacity_hint: int, most: int | None = None) -> EventSink:
        """An empty sink for one chunk's events, counting those of earlier chunks against the cap."""
        return EventSink(self.format, self.max_events, capacity_hint, most, counted_before=self.emitted)

    def take(self, sink: EventSink) -> np.ndarray:
        """The chunk's events, now counted."""
        events = sink.result()
        self.emitted += len(events)
        return events
