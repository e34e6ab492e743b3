"""Sensor noise added to recordings: uniform background activity and hot pixels.

Used for noise augmentation in training (a background rate drawn per recording up to a maximum,
hot pixels at a density) and for measuring accuracy against noise in evaluation (a fixed rate).
Background activity is a Poisson process at every pixel, uniform over the recording's span
``[t_first, t_last]``, random polarity: what a sensor adds in low light. Hot pixels are pixels
drawn at ``hot_density`` that fire at rates drawn log-uniformly from ``hot_rate_hz`` (hundreds of
Hz: far above any pixel a gesture moves across for long). Everything is a function of the ``rng``
passed in, so a recording's noise is reproducible from its seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from events import make_events


@dataclass(frozen=True)
class SensorNoise:
    """Noise to add: background rate per pixel (Hz, drawn uniformly in ``rate_hz`` per recording),
    the share of pixels that are hot and their rates (Hz, drawn log-uniformly per pixel)."""

    rate_hz: tuple[float, float] = (0.0, 0.0)
    hot_density: float = 0.0
    hot_rate_hz: tuple[float, float] = (200.0, 2000.0)

    def __post_init__(self) -> None:
        low, high = self.rate_hz
        if not 0 <= low <= high:
            raise ValueError(f"rate_hz must be 0 <= low <= high, not {self.rate_hz}")
        if not 0 <= self.hot_density <= 1:
            raise ValueError(f"hot_density must be in [0, 1], not {self.hot_density}")
        if not 0 < self.hot_rate_hz[0] <= self.hot_rate_hz[1]:
            raise ValueError(f"hot_rate_hz must be 0 < low <= high, not {self.hot_rate_hz}")

    @property
    def active(self) -> bool:
        return self.rate_hz[1] > 0 or self.hot_density > 0

    @classmethod
    def fixed(cls, rate_hz: float, hot_density: float = 0.0) -> SensorNoise:
        """Exactly ``rate_hz`` per pixel (evaluation at one noise level)."""
        return cls((rate_hz, rate_hz), hot_density)

    @classmethod
    def up_to(cls, max_rate_hz: float, hot_density: float = 0.0) -> SensorNoise:
        """A rate drawn uniformly in ``[0, max_rate_hz]`` per recording (augmentation)."""
        return cls((0.0, max_rate_hz), hot_density)


def add_noise(
    events: np.ndarray, sensor_size: tuple[int, int], noise: SensorNoise, rng: np.random.Generator
) -> np.ndarray:
    """``events`` with background activity and hot-pixel events added, sorted by time (stable)."""
    if not noise.active or len(events) == 0:
        return events
    width, height = int(sensor_size[0]), int(sensor_size[1])
    pixels = width * height
    t_first, t_last = int(events["t"][0]), int(events["t"][-1])
    span_s = max(t_last - t_first, 0) / 1e6
    rate = rng.uniform(*noise.rate_hz)
    n = rng.poisson(rate * pixels * span_s)
    where = rng.integers(0, pixels, n)
    hot = rng.choice(pixels, rng.binomial(pixels, noise.hot_density), replace=False)
    low, high = np.log(noise.hot_rate_hz)
    hot_counts = rng.poisson(np.exp(rng.uniform(low, high, len(hot))) * span_s)
    where = np.concatenate([where, np.repeat(hot, hot_counts)])
    added = make_events(
        rng.integers(t_first, t_last + 1, len(where)), where % width, where // width, rng.integers(0, 2, len(where))
    )
    merged = np.concatenate([events, added])
    return merged[np.argsort(merged["t"], kind="stable")]
