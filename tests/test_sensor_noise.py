"""Sensor noise for augmentation and evaluation: Poisson background activity at the asked rate, hot
pixels at the asked density, reproducible per recording, and found by the hot-pixel filter."""

from collections import Counter

import numpy as np
import pytest

from events import make_events
from events.denoise import hot_pixels
from models.datasets.sensor_noise import SensorNoise, add_noise
from models.datasets.synthetic import CameraParams, generate_recording, noisy_recording

QUIET = CameraParams(noise_hz=(0.0, 0.0))


def base_recording(span_us: int = 500_000) -> np.ndarray:
    return make_events([1_000, 1_000 + span_us // 2, 1_000 + span_us], [5, 6, 7], [5, 5, 5], [1, 1, 1])


def added(recording: np.ndarray, noisy: np.ndarray) -> np.ndarray:
    """The events of ``noisy`` not in ``recording`` (as a multiset)."""
    rest = Counter(map(tuple, noisy.tolist())) - Counter(map(tuple, recording.tolist()))
    return np.array(sorted(rest.elements()), dtype=noisy.dtype)


def test_background_activity_comes_at_the_fixed_rate_uniform_over_pixels_and_span():
    recording = base_recording()
    noisy = add_noise(recording, (64, 32), SensorNoise.fixed(20.0), np.random.default_rng(1))
    extra = added(recording, noisy)
    expected = 20.0 * 64 * 32 * 0.5  # Hz x pixels x seconds
    assert abs(len(extra) - expected) < 5 * np.sqrt(expected)
    assert np.all(np.diff(noisy["t"]) >= 0)
    assert extra["t"].min() >= 1_000 and extra["t"].max() <= 501_000
    assert extra["x"].max() == 63 and extra["y"].max() == 31
    per_pixel = np.bincount(extra["y"].astype(int) * 64 + extra["x"], minlength=64 * 32)
    assert per_pixel.var() == pytest.approx(per_pixel.mean(), rel=0.15)  # Poisson: variance = mean
    assert 0.45 < extra["p"].mean() < 0.55


def test_augmentation_draws_each_recordings_rate_up_to_the_maximum():
    recording = base_recording()
    rates = [len(added(recording, add_noise(recording, (32, 32), SensorNoise.up_to(10.0), np.random.default_rng(s))))
             / (32 * 32 * 0.5) for s in range(40)]  # fmt: skip
    assert min(rates) < 2.5 and max(rates) > 7.5 and max(rates) < 10.5


def test_hot_pixels_come_at_the_asked_density_and_rates_and_the_filter_finds_them():
    recording = generate_recording(4, seed=3, index=0, params=QUIET)
    noise = SensorNoise(hot_density=0.002, hot_rate_hz=(300.0, 300.0))
    noisy = add_noise(recording, (128, 128), noise, np.random.default_rng(7))
    extra = added(recording, noisy)
    pixels, counts = np.unique(extra["y"].astype(int) * 128 + extra["x"], return_counts=True)
    assert abs(len(pixels) - 0.002 * 128 * 128) < 4 * np.sqrt(0.002 * 128 * 128)
    span_s = (int(recording["t"][-1]) - int(recording["t"][0])) / 1e6
    assert np.median(counts) == pytest.approx(300 * span_s, rel=0.2)
    survivors, _, found = hot_pixels(noisy, (128, 128))
    at_hot = np.isin(survivors["y"].astype(int) * 128 + survivors["x"], pixels)
    assert found >= 0.9 * len(pixels)
    assert len(extra) - at_hot.sum() >= 0.9 * len(extra)  # hot pixels' events dropped
    assert len(recording) - (~at_hot).sum() < 0.01 * len(recording)  # recording's own events lost


def test_a_recordings_noise_is_reproducible_and_off_by_default():
    noise = SensorNoise.fixed(3.0, 0.001)
    a = noisy_recording(2, seed=1, index=4, params=QUIET, noise=noise)
    np.testing.assert_array_equal(a, noisy_recording(2, seed=1, index=4, params=QUIET, noise=noise))
    np.testing.assert_array_equal(noisy_recording(2, 1, 4, QUIET), generate_recording(2, 1, 4, QUIET))
    assert len(a) > len(generate_recording(2, 1, 4, QUIET))


def test_nonsense_noise_is_refused():
    for bad in ({"rate_hz": (2.0, 1.0)}, {"rate_hz": (-1.0, 1.0)}, {"hot_density": 1.5}, {"hot_rate_hz": (0.0, 1.0)}):
        with pytest.raises(ValueError):
            SensorNoise(**bad)
