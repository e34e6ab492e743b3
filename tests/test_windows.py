"""Windows (DESIGN.md section 10): a recording cut into time windows, idle ones reported, busy ones framed.

Expected windows are worked out by hand; expected frames come from ``frame_events`` on each
window's events, selected here with a plain mask rather than the binary search under test.
"""

import numpy as np
import pytest

from events import EventDecodeError, FramingSpec, LimitExceededError, frame_events, frame_windows, make_events
from events.framing import frame_runs

ONE_BIN = FramingSpec(1, 4, 4)


def stream(t, x=None, y=None, p=None):
    n = len(t)
    zeros = np.zeros(n, int)
    return make_events(t, zeros if x is None else x, zeros if y is None else y, np.ones(n, int) if p is None else p)


def cut(events, spec=ONE_BIN, sensor=(4, 4), *, window_us, stride_us, min_events=1, max_windows=1000):
    return frame_windows(
        events, sensor, spec, window_us=window_us, stride_us=stride_us, min_events=min_events, max_windows=max_windows
    )


def expected_frames(events, windows, sensor, spec):
    """Each classified window framed on its own: events with start <= t < end, in time order (ties in file order)."""
    ordered = events[np.argsort(events["t"], kind="stable")]
    frames = []
    for i in windows.classified:
        inside = (ordered["t"] >= windows.start_us[i]) & (ordered["t"] < windows.end_us[i])
        frames.append(frame_events(ordered[inside], sensor, spec))
    return np.stack(frames) if frames else np.empty((0, spec.time_steps, 2, spec.height, spec.width), np.float32)


def random_stream(seed, n, duration_us, sensor=(128, 96)):
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, duration_us, n))
    return make_events(t, rng.integers(0, sensor[0], n), rng.integers(0, sensor[1], n), rng.integers(0, 2, n))


def test_events_exactly_on_a_window_edge_belong_to_the_window_that_starts_there():
    windows = cut(stream([0, 10, 20, 30, 40]), window_us=20, stride_us=20)
    assert windows.start_us.tolist() == [0, 20, 40]
    assert windows.end_us.tolist() == [20, 40, 60]
    assert windows.events.tolist() == [2, 2, 1]
    assert windows.frames[:, 0, 1, 0, 0].tolist() == [2, 2, 1]


def test_windows_start_at_the_first_event_not_at_zero():
    windows = cut(stream([1000, 1004, 1009]), window_us=5, stride_us=5)
    assert windows.start_us.tolist() == [1000, 1005]
    assert windows.events.tolist() == [2, 1]


def test_windows_with_too_few_events_are_idle_and_not_framed():
    events = stream([0, 1, 2, 50, 100, 101, 102], x=[0, 1, 2, 3, 0, 1, 2])
    windows = cut(events, window_us=50, stride_us=50, min_events=2)
    assert windows.events.tolist() == [3, 1, 3]
    assert windows.idle.tolist() == [False, True, False]
    assert windows.classified.tolist() == [0, 2]
    assert windows.frames.shape == (2, 1, 2, 4, 4)
    assert windows.frames[0, 0, 1, 0].tolist() == [1, 1, 1, 0]
    assert windows.frames[1, 0, 1, 0].tolist() == [1, 1, 1, 0]


def test_min_events_below_time_steps_is_raised_to_time_steps():
    windows = cut(stream([0, 1, 10]), FramingSpec(2, 4, 4), window_us=10, stride_us=10, min_events=1)
    assert windows.events.tolist() == [2, 1]
    assert windows.idle.tolist() == [False, True]


def test_a_stride_shorter_than_the_window_overlaps_windows():
    windows = cut(stream([0, 5, 10, 15, 20]), window_us=10, stride_us=5)
    assert windows.start_us.tolist() == [0, 5, 10, 15, 20]
    assert windows.events.tolist() == [2, 2, 2, 2, 1]
    assert windows.frames.sum(axis=(1, 2, 3, 4)).tolist() == [2, 2, 2, 2, 1]


def test_a_stride_longer_than_the_window_leaves_gaps():
    # windows [0, 5), [10, 15), [20, 25): 7 falls between windows, 25 after the last one's end
    windows = cut(stream([0, 3, 7, 12, 25]), window_us=5, stride_us=10)
    assert windows.start_us.tolist() == [0, 10, 20]
    assert windows.events.tolist() == [2, 1, 0]
    assert windows.idle.tolist() == [False, False, True]


def test_a_single_event_makes_one_window():
    events = stream([42], x=[3], y=[2], p=[0])
    windows = cut(events, window_us=1000, stride_us=500)
    assert windows.start_us.tolist() == [42] and windows.end_us.tolist() == [1042]
    assert np.array_equal(windows.frames, frame_events(events, (4, 4), ONE_BIN)[None])
    assert windows.frames[0, 0, 0, 2, 3] == 1


def test_no_events_make_no_windows():
    windows = cut(stream([]), FramingSpec(3, 8, 6), window_us=10, stride_us=5)
    assert len(windows) == 0
    assert windows.frames.shape == (0, 3, 2, 6, 8) and windows.frames.dtype == np.float32


@pytest.mark.parametrize("split_by", ["number", "time"])
def test_every_window_is_framed_as_frame_events_frames_its_own_events(split_by):
    events = random_stream(1, 20_000, 2_000_000)
    spec = FramingSpec(5, 32, 24, split_by)
    for window_us, stride_us in [(100_000, 50_000), (100_000, 100_000), (30_000, 70_000), (1000, 1000)]:
        windows = cut(events, spec, (128, 96), window_us=window_us, stride_us=stride_us, min_events=8, max_windows=5000)
        assert windows.frames.dtype == np.float32
        assert np.array_equal(windows.frames, expected_frames(events, windows, (128, 96), spec))
        assert windows.idle.any() == (window_us == 1000)


def test_split_by_time_inside_a_window_follows_frame_events_including_zero_span():
    spec = FramingSpec(2, 4, 4, "time")
    windows = cut(stream([0, 0, 0, 100, 101, 110]), spec, window_us=50, stride_us=50, min_events=2)
    assert windows.events.tolist() == [3, 0, 3]
    assert windows.frames[0].sum(axis=(1, 2, 3)).tolist() == [3, 0]  # zero span: all in bin 0
    assert windows.frames[1].sum(axis=(1, 2, 3)).tolist() == [2, 1]  # span [100, 110]: 100, 101 | 110


def test_a_recording_out_of_time_order_is_windowed_as_its_stable_sort_by_time():
    events = random_stream(3, 3000, 100_000, (4, 4))
    shuffled = events[np.random.default_rng(4).permutation(len(events))]
    spec = FramingSpec(3, 4, 4, "number")  # by number, order inside a window changes the bins
    windows = cut(shuffled, spec, window_us=20_000, stride_us=10_000)
    assert windows.start_us[0] == events["t"][0]
    assert np.array_equal(windows.frames, expected_frames(shuffled, windows, (4, 4), spec))
    assert np.array_equal(windows.events, cut(events, spec, window_us=20_000, stride_us=10_000).events)


def test_more_windows_than_allowed_is_a_413_saying_how_many():
    events = stream([0, 99])
    assert len(cut(events, window_us=10, stride_us=10, max_windows=10)) == 10
    with pytest.raises(LimitExceededError, match="at most 9") as caught:
        cut(events, window_us=10, stride_us=10, max_windows=9)
    assert caught.value.status == 413


def test_bad_parameters_and_events_outside_the_sensor_are_errors():
    with pytest.raises(ValueError, match="window and stride"):
        cut(stream([0]), window_us=0, stride_us=1)
    with pytest.raises(ValueError, match="window and stride"):
        cut(stream([0]), window_us=1, stride_us=-5)
    with pytest.raises(EventDecodeError, match=r"event 3 at \(9, 0\)"):  # counted from the recording's start
        cut(stream([0, 1, 10, 11], x=[0, 0, 0, 9]), window_us=10, stride_us=10)
    with pytest.raises(ValueError, match="bounds"):
        frame_runs(stream([0, 1]), (4, 4), ONE_BIN, np.array([[1, 0]]))
