"""The in-memory event stream: one NumPy structured array plus the sensor it came from.

The layout follows tonic: a plain structured array with fields ``t`` (int64, microseconds),
``x`` and ``y`` (uint16) and ``p`` (uint8, 1 = ON, 0 = OFF), kept in file order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

EVENT_DTYPE = np.dtype([("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "u1")])


def make_events(t, x, y, p) -> np.ndarray:
    """Pack four equally long columns into an ``EVENT_DTYPE`` array."""
    t = np.asarray(t)
    out = np.empty(len(t), dtype=EVENT_DTYPE)
    out["t"] = t
    out["x"] = x
    out["y"] = y
    out["p"] = p
    return out


def empty_events() -> np.ndarray:
    return np.empty(0, dtype=EVENT_DTYPE)


def smallest_sensor(events: np.ndarray) -> tuple[int, int]:
    """The smallest ``(width, height)`` that holds every coordinate (at least 1 x 1)."""
    if len(events) == 0:
        return (1, 1)
    return (int(events["x"].max()) + 1, int(events["y"].max()) + 1)


@dataclass
class Recording:
    """What ``events.load`` returns: the events, the sensor size and the format name.

    ``sensor_from_header`` is False when the file carries no geometry and ``sensor_size``
    is only the smallest size that holds every event (see ``resolve_sensor_size``).
    """

    events: np.ndarray
    sensor_size: tuple[int, int]
    format: str
    sensor_from_header: bool = True
    metadata: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.events)

    @property
    def duration_us(self) -> int:
        if len(self.events) == 0:
            return 0
        return int(self.events["t"][-1] - self.events["t"][0])


def resolve_sensor_size(
    recording: Recording,
    model_sensor: tuple[int, int] | None = None,
    override: tuple[int, int] | None = None,
) -> tuple[int, int]:
    """Pick the sensor size for framing (DESIGN.md section 4).

    An explicit override wins; then the file's header; then the model's training sensor when
    every coordinate fits in it; else the smallest size that holds all events.
    """
    if override is not None:
        return (int(override[0]), int(override[1]))
    if recording.sensor_from_header:
        return recording.sensor_size
    fits = smallest_sensor(recording.events)
    if model_sensor is not None and fits[0] <= model_sensor[0] and fits[1] <= model_sensor[1]:
        return (int(model_sensor[0]), int(model_sensor[1]))
    return fits
