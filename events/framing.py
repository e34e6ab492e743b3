"""Events -> ``[T, 2, h, w]`` count frames, the one framing used by training and serving.

Spec (DESIGN.md section 4): ``x' = x * w // W``, ``y' = y * h // H``; channel 0 = OFF,
channel 1 = ON; ``split_by="number"`` gives T bins of ``N // T`` events in order with the
remainder in the last bin (SpikingJelly's convention); ``split_by="time"`` gives T equal spans
of ``[t_first, t_last]`` with the last event in the last bin (a zero-length recording puts
every event in bin 0). One ``np.bincount`` over a flat index does the work.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from events.errors import EventDecodeError

SplitBy = Literal["number", "time"]


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


def time_bins(events: np.ndarray, time_steps: int, split_by: SplitBy) -> np.ndarray:
    """The time bin (0..T-1) of every event."""
    n = len(events)
    if split_by == "number":
        return np.minimum(np.arange(n, dtype=np.int64) // (n // time_steps), time_steps - 1)
    t = events["t"].astype(np.int64)
    t0, span = int(t[0]), int(t[-1] - t[0])
    if span <= 0:
        return np.zeros(n, dtype=np.int64)
    return np.minimum((t - t0) * time_steps // span, time_steps - 1)


def frame_events(events: np.ndarray, sensor_size: tuple[int, int], spec: FramingSpec) -> np.ndarray:
    """Count events into ``float32 [T, 2, h, w]`` frames; too few events is an ``EventDecodeError``."""
    width, height = int(sensor_size[0]), int(sensor_size[1])
    n = len(events)
    if n < spec.time_steps:
        raise EventDecodeError("framing", f"{n} events cannot fill {spec.time_steps} time steps")
    x = events["x"].astype(np.int64)
    y = events["y"].astype(np.int64)
    if int(x.max()) >= width or int(y.max()) >= height:
        raise EventDecodeError(
            "framing", f"event at ({int(x.max())}, {int(y.max())}) lies outside the {width}x{height} sensor"
        )
    bins = time_bins(events, spec.time_steps, spec.split_by)
    index = ((bins * 2 + (events["p"] > 0)) * spec.height + y * spec.height // height) * spec.width
    index += x * spec.width // width
    counts = np.bincount(index, minlength=spec.time_steps * 2 * spec.height * spec.width)
    return counts.astype(np.float32).reshape(spec.time_steps, 2, spec.height, spec.width)
