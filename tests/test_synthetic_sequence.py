"""Long simulated recordings: gestures in a row, gaps of background activity only, and their truth."""

import importlib.util
import io
from pathlib import Path

import numpy as np
import pytest

import events
from events.aedat4 import write_aedat4
from events.evt3 import write_evt3
from models.datasets.synthetic import GESTURES, SENSOR_SIZE, CameraParams, generate_recording
from models.datasets.synthetic_sequence import (
    GESTURE_INDEX_BASE,
    Segment,
    generate_long_recording,
    read_truth,
)

ROOT = Path(__file__).resolve().parents[1]
QUIET = CameraParams(noise_hz=(0.0, 0.0))
NOISY = CameraParams(noise_hz=(0.3, 0.3))


def inside_any(t, segments):
    inside = np.zeros(len(t), bool)
    for s in segments:
        inside |= (t >= s.start_us) & (t < s.end_us)
    return inside


def test_same_seed_gives_the_same_recording_and_truth_and_another_seed_differs():
    a = generate_long_recording(3, 2)
    b = generate_long_recording(3, 2)
    np.testing.assert_array_equal(a.events, b.events)
    assert a.segments == b.segments and a.duration_us == b.duration_us
    c = generate_long_recording(4, 2)
    assert c.segments != a.segments


def test_a_scripted_sequence_keeps_its_order_and_fixed_gaps_place_every_segment():
    script = ["swipe_left", 6, "wave_vertical"]
    recording = generate_long_recording(1, script, gap_s=(0.2, 0.2), params=QUIET)
    assert [s.label for s in recording.segments] == ["swipe_left", "approach", "wave_vertical"]
    lengths = [
        int(generate_recording(s.label, 1, GESTURE_INDEX_BASE + k, QUIET)["t"][-1]) + 1
        for k, s in enumerate(recording.segments)
    ]
    expected, now = [], 200_000
    for length in lengths:
        expected.append((now, now + length))
        now += length + 200_000
    assert [(s.start_us, s.end_us) for s in recording.segments] == expected
    assert recording.duration_us == now


def test_a_random_sequence_draws_the_asked_number_of_known_gestures():
    recording = generate_long_recording(9, 4, gap_s=(0.1, 0.3), params=QUIET)
    assert len(recording.segments) == 4
    assert {s.label for s in recording.segments} <= set(GESTURES)
    starts = [s.start_us for s in recording.segments]
    ends = [s.end_us for s in recording.segments]
    gaps = np.array(starts[1:]) - np.array(ends[:-1])
    assert ((gaps >= 100_000) & (gaps <= 300_000)).all()


def test_without_background_activity_the_gaps_are_empty_and_each_segment_is_its_gesture():
    recording = generate_long_recording(2, 3, gap_s=(0.3, 0.6), params=QUIET)
    t = recording.events["t"]
    assert np.all(np.diff(t) >= 0)
    assert inside_any(t, recording.segments).all(), "no event between gestures"
    for k, segment in enumerate(recording.segments):
        gesture = generate_recording(segment.label, 2, GESTURE_INDEX_BASE + k, QUIET)
        inside = recording.events[(t >= segment.start_us) & (t < segment.end_us)]
        np.testing.assert_array_equal(inside["t"] - segment.start_us, gesture["t"])
        np.testing.assert_array_equal(inside[["x", "y", "p"]], gesture[["x", "y", "p"]])


def test_gaps_hold_background_activity_at_its_rate_far_below_the_gestures_rate():
    recording = generate_long_recording(5, 3, gap_s=(1.0, 1.5), params=NOISY)
    t = recording.events["t"]
    inside = inside_any(t, recording.segments)
    gap_us = recording.duration_us - sum(s.end_us - s.start_us for s in recording.segments)
    expected = 0.3 * SENSOR_SIZE[0] * SENSOR_SIZE[1] * gap_us / 1e6  # 0.3 Hz per pixel
    assert abs((~inside).sum() - expected) < 5 * np.sqrt(expected)
    gap_rate = (~inside).sum() / gap_us
    segment_rate = inside.sum() / (recording.duration_us - gap_us)
    assert segment_rate > 4 * gap_rate
    noise = recording.events[~inside]
    for column, size in (("x", SENSOR_SIZE[0]), ("y", SENSOR_SIZE[1])):  # spread over the whole sensor
        assert noise[column].min() < size // 8 and noise[column].max() >= size - size // 8


def test_truth_csv_round_trips_with_the_documented_columns(tmp_path):
    recording = generate_long_recording(6, ["recede"], gap_s=(0.1, 0.1), params=QUIET)
    path = tmp_path / "truth.csv"
    recording.write_truth(path)
    segment = recording.segments[0]
    assert path.read_text() == f"start_us,end_us,label\n{segment.start_us},{segment.end_us},recede\n"
    assert read_truth(path) == (Segment(segment.start_us, segment.end_us, "recede"),)


@pytest.mark.parametrize("write", [write_evt3, lambda f, ev, s: write_aedat4(f, ev, s, compression="lz4")])
def test_a_long_recording_written_by_the_camera_writers_decodes_to_the_same_events(write):
    recording = generate_long_recording(8, 2, gap_s=(0.2, 0.4))
    buffer = io.BytesIO()
    write(buffer, recording.events, SENSOR_SIZE)
    loaded = events.load(buffer.getvalue())
    assert loaded.sensor_size == SENSOR_SIZE
    np.testing.assert_array_equal(loaded.events, recording.events)


def test_unknown_gestures_and_bad_gaps_are_refused():
    with pytest.raises(ValueError, match="unknown gestures"):
        generate_long_recording(0, ["moonwalk"])
    with pytest.raises(ValueError, match="gap_s"):
        generate_long_recording(0, 1, gap_s=(2.0, 1.0))


def test_the_long_example_is_what_examples_generate_writes():
    spec = importlib.util.spec_from_file_location("examples_generate", ROOT / "examples" / "generate.py")
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    expected = generate_long_recording(generate.SEED, generate.LONG_GESTURES)
    assert read_truth(ROOT / "examples" / generate.LONG_TRUTH) == expected.segments
    loaded = events.load(ROOT / "examples" / generate.LONG)
    assert loaded.format == "evt3" and loaded.sensor_size == SENSOR_SIZE
    np.testing.assert_array_equal(loaded.events, expected.events)
    assert len(expected.segments) == 10
