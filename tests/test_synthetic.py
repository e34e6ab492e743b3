"""The simulated event camera: deterministic per seed, DVS-like output, and classes that differ in motion."""

import numpy as np
import pytest
import torch

from events import EVENT_DTYPE, FramingSpec, frame_events
from models.datasets import DATASETS
from models.datasets.synthetic import GESTURES, SENSOR_SIZE, CameraParams, generate_recording, split_seed

QUIET = CameraParams(noise_hz=(0.0, 0.0))


def test_ten_named_gestures_on_a_128_sensor():
    assert len(GESTURES) == 10
    assert {"swipe_left", "swipe_right", "rotate_clockwise", "rotate_counterclockwise", "approach", "recede"} <= set(
        GESTURES
    )
    assert SENSOR_SIZE == (128, 128)


def test_same_seed_and_index_give_identical_events_and_others_differ():
    a = generate_recording(3, seed=5, index=17)
    np.testing.assert_array_equal(a, generate_recording("swipe_down", seed=5, index=17))
    for other in (generate_recording(3, seed=6, index=17), generate_recording(3, seed=5, index=18)):
        assert len(other) != len(a) or not np.array_equal(other, a)


@pytest.mark.parametrize("label", range(10))
def test_recordings_look_like_a_dvs_stream(label):
    ev = generate_recording(label, seed=0, index=label)
    assert ev.dtype == EVENT_DTYPE
    assert len(ev) > 2000
    assert np.all(np.diff(ev["t"]) >= 0), "sorted by time"
    assert ev["t"][0] >= 0 and 250_000 <= ev["t"][-1] <= 1_000_000, "0.3-1.0 s long"
    assert ev["x"].max() < 128 and ev["y"].max() < 128
    on = int(ev["p"].sum())
    assert 0 < on < len(ev), "both polarities"
    # microsecond timestamps interpolated within the 1 ms steps, not all on the step grid
    assert np.mean(ev["t"] % 1000 != 0) > 0.5


def test_background_activity_adds_poisson_events_at_the_configured_rate():
    quiet = generate_recording("approach", 1, 2, QUIET)
    noisy = generate_recording("approach", 1, 2, CameraParams(noise_hz=(2.0, 2.0)))
    duration_s = (noisy["t"][-1] - noisy["t"][0]) / 1e6
    expected = 2.0 * 128 * 128 * duration_s
    assert len(noisy) - len(quiet) == pytest.approx(expected, rel=0.05)


def test_a_higher_contrast_threshold_gives_fewer_events():
    low = generate_recording("swipe_right", 0, 4, CameraParams(noise_hz=(0, 0), threshold_mean=(0.2, 0.2)))
    high = generate_recording("swipe_right", 0, 4, CameraParams(noise_hz=(0, 0), threshold_mean=(0.4, 0.4)))
    assert 0.35 < len(high) / len(low) < 0.65


def quarters(ev: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = len(ev)
    return ev[: n // 4], ev[-n // 4 :]


@pytest.mark.parametrize(
    ("label", "axis", "sign"),
    [("swipe_left", "x", -1), ("swipe_right", "x", 1), ("swipe_up", "y", -1), ("swipe_down", "y", 1)],
)
def test_swipes_move_the_event_centroid_in_their_direction(label, axis, sign):
    for index in range(3):
        first, last = quarters(generate_recording(label, 0, index))
        shift = last[axis].astype(float).mean() - first[axis].astype(float).mean()
        assert sign * shift > 5, (index, shift)


def spread(ev: np.ndarray) -> float:
    return float(np.hypot(ev["x"].astype(float).std(), ev["y"].astype(float).std()))


@pytest.mark.parametrize(("label", "grows"), [("approach", True), ("recede", False)])
def test_approach_grows_and_recede_shrinks(label, grows):
    for index in range(3):
        first, last = quarters(generate_recording(label, 0, index, QUIET))
        assert (spread(last) > 1.3 * spread(first)) == grows, index


def orientation_trend(ev: np.ndarray, windows: int = 8) -> float:
    """Mean change of the event cloud's doubled orientation angle per window (image coordinates, y down)."""
    angles = []
    for part in np.array_split(ev, windows):
        dx = part["x"] - part["x"].astype(float).mean()
        dy = part["y"] - part["y"].astype(float).mean()
        angles.append(np.angle(np.sum((dx + 1j * dy) ** 2)))
    return float(np.mean(np.diff(np.unwrap(angles))))


@pytest.mark.parametrize(("label", "sign"), [("rotate_clockwise", 1), ("rotate_counterclockwise", -1)])
def test_rotations_turn_in_their_direction(label, sign):
    for index in range(3):
        assert sign * orientation_trend(generate_recording(label, 0, index, QUIET)) > 0.1, index


@pytest.mark.parametrize(("label", "axis"), [("wave_horizontal", "x"), ("wave_vertical", "y")])
def test_waves_go_back_and_forth(label, axis):
    for index in range(3):
        ev = generate_recording(label, 0, index, QUIET)
        centroids = [part[axis].astype(float).mean() for part in np.array_split(ev, 12)]
        steps = np.sign(np.diff(centroids))
        assert np.any(steps > 0) and np.any(steps < 0), index


def test_train_and_test_splits_share_no_recording(tmp_path):
    seeds = {split_seed(s, split) for s in range(50) for split in ("train", "test")}
    assert len(seeds) == 100
    spec = FramingSpec(4, 16, 16, "number")
    for seed in (0, 3):
        splits = [
            DATASETS["synthetic"](None, split, spec, size=20, seed=seed, cache_dir=tmp_path, workers=1)
            for split in ("train", "test")
        ]
        train, test = ({sample.events().tobytes() for sample in split.samples} for split in splits)
        assert len(train) == len(test) == 20 and not train & test


def test_the_synthetic_opener_frames_balanced_labelled_splits_and_caches_them(tmp_path):
    spec = FramingSpec(4, 16, 16, "number")
    train = DATASETS["synthetic"](None, "train", spec, size=20, seed=3, cache_dir=tmp_path, workers=1)
    assert train.classes == list(GESTURES)
    assert train.sensor_size == (128, 128)
    assert [s.label for s in train.samples] == [i % 10 for i in range(20)]
    frames, label = train[13]
    assert label == 3 and frames.dtype == torch.float32 and frames.shape == (4, 2, 16, 16)
    expected = frame_events(generate_recording(3, split_seed(3, "train"), 13), SENSOR_SIZE, spec)
    np.testing.assert_array_equal(frames.numpy(), expected)
    np.testing.assert_array_equal(train.samples[13].events(), generate_recording(3, split_seed(3, "train"), 13))
    assert len(list(tmp_path.glob("*.npy"))) == 1
    again = DATASETS["synthetic"](None, "train", spec, size=20, seed=3, cache_dir=tmp_path, workers=1)
    assert torch.equal(again[13][0], frames)
    test = DATASETS["synthetic"](None, "test", spec, size=20, seed=3, cache_dir=tmp_path, workers=1)
    assert not torch.equal(test[13][0], frames)
    assert len(list(tmp_path.glob("*.npy"))) == 2
