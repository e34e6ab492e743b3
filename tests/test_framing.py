"""Framing (DESIGN.md section 4): events -> float32 [T, 2, h, w] count frames, shared by training and serving."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events import EventDecodeError, FramingSpec, frame_and_report, frame_events, make_events
from events.framing import PARALLEL_MIN_EVENTS, Scale, frame_runs


def events(t, x=None, y=None, p=None):
    n = len(t)
    return make_events(
        t, x if x is not None else np.zeros(n), y if y is not None else np.zeros(n), p if p is not None else np.ones(n)
    )


def bins_of(frames: np.ndarray) -> list[int]:
    """Events per time bin."""
    return frames.sum(axis=(1, 2, 3)).astype(int).tolist()


def test_split_by_number_puts_the_remainder_in_the_last_bin():
    stream = events(np.arange(10) * 1000)
    frames = frame_events(stream, (1, 1), FramingSpec(3, 1, 1, "number"))
    assert frames.dtype == np.float32
    assert frames.shape == (3, 2, 1, 1)
    assert bins_of(frames) == [3, 3, 4]


def test_split_by_number_ignores_timestamps():
    stream = events([0, 1, 2, 3, 1_000_000, 1_000_001])
    assert bins_of(frame_events(stream, (1, 1), FramingSpec(2, 1, 1, "number"))) == [3, 3]


def test_split_by_time_uses_equal_spans_and_the_last_event_lands_in_the_last_bin():
    # span [0, 90] in 3 bins of 30 us: 0,10,20 | 30,40,50 | 60,70,80,90 (90 is t_last)
    stream = events(np.arange(10) * 10)
    assert bins_of(frame_events(stream, (1, 1), FramingSpec(3, 1, 1, "time"))) == [3, 3, 4]
    skewed = events([100, 101, 102, 103, 200])
    assert bins_of(frame_events(skewed, (1, 1), FramingSpec(4, 1, 1, "time"))) == [4, 0, 0, 1]


def test_split_by_time_with_zero_duration_puts_everything_in_bin_zero():
    assert bins_of(frame_events(events([5, 5, 5]), (1, 1), FramingSpec(2, 1, 1, "time"))) == [3, 0]


def test_channel_zero_is_off_and_channel_one_is_on():
    stream = events([0, 1, 2], x=[0, 1, 1], y=[0, 0, 1], p=[0, 1, 1])
    frames = frame_events(stream, (2, 2), FramingSpec(1, 2, 2))
    assert frames[0, 0].tolist() == [[1, 0], [0, 0]]
    assert frames[0, 1].tolist() == [[0, 1], [0, 1]]


def test_downsampling_is_integer_arithmetic_x_times_w_over_W():
    # 128 -> 32: x' = x * 32 // 128, so 0..3 -> 0, 4 -> 1, 127 -> 31
    stream = events([0, 1, 2, 3], x=[3, 4, 127, 64], y=[0, 0, 127, 5], p=[1, 1, 1, 1])
    frames = frame_events(stream, (128, 128), FramingSpec(1, 32, 32))
    on = frames[0, 1]
    assert on[0, 0] == 1 and on[0, 1] == 1 and on[31, 31] == 1 and on[1, 16] == 1
    assert on.sum() == 4
    # non-square, non-divisible: DAVIS346 (346 x 260) -> 64 x 48
    stream = events([0, 1], x=[345, 172], y=[259, 130], p=[0, 0])
    off = frame_events(stream, (346, 260), FramingSpec(1, 64, 48))[0, 0]
    assert off[259 * 48 // 260, 345 * 64 // 346] == 1 == off[47, 63]
    assert off[130 * 48 // 260, 172 * 64 // 346] == 1 == off[24, 31]


def test_counts_accumulate_and_nothing_is_lost():
    rng = np.random.default_rng(0)
    n = 5000
    stream = events(np.sort(rng.integers(0, 10**6, n)), rng.integers(0, 128, n), rng.integers(0, 128, n),
                    rng.integers(0, 2, n))  # fmt: skip
    for split in ("number", "time"):
        frames = frame_events(stream, (128, 128), FramingSpec(8, 32, 32, split))
        assert frames.sum() == n
        assert frames[:, 1].sum() == stream["p"].sum()


@pytest.mark.parametrize("n", [0, 1, 3])
def test_fewer_events_than_time_steps_is_a_decode_error(n):
    with pytest.raises(EventDecodeError, match="4 time steps"):
        frame_events(events(np.arange(n)), (8, 8), FramingSpec(4, 8, 8))


def test_events_outside_the_sensor_are_a_decode_error():
    with pytest.raises(EventDecodeError, match="outside"):
        frame_events(events([0, 1], x=[3, 8], y=[0, 0]), (8, 8), FramingSpec(1, 8, 8))


def test_spec_rejects_nonsense_and_round_trips():
    with pytest.raises(ValueError):
        FramingSpec(0, 32, 32)
    with pytest.raises(ValueError):
        FramingSpec(8, 32, 32, "count")
    spec = FramingSpec(8, 64, 48, "time")
    assert FramingSpec.from_dict(spec.to_dict()) == spec


def reference_frames(stream: np.ndarray, sensor: tuple[int, int], spec: FramingSpec) -> np.ndarray:
    """The framing rules written directly in NumPy, independent of the compiled kernels."""
    n = len(stream)
    t = stream["t"].astype(object)  # Python integers: no product or difference of times overflows
    if spec.split_by == "number":
        bins = np.minimum(np.arange(n) // (n // spec.time_steps), spec.time_steps - 1)
    else:
        span = t[-1] - t[0]
        bins = (
            np.zeros(n, np.int64)
            if span <= 0
            else np.clip((t - t[0]) * spec.time_steps // span, 0, spec.time_steps - 1).astype(np.int64)
        )
    out = np.zeros((spec.time_steps, 2, spec.height, spec.width), np.float32)
    xs = stream["x"].astype(np.int64) * spec.width // sensor[0]
    ys = stream["y"].astype(np.int64) * spec.height // sensor[1]
    np.add.at(out, (bins, (stream["p"] != 0).astype(np.int64), ys, xs), 1.0)
    return out


@pytest.mark.parametrize("spec", [FramingSpec(16, 128, 128), FramingSpec(1, 32, 32), FramingSpec(3, 40, 30, "time")])
def test_large_recordings_framed_on_several_threads_match_the_rules(spec):
    rng = np.random.default_rng(1)
    n = 700_001  # above PARALLEL_MIN_EVENTS, not a multiple of T
    stream = events(np.sort(rng.integers(0, 10**7, n)), rng.integers(0, 128, n), rng.integers(0, 128, n),
                    rng.integers(0, 2, n))  # fmt: skip
    np.testing.assert_array_equal(frame_events(stream, (128, 128), spec), reference_frames(stream, (128, 128), spec))


@pytest.mark.parametrize("n", [5, 700_001])
def test_events_outside_the_first_and_last_time_count_in_the_edge_bins(n):
    """Files need not be sorted by time; an event before t_first once indexed before the frames."""
    rng = np.random.default_rng(3)
    t = rng.integers(-(10**9), 10**9, n)
    t[0], t[-1] = 0, 1000
    stream = events(t, rng.integers(0, 128, n), rng.integers(0, 128, n), rng.integers(0, 2, n))
    spec = FramingSpec(4, 32, 32, "time")
    frames = frame_events(stream, (128, 128), spec)
    np.testing.assert_array_equal(frames, reference_frames(stream, (128, 128), spec))
    assert frames[0].sum() == np.count_nonzero(t < 250) and frames[3].sum() == np.count_nonzero(t >= 750)


def out_of_order(n: int, seed: int, how: str) -> np.ndarray:
    """Times of a recording not sorted by time, in three ways files are."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, 10**7, n))
    if how == "stepping back":  # EVT 3.0's TIME_LOW may step back a few microseconds
        back = rng.random(n) < 0.05
        t[back] -= rng.integers(1, 5000, np.count_nonzero(back))
    elif how == "shuffled":
        rng.shuffle(t)
    elif how == "reversed":
        t = t[::-1].copy()
    return t


@pytest.mark.parametrize("how", ["stepping back", "shuffled", "reversed"])
@pytest.mark.parametrize("n", [5_000, 700_001])
def test_split_by_time_counts_events_out_of_time_order_exactly(how, n):
    rng = np.random.default_rng(4)
    stream = events(out_of_order(n, 4, how), rng.integers(0, 346, n), rng.integers(0, 260, n), rng.integers(0, 2, n))
    for spec in (FramingSpec(10, 346, 260, "time"), FramingSpec(7, 64, 48, "time")):
        expected = reference_frames(stream, (346, 260), spec)
        np.testing.assert_array_equal(frame_events(stream, (346, 260), spec), expected)


@pytest.mark.parametrize("n", [20, 700_001])
def test_split_by_time_is_exact_for_times_near_the_int64_limits(n):
    """``(t - t_first) * T`` would overflow 64 bits here; bins are still the exact equal spans."""
    rng = np.random.default_rng(5)
    t = np.sort(rng.integers(-(2**63), 2**63 - 1, n, dtype=np.int64, endpoint=True))
    t[0], t[-1] = -(2**63), 2**63 - 1
    stream = events(t, rng.integers(0, 32, n), rng.integers(0, 32, n), rng.integers(0, 2, n))
    spec = FramingSpec(13, 32, 32, "time")
    frames = frame_events(stream, (32, 32), spec)
    np.testing.assert_array_equal(frames, reference_frames(stream, (32, 32), spec))
    assert frames[-1].sum() >= 1 and frames.sum() == n


@settings(max_examples=300, deadline=None)
@given(
    times=st.lists(st.integers(-(2**63), 2**63 - 1) | st.integers(-50, 50), min_size=1, max_size=60),
    time_steps=st.integers(1, 9),
    seed=st.integers(0, 2**32 - 1),
)
def test_split_by_time_matches_the_rule_for_any_times(times, time_steps, seed):
    """Any int64 times in any order, including repeats and both extremes, land in the bins the rule gives."""
    if len(times) < time_steps:
        times = times * time_steps
    rng = np.random.default_rng(seed)
    n = len(times)
    stream = events(np.array(times, np.int64), rng.integers(0, 6, n), rng.integers(0, 5, n), rng.integers(0, 2, n))
    spec = FramingSpec(time_steps, 3, 5, "time")
    np.testing.assert_array_equal(frame_events(stream, (6, 5), spec), reference_frames(stream, (6, 5), spec))


@pytest.mark.parametrize("crowd", [0, 5000])
@pytest.mark.parametrize(("bad", "first"), [([100, 450_000], 100), ([1000, 2000], 1000), ([450_000, 2000], 2000)])
def test_the_first_event_outside_the_sensor_is_reported_when_times_are_out_of_order(bad, first, crowd):
    """Events 100 and 2000 (and a crowd from 3000 on) belong to the last time bin although they
    sit among the first bin's events."""
    n = 600_000
    t, x = np.arange(n), np.zeros(n, np.int64)
    t[[100, 2000]] = n
    t[3000 : 3000 + crowd] = n
    x[bad] = 200
    with pytest.raises(EventDecodeError, match=f"event {first} at \\(200, 0\\)"):
        frame_events(events(t, x=x), (128, 128), FramingSpec(4, 32, 32, "time"))


@pytest.mark.parametrize("split", ["number", "time"])
def test_a_large_recording_reports_its_first_event_outside_the_sensor(split):
    n = 600_000
    x = np.zeros(n, np.int64)
    x[[450_000, 599_999, 500_000]] = 200
    with pytest.raises(EventDecodeError, match="event 450000 at \\(200, 0\\)"):
        frame_events(events(np.arange(n), x=x), (128, 128), FramingSpec(4, 32, 32, split))


@pytest.mark.parametrize(
    ("sensor", "frame"),
    [
        (128, 32),
        (128, 128),
        (346, 64),
        (260, 48),
        (1280, 1280),
        (1280, 7),
        (65535, 3),
        (65536, 65535),
        (3, 700),
        (1 << 20, 5),
        (1 << 20, 1 << 20),
    ],
)
def test_scale_matches_integer_division_for_every_16_bit_coordinate(sensor, frame):
    v = np.arange(1 << 16, dtype=np.uint64)
    scale = Scale.of(sensor, frame)
    got = (v * np.uint64(scale.factor)) >> np.uint64(scale.shift)
    np.testing.assert_array_equal(got, v * np.uint64(frame) // np.uint64(sensor))


def test_an_absurd_sensor_size_is_a_decode_error_not_an_allocation():
    with pytest.raises(EventDecodeError, match="sensor size"):
        frame_events(events([0, 1]), (10**12, 1), FramingSpec(1, 8, 8))


def test_large_recordings_framed_from_several_threads_at_once_stay_exact():
    """The service frames uploads on several threads; they share the framing pool."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(2)
    n = 300_000

    def recording():
        x, y, p = rng.integers(0, 128, n), rng.integers(0, 128, n), rng.integers(0, 2, n)
        return events(np.sort(rng.integers(0, 10**6, n)), x, y, p)

    streams = [recording() for _ in range(4)]
    specs = [FramingSpec(8, 32, 32), FramingSpec(5, 64, 64, "time")] * 2
    with ThreadPoolExecutor(4) as callers:
        results = list(callers.map(lambda s, spec: frame_events(s, (128, 128), spec), streams, specs))
    for stream, spec, frames in zip(streams, specs, results, strict=True):
        np.testing.assert_array_equal(frames, reference_frames(stream, (128, 128), spec))


def test_busy_helper_threads_do_not_delay_framing():
    """The calling thread claims every unit itself when the helper thread never gets to it."""
    import threading

    from events import framing

    rng = np.random.default_rng(4)
    n = 400_000
    stream = events(np.sort(rng.integers(0, 10**6, n)), rng.integers(0, 128, n), rng.integers(0, 128, n),
                    rng.integers(0, 2, n))  # fmt: skip
    release = threading.Event()
    started = threading.Barrier(framing.THREADS)
    blocked = []

    def block() -> None:
        started.wait()
        blocked.append(release.wait(60))

    for _ in range(framing.THREADS - 1):
        framing._HELPERS.hand(block)
    started.wait(10)
    try:
        for spec in (FramingSpec(16, 64, 64), FramingSpec(4, 64, 64, "time")):
            frames = frame_events(stream, (128, 128), spec)
            np.testing.assert_array_equal(frames, reference_frames(stream, (128, 128), spec))
        assert not blocked  # framing finished while the helpers were still busy
    finally:
        release.set()


def test_a_spec_written_before_the_noise_filters_reads_with_them_off_and_split_by_number():
    assert FramingSpec.from_dict({"time_steps": 8, "width": 32, "height": 24}) == FramingSpec(
        8, 32, 24, "number", 0, False
    )
    written = {"time_steps": 4, "width": 64, "height": 48, "split_by": "time", "denoise_us": 2000, "hot_pixels": True}
    assert FramingSpec.from_dict(written) == FramingSpec(4, 64, 48, "time", 2000, True)


@pytest.mark.parametrize(("sensor", "frame"), [(0, 32), (128, 0), (128, -1), (128, 1 << 29)])
def test_an_axis_that_cannot_be_scaled_is_refused(sensor, frame):
    with pytest.raises(ValueError, match=f"cannot scale a {sensor}-pixel axis to {frame}"):
        Scale.of(sensor, frame)


@pytest.mark.parametrize(("sensor", "frame"), [(1, 1), (1, 7), (65535, (1 << 29) - 1)])
def test_the_extreme_axes_still_scale_exactly(sensor, frame):
    scale = Scale.of(sensor, frame)
    assert isinstance(scale.factor, int)
    v = np.arange(min(sensor, 1 << 16), dtype=np.uint64)
    assert ((v * np.uint64(scale.factor)) >> np.uint64(scale.shift) == v * frame // sensor).all()


def test_frame_runs_counts_each_rows_runs_into_its_own_frames():
    # sensor 4 x 4 framed at 2 x 2: x' = x // 2, y' = y // 2
    stream = events(np.arange(6), x=[0, 3, 1, 2, 0, 3], y=[0, 3, 0, 2, 3, 0], p=[1, 0, 1, 1, 0, 1])
    bounds = np.array([[0, 2, 4], [4, 4, 6], [1, 1, 1]])  # row 2: two empty runs
    frames = frame_runs(stream, (4, 4), FramingSpec(2, 2, 2), bounds)
    assert frames.dtype == np.float32 and frames.shape == (3, 2, 2, 2, 2)
    expected = np.zeros((3, 2, 2, 2, 2), np.float32)
    expected[0, 0, 1, 0, 0] = 1  # event 0: ON at (0, 0)
    expected[0, 0, 0, 1, 1] = 1  # event 1: OFF at (1, 1)
    expected[0, 1, 1, 0, 0] = 1  # event 2: ON at (0, 0)
    expected[0, 1, 1, 1, 1] = 1  # event 3: ON at (1, 1)
    expected[1, 1, 0, 1, 0] = 1  # event 4: OFF at row 1, column 0
    expected[1, 1, 1, 0, 1] = 1  # event 5: ON at row 0, column 1
    np.testing.assert_array_equal(frames, expected)
    at_sensor_size = frame_runs(stream, (4, 4), FramingSpec(1, 4, 4), np.array([[0, 6]]))
    assert at_sensor_size[0, 0, 1].tolist() == [[1, 1, 0, 1], [0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    assert at_sensor_size[0, 0, 0].tolist() == [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 1]]


def test_frame_runs_of_no_rows_are_no_frames():
    frames = frame_runs(events([0, 1]), (4, 4), FramingSpec(3, 2, 5), np.empty((0, 4), np.int64))
    assert frames.shape == (0, 3, 2, 5, 2) and frames.dtype == np.float32


@pytest.mark.parametrize(
    "bounds",
    [[[-1, 1]], [[0, 3]], [[2, 1]], [[0, 1], [2, 0]]],
    ids=["before-the-start", "past-the-end", "decreasing", "decreasing-in-a-later-row"],
)
def test_frame_runs_refuses_runs_outside_the_events_or_going_backwards(bounds):
    with pytest.raises(ValueError, match=r"^bounds must be non-decreasing runs inside the events$"):
        frame_runs(events([0, 1]), (4, 4), FramingSpec(1, 4, 4), np.array(bounds))


def test_frame_runs_takes_runs_that_touch_both_ends_of_the_events():
    frames = frame_runs(events([0, 1]), (4, 4), FramingSpec(1, 4, 4), np.array([[0, 2], [2, 2], [0, 0]]))
    assert frames.sum(axis=(1, 2, 3, 4)).tolist() == [2, 0, 0]


@pytest.mark.parametrize("shape", [(1, 2), (1, 4), (3,)])
def test_frame_runs_refuses_bounds_that_are_not_one_row_of_t_plus_one_per_sample(shape):
    with pytest.raises(ValueError, match=rf"^bounds must be \[n, 3\], not \[{', '.join(map(str, shape))}\]$"):
        frame_runs(events([0, 1]), (4, 4), FramingSpec(2, 4, 4), np.zeros(shape, np.int64))


def test_frame_runs_reports_the_first_event_outside_the_sensor_of_any_row():
    stream = events(np.arange(5), x=[0, 9, 0, 0, 9])
    with pytest.raises(EventDecodeError, match=r"^framing: event 1 at \(9, 0\) lies outside the 8x8 sensor$"):
        frame_runs(stream, (8, 8), FramingSpec(1, 2, 2), np.array([[2, 5], [0, 2]]))  # bad: 4 in row 0, 1 in row 1
    with pytest.raises(EventDecodeError, match=r"event 4 at \(9, 0\)"):
        frame_runs(stream, (8, 8), FramingSpec(1, 8, 8), np.array([[2, 5]]))


@pytest.mark.parametrize("sensor", [(0, 8), (8, 0), ((1 << 20) + 1, 8), (8, (1 << 20) + 1)])
def test_a_sensor_side_outside_one_to_a_million_pixels_is_refused_naming_both_sides(sensor):
    message = rf"^framing: sensor size {sensor[0]}x{sensor[1]} is outside 1\.\.1048576 pixels a side$"
    with pytest.raises(EventDecodeError, match=message):
        frame_events(events([0, 1]), sensor, FramingSpec(1, 8, 8))


def test_the_largest_sensor_side_is_accepted():
    frames = frame_events(events([0, 1], x=[65535, 0]), (1 << 20, 1 << 20), FramingSpec(1, 2, 2))
    assert frames[0, 1].tolist() == [[2, 0], [0, 0]]  # x' = 65535 * 2 // 2**20 = 0


def test_too_few_events_and_events_outside_name_the_counts_and_the_sensor():
    with pytest.raises(EventDecodeError, match=r"^framing: 3 events cannot fill 4 time steps$"):
        frame_events(events(np.arange(3)), (8, 8), FramingSpec(4, 8, 8))
    with pytest.raises(EventDecodeError, match=r"^framing: event 1 at \(3, 8\) lies outside the 8x8 sensor$"):
        frame_events(events([0, 1], x=[3, 3], y=[0, 8]), (8, 8), FramingSpec(1, 8, 8))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ((0, 32, 32), "time_steps, width and height must be positive: FramingSpec(time_steps=0, width=32"),
        ((8, 0, 32), "time_steps, width and height must be positive: FramingSpec(time_steps=8, width=0"),
        ((8, 32, 0), "time_steps, width and height must be positive: FramingSpec(time_steps=8, width=32, height=0"),
        ((8, 32, 32, "count"), "split_by must be 'number' or 'time', not 'count'"),
        ((8, 32, 32, "time", -1), "denoise_us must be 0 (off) or positive, not -1"),
    ],
)
def test_a_spec_refuses_each_nonsensical_field_saying_which(fields, message):
    with pytest.raises(ValueError) as refused:
        FramingSpec(*fields)
    assert str(refused.value).startswith(message)


def test_split_by_time_over_a_span_of_one_microsecond_puts_the_last_time_in_the_last_bin():
    # (t - t_first) * T // span: 0 for t = 5, T (the last bin) for t = 6
    frames = frame_events(events([5, 5, 6]), (1, 1), FramingSpec(3, 1, 1, "time"))
    assert bins_of(frames) == [2, 0, 1]


@pytest.mark.parametrize("split", ["number", "time"])
def test_the_very_first_event_outside_the_sensor_is_reported(split):
    with pytest.raises(EventDecodeError, match=r"^framing: event 0 at \(8, 0\) lies outside the 8x8 sensor$"):
        frame_events(events([0, 1, 2], x=[8, 0, 0]), (8, 8), FramingSpec(1, 8, 8, split))
    with pytest.raises(EventDecodeError, match=r"^framing: event 0 at \(0, 9\)"):
        frame_runs(events([0, 1], y=[9, 0]), (8, 8), FramingSpec(1, 4, 4), np.array([[0, 2]]))


def test_framing_without_filters_reports_them_off_and_nothing_removed():
    frames, report = frame_and_report(events([0, 1, 2]), (1, 1), FramingSpec(1, 1, 1))
    assert frames.sum() == 3
    assert report.to_dict() == {
        "denoise_us": 0,
        "hot_pixels": False,
        "hot_pixels_found": 0,
        "removed": {"hot_pixels": 0, "background_activity": 0},
    }


@pytest.mark.parametrize("dtype", [np.uint32, np.uint64, np.int32])
def test_frame_runs_checks_bounds_of_any_integer_type_as_signed_positions(dtype):
    with pytest.raises(ValueError, match="non-decreasing"):
        frame_runs(events([0, 1, 2]), (4, 4), FramingSpec(1, 4, 4), np.array([[2, 1]], dtype))
    frames = frame_runs(events([0, 1, 2]), (4, 4), FramingSpec(1, 4, 4), np.array([[1, 3]], dtype))
    assert frames.sum() == 2


class RecordingHelpers:
    """Stands in for the framing pool: keeps the jobs it is handed instead of running them."""

    def __init__(self) -> None:
        self.jobs: list = []

    def hand(self, job) -> None:
        self.jobs.append(job)


@pytest.mark.parametrize(("n", "handed"), [(PARALLEL_MIN_EVENTS - 1, 0), (PARALLEL_MIN_EVENTS, 1)])
@pytest.mark.parametrize("split", ["number", "time"])
def test_recordings_of_parallel_min_events_or_more_offer_work_to_each_helper_and_never_wait_for_it(
    monkeypatch, n, handed, split
):
    """With two threads, one helper is offered the work; the caller claims every bin it has not
    started, so a helper that runs only after framing returned finds nothing left to change."""
    from events import framing

    helpers = RecordingHelpers()
    monkeypatch.setattr(framing, "THREADS", 2)
    monkeypatch.setattr(framing, "_HELPERS", helpers)
    rng = np.random.default_rng(6)
    stream = events(np.arange(n), rng.integers(0, 64, n), rng.integers(0, 64, n), rng.integers(0, 2, n))
    spec = FramingSpec(4, 16, 16, split)
    frames = frame_events(stream, (64, 64), spec)
    assert len(helpers.jobs) == handed
    expected = reference_frames(stream, (64, 64), spec)
    np.testing.assert_array_equal(frames, expected)
    for job in helpers.jobs:
        job()  # late: every bin is claimed and counted already
    np.testing.assert_array_equal(frames, expected)
