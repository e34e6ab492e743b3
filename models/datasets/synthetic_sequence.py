"""Long simulated recordings: many gestures in a row, idle gaps between them, and the truth of when.

A long recording is an idle gap, a gesture, a gap, a gesture, ..., and a final gap. Each gesture is
one recording of the simulator (``synthetic.generate_recording``) moved to its place in time; each
gap holds only background activity: Poisson noise at every pixel at one rate drawn for the whole
recording from ``CameraParams.noise_hz``. The truth is one ``Segment`` per gesture spanning its
recording, ``[start_us, end_us)``.

Gestures are scripted (a list of names or indices) or drawn at random. Everything is a pure
function of ``(seed, gestures, gap_s, params)``. A gesture's recording uses indices from
``GESTURE_INDEX_BASE`` up, which no training split reaches (split sizes are far smaller), so a long
recording never replays a training sample of the same seed.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from events import make_events
from models.datasets.synthetic import GESTURES, SENSOR_SIZE, CameraParams, generate_recording

GESTURE_INDEX_BASE = 1 << 32
SEQUENCE_STREAM = 0x5E0  # keeps the sequence's own draws apart from every single recording's


@dataclass(frozen=True)
class Segment:
    """One true gesture: its label and the span ``[start_us, end_us)`` its recording covers."""

    start_us: int
    end_us: int
    label: str


@dataclass(frozen=True)
class LongRecording:
    """Events (``EVENT_DTYPE``, sorted by ``t``, starting at 0) and the true gesture segments in order."""

    events: np.ndarray
    segments: tuple[Segment, ...]
    duration_us: int

    def write_truth(self, path: str | os.PathLike) -> None:
        """The segments as CSV with columns ``start_us,end_us,label``."""
        with Path(path).open("w", newline="") as out:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(["start_us", "end_us", "label"])
            writer.writerows((s.start_us, s.end_us, s.label) for s in self.segments)


def read_truth(path: str | os.PathLike) -> tuple[Segment, ...]:
    """Segments written by ``LongRecording.write_truth``."""
    with Path(path).open(newline="") as source:
        return tuple(Segment(int(row["start_us"]), int(row["end_us"]), row["label"]) for row in csv.DictReader(source))


def generate_long_recording(
    seed: int,
    gestures: int | Sequence[int | str] = 10,
    *,
    gap_s: tuple[float, float] = (0.5, 1.5),
    params: CameraParams = CameraParams(),
) -> LongRecording:
    """``gestures`` (a count drawn at random, or a script of names or indices) separated by idle gaps.

    Gap lengths are drawn uniformly from ``gap_s``; there is one before the first gesture and one
    after the last. Deterministic per ``(seed, gestures, gap_s, params)``.
    """
    rng = np.random.default_rng([int(seed), SEQUENCE_STREAM])
    if isinstance(gestures, (int, np.integer)):
        names = [GESTURES[i] for i in rng.integers(0, len(GESTURES), int(gestures))]
    else:
        names = [GESTURES[g] if isinstance(g, (int, np.integer)) else g for g in gestures]
    unknown = sorted(set(names) - set(GESTURES))
    if unknown:
        raise ValueError(f"unknown gestures {unknown}; classes: {', '.join(GESTURES)}")
    if not 0 <= gap_s[0] <= gap_s[1]:
        raise ValueError(f"gap_s must be 0 <= low <= high seconds, not {gap_s}")
    noise_hz = rng.uniform(*params.noise_hz)
    gaps = (rng.uniform(*gap_s, len(names) + 1) * 1e6).astype(np.int64)
    parts, segments, now = [], [], 0
    for k, name in enumerate(names):
        parts.append(_background(rng, noise_hz, now, int(gaps[k])))
        now += int(gaps[k])
        gesture = generate_recording(name, seed, GESTURE_INDEX_BASE + k, params)
        length = int(gesture["t"][-1]) + 1 if len(gesture) else 0
        gesture["t"] += now
        parts.append(gesture)
        segments.append(Segment(now, now + length, name))
        now += length
    parts.append(_background(rng, noise_hz, now, int(gaps[-1])))
    now += int(gaps[-1])
    events = np.concatenate(parts)
    return LongRecording(events[np.argsort(events["t"], kind="stable")], tuple(segments), now)


def _background(rng: np.random.Generator, rate_hz: float, start_us: int, length_us: int) -> np.ndarray:
    """Background activity alone: Poisson events at ``rate_hz`` per pixel over ``[start_us, start_us + length_us)``."""
    width, height = SENSOR_SIZE
    n = rng.poisson(rate_hz * width * height * length_us / 1e6) if length_us > 0 else 0
    t = np.sort(rng.integers(start_us, start_us + max(length_us, 1), n))
    return make_events(t, rng.integers(0, width, n), rng.integers(0, height, n), rng.integers(0, 2, n))


__all__ = ["GESTURE_INDEX_BASE", "LongRecording", "Segment", "generate_long_recording", "read_truth"]
