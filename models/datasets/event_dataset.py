"""A labelled set of event recordings, framed on access with the shared framing function.

Every dataset (synthetic or a real one on disk) is a list of ``Sample``s: a way to get the
events of one recording, and its label. Framing is the same function the service uses, so a
model sees identical input in training and in production.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from events import FramingSpec, frame_events
from models.datasets.sensor_noise import SensorNoise, add_noise


@dataclass(frozen=True)
class Sample:
    """One recording: ``events()`` returns its EVENT_DTYPE array; ``label`` indexes ``classes``."""

    events: Callable[[], np.ndarray]
    label: int
    source: str = ""


class EventDataset(Dataset):
    """``(frames float32 [T, 2, h, w], label)`` pairs from ``samples``, framed per ``spec``.

    ``cache=True`` keeps each framed tensor after its first access (the synthetic set and
    small real subsets fit in memory; this makes epochs after the first cheap). ``noise``, when
    set, is added to each recording before framing, drawn from ``(noise_seed, index)``.
    """

    noise: SensorNoise | None = None
    noise_seed: int = 0

    def __init__(
        self,
        samples: list[Sample],
        classes: list[str],
        sensor_size: tuple[int, int],
        spec: FramingSpec,
        name: str,
        cache: bool = False,
    ):
        self.samples = samples
        self.classes = list(classes)
        self.sensor_size = (int(sensor_size[0]), int(sensor_size[1]))
        self.spec = spec
        self.name = name
        self._cache: dict[int, torch.Tensor] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.samples)

    def frames(self, index: int) -> torch.Tensor:
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        events = self.samples[index].events()
        if self.noise is not None:
            events = add_noise(events, self.sensor_size, self.noise, np.random.default_rng([self.noise_seed, index]))
        frames = torch.from_numpy(frame_events(events, self.sensor_size, self.spec))
        if self._cache is not None:
            self._cache[index] = frames
        return frames

    def recording_medians(self, limit: int = 200) -> tuple[int, int] | tuple[None, None]:
        """Median duration (``t_last - t_first``, µs) and median event count of up to ``limit`` evenly
        spaced recordings; ``(None, None)`` when empty.

        Recorded in the checkpoint card as the default window for streams and the base of its idle
        threshold (DESIGN.md section 10); a sample keeps the cost bounded on large datasets.
        """
        if not self.samples:
            return None, None
        picks = np.unique(np.linspace(0, len(self.samples) - 1, min(limit, len(self.samples))).astype(int))
        spans, counts = [], []
        for i in picks:
            t = self.samples[i].events()["t"]
            spans.append(int(t.max()) - int(t.min()) if len(t) else 0)
            counts.append(len(t))
        return int(np.median(spans)), int(np.median(counts))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.frames(index), self.samples[index].label
