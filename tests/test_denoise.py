"""Noise filters (DESIGN.md section 14), checked against dv-processing, tonic and hand-made cases."""

import datetime

import dv_processing as dv
import numpy as np
import pytest
from tonic.functional.denoise import denoise_numpy

from events import EventDecodeError, FramingSpec, frame_and_report, frame_events, make_events
from events.denoise import BackgroundActivityFilter, background_activity, hot_pixels, remove_noise

START = 1_000_000  # past any window: dv-processing and tonic treat the first window of the time axis apart


def stream(rows) -> np.ndarray:
    """Events from ``(t, x, y)`` rows, all ON."""
    t, x, y = zip(*rows, strict=True) if rows else ((), (), ())
    return make_events(np.array(t, np.int64), x, y, np.ones(len(t)))


def kept(rows, window_us=2000, sensor=(8, 8)) -> list[int]:
    """Which of ``rows`` (each a distinct ``(t, x, y)``) the filter keeps, by index."""
    survivors, bad = background_activity(stream(rows), sensor, window_us)
    assert bad == -1
    return [rows.index(event) for event in map(tuple, txy(survivors).tolist())]


def random_events(n: int, sensor: tuple[int, int], span_us: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(START, START + span_us, n))
    return make_events(t, rng.integers(0, sensor[0], n), rng.integers(0, sensor[1], n), rng.integers(0, 2, n))


def dv_kept(events: np.ndarray, sensor: tuple[int, int], window_us: int) -> np.ndarray:
    """dv-processing's BackgroundActivityNoiseFilter on the same events: the survivors' t, x, y."""
    store = dv.EventStore()
    for t, x, y, p in events.tolist():
        store.push_back(t, x, y, bool(p))
    noise_filter = dv.noise.BackgroundActivityNoiseFilter(sensor, datetime.timedelta(microseconds=window_us))
    noise_filter.accept(store)
    out = noise_filter.generateEvents().numpy()
    return np.stack([out["timestamp"], out["x"], out["y"]], axis=1)


def txy(events: np.ndarray) -> np.ndarray:
    return np.stack([events["t"], events["x"].astype(np.int64), events["y"].astype(np.int64)], axis=1)


# --- background activity: hand-made cases ---------------------------------------------------


def test_a_neighbour_within_the_window_keeps_an_event_and_its_own_pixel_does_not():
    assert kept([(START, 3, 3), (START + 100, 4, 4)]) == [1]
    assert kept([(START, 3, 3), (START + 100, 3, 3)]) == []


def test_the_window_is_strict_and_simultaneous_events_count():
    assert kept([(START, 3, 3), (START + 1999, 3, 4)]) == [1]
    assert kept([(START, 3, 3), (START + 2000, 3, 4)]) == []
    assert kept([(START, 3, 3), (START, 2, 3)]) == [1]


def test_only_the_eight_touching_pixels_are_neighbours():
    touching = [(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if (dx, dy) != (0, 0)]
    for dx, dy in touching:
        assert kept([(START, 3 + dx, 3 + dy), (START + 1, 3, 3)]) == [1]
    for dx, dy in [(2, 0), (0, -2), (2, 2), (-2, 1)]:
        assert kept([(START, 3 + dx, 3 + dy), (START + 1, 3, 3)]) == []


def test_dropped_events_still_mark_their_pixel():
    # the first is noise (dropped) yet keeps the second, which keeps the third
    assert kept([(START, 3, 3), (START + 1500, 4, 3), (START + 3000, 5, 3)]) == [1, 2]


def test_pixels_on_the_border_and_in_the_corners_have_their_neighbours_only():
    corners = [(START, 0, 0), (START + 5, 1, 1), (START + 6, 7, 7), (START + 7, 6, 6)]
    rows = [*corners, (START + 8, 7, 0), (START + 9, 0, 7)]
    assert kept(rows) == [1, 3]


def test_a_pixel_that_never_fired_supports_nothing_even_at_the_start_of_time():
    early = [(10, 3, 3), (20, 6, 6)]
    assert kept(early) == []
    # dv-processing's surface starts at time 0, so it keeps both: its convention differs here only
    assert dv_kept(stream(early), (8, 8), 2000).tolist() == [[10, 3, 3], [20, 6, 6]]


def test_times_near_the_int64_limits_do_not_overflow():
    low = np.iinfo(np.int64).min + 1  # the smallest int64 itself marks a pixel that never fired
    assert kept([(low, 3, 3), (low + 5, 3, 4), (low + 10, 7, 7)]) == [1]
    high = np.iinfo(np.int64).max
    assert kept([(high - 10, 3, 3), (high, 3, 4)]) == [1]


def test_an_event_outside_the_sensor_is_reported():
    assert background_activity(stream([(START, 1, 1), (START + 1, 8, 0)]), (8, 8), 2000)[1] == 1
    with pytest.raises(EventDecodeError, match=r"event 1 at \(8, 0\) lies outside the 8x8 sensor"):
        remove_noise(stream([(START, 1, 1), (START + 1, 8, 0)]), (8, 8), 2000, False)


# --- background activity: independent implementations ---------------------------------------


# --- background activity on a stream fed in pieces ------------------------------------------


def test_a_streaming_filter_remembers_the_pixels_of_earlier_pieces():
    rows = [(START, 3, 3), (START + 1500, 4, 3), (START + 3000, 5, 3), (START + 9000, 0, 0), (START + 9001, 7, 7)]
    pieces = [stream(rows[:1]), stream(rows[1:2]), stream([]), stream(rows[2:])]
    noise_filter = BackgroundActivityFilter((8, 8), 2000)
    survivors = [txy(noise_filter.filter(piece)[0]).tolist() for piece in pieces]
    # the second is kept by the first (dropped, in the piece before), the third by the second
    assert survivors == [[], [[START + 1500, 4, 3]], [], [[START + 3000, 5, 3]]]


def test_a_streaming_filter_fed_anywhere_keeps_what_the_whole_recording_keeps():
    events = random_events(40_000, (64, 48), 400_000, seed=11)
    whole, _ = background_activity(events, (64, 48), 2000)
    assert 0 < len(whole) < len(events)
    cuts = np.sort(np.random.default_rng(3).integers(0, len(events), 30))
    noise_filter = BackgroundActivityFilter((64, 48), 2000)
    pieces = [noise_filter.filter(piece) for piece in np.split(events, cuts)]
    assert all(bad == -1 for _, bad in pieces)
    assert np.array_equal(np.concatenate([kept for kept, _ in pieces]), whole)
    # a window filtered alone, as the timeline does, lacks the history at its start: fewer survive there
    start = int(events["t"][20_000])
    alone, _ = background_activity(events[20_000:], (64, 48), 2000)
    later = whole[whole["t"] >= start]
    assert len(alone) < len(later)
    assert np.array_equal(alone[alone["t"] >= start + 2000], later[later["t"] >= start + 2000])


def test_a_streaming_filter_reports_an_event_outside_the_sensor():
    noise_filter = BackgroundActivityFilter((8, 8), 2000)
    assert noise_filter.filter(stream([(START, 1, 1)]))[1] == -1
    kept, bad = noise_filter.filter(stream([(START + 1, 1, 2), (START + 2, 3, 8)]))
    assert bad == 1 and txy(kept).tolist() == [[START + 1, 1, 2]]


@pytest.mark.parametrize("window_us", [500, 2000, 10_000])
def test_matches_dv_processing_on_the_same_events(window_us):
    sensor = (64, 48)
    events = random_events(60_000, sensor, 1_000_000, seed=window_us)
    ours, bad = background_activity(events, sensor, window_us)
    assert bad == -1
    survivors = dv_kept(events, sensor, window_us)
    assert 0.02 * len(events) < len(survivors) < 0.98 * len(events)  # the case discriminates
    np.testing.assert_array_equal(txy(ours), survivors)


def test_matches_tonic_on_a_single_row_where_its_four_neighbours_are_our_eight():
    sensor = (200, 1)
    events = random_events(5_000, sensor, 1_000_000, seed=3)
    ours, _ = background_activity(events, sensor, 3000)
    survivors = denoise_numpy(events, filter_time=3000)
    assert 0.05 * len(events) < len(survivors) < 0.95 * len(events)
    np.testing.assert_array_equal(ours, survivors)


def test_tonic_keeps_a_subset_its_four_neighbours_miss_the_diagonals():
    sensor = (32, 32)
    events = random_events(20_000, sensor, 1_000_000, seed=4)
    ours = set(map(tuple, txy(background_activity(events, sensor, 2000)[0]).tolist()))
    theirs = set(map(tuple, txy(denoise_numpy(events, filter_time=2000)).tolist()))
    assert theirs < ours
    diagonal_only = [(START, 3, 3), (START + 10, 4, 4)]
    assert kept(diagonal_only) == [1]
    assert len(denoise_numpy(stream(diagonal_only), filter_time=2000)) == 0


# --- hot pixels ------------------------------------------------------------------------------


def pixel_counts(counts: dict[tuple[int, int], int], seed: int = 0) -> np.ndarray:
    """A recording where pixel ``(x, y)`` fires ``counts[(x, y)]`` times, shuffled in time."""
    xs = np.concatenate([np.full(c, x) for (x, _), c in counts.items()])
    ys = np.concatenate([np.full(c, y) for (_, y), c in counts.items()])
    order = np.random.default_rng(seed).permutation(len(xs))
    return make_events(np.arange(len(xs)), xs[order], ys[order], np.ones(len(xs)))


def test_a_lone_busy_pixel_is_hot_and_a_busy_edge_is_not():
    counts = {(x, y): 1 for x in range(0, 20, 2) for y in range(0, 20, 2)}  # 100 noise pixels: median 1
    counts.update({(x, 25): 40 for x in range(10, 20)})  # a moving edge: 40 events, neighbours as busy
    counts[(30, 30)] = 40  # a hot pixel: 40 events, silent neighbours
    counts[(31, 5)] = 9  # busy, but not 10x the typical pixel
    events = pixel_counts(counts)
    survivors, bad, found = hot_pixels(events, (40, 40))
    assert (bad, found) == (-1, 1)
    hot = (events["x"] == 30) & (events["y"] == 30)
    np.testing.assert_array_equal(survivors, events[~hot])
    assert hot.sum() == 40


def test_the_hot_rule_thresholds_are_strict():
    base = {(x, 0): 2 for x in range(0, 40, 2)}  # median 2 -> over 20 events
    events = pixel_counts({**base, (20, 20): 20})
    survivors, _, found = hot_pixels(events, (40, 40))
    assert found == 0 and np.array_equal(survivors, events)
    assert hot_pixels(pixel_counts({**base, (20, 20): 21}), (40, 40))[2] == 1
    # 4x the busiest neighbour: 21 next to a pixel of 6 is not hot, next to one of 5 it is
    assert hot_pixels(pixel_counts({**base, (20, 20): 21, (21, 21): 6}), (40, 40))[2] == 0
    assert hot_pixels(pixel_counts({**base, (20, 20): 21, (21, 21): 5}), (40, 40))[2] == 1


def test_hot_pixels_outside_the_sensor_and_empty_recordings():
    assert hot_pixels(stream([(0, 1, 1), (1, 9, 1)]), (8, 8))[1] == 1
    survivors, bad, found = hot_pixels(stream([]), (8, 8))
    assert (len(survivors), bad, found) == (0, -1, 0)


# --- in the framing spec ---------------------------------------------------------------------


def test_framing_applies_the_spec_filters_hot_pixels_first_and_reports_what_they_removed():
    counts = {(x, y): 1 for x in range(0, 30, 3) for y in range(0, 30, 3)}  # 100 lone noise events
    counts.update({(x, 35): 8 for x in range(20, 30)})  # an edge
    counts[(16, 16)] = 300  # next to the noise pixel (15, 15)
    events = pixel_counts(counts)
    events["t"] = START + np.arange(len(events)) * 10
    spec = FramingSpec(4, 40, 40, denoise_us=2000, hot_pixels=True)
    frames, report = frame_and_report(events, (40, 40), spec)
    no_hot, _ = remove_noise(events, (40, 40), 0, True)
    survivors, _ = background_activity(no_hot, (40, 40), 2000)
    expected = frame_events(survivors, (40, 40), FramingSpec(4, 40, 40))
    np.testing.assert_array_equal(frames, expected)
    assert report.to_dict() == {
        "denoise_us": 2000,
        "hot_pixels": True,
        "hot_pixels_found": 1,
        "removed": {"hot_pixels": 300, "background_activity": len(no_hot) - len(survivors)},
    }
    # the noise pixels are 3 apart, so none has a neighbour; only the hot pixel's events vouched for them
    lone = (events["y"] < 30) & ((events["x"] != 16) | (events["y"] != 16))
    assert report.background_events >= lone.sum() == 100
    unfiltered_hot = background_activity(events, (40, 40), 2000)[0]
    assert ((unfiltered_hot["x"] == 15) & (unfiltered_hot["y"] == 15)).any()


def test_a_recording_filtered_below_the_time_steps_is_a_decode_error():
    lonely = stream([(START + 10 * i, 4 * i, 0) for i in range(8)])
    with pytest.raises(EventDecodeError, match="0 events left after noise filtering cannot fill 4 time steps"):
        frame_events(lonely, (40, 40), FramingSpec(4, 40, 40, denoise_us=1000))


def test_specs_written_before_the_filters_load_with_them_off():
    old = {"time_steps": 8, "width": 32, "height": 32, "split_by": "number"}
    assert FramingSpec.from_dict(old) == FramingSpec(8, 32, 32)
    spec = FramingSpec(8, 32, 32, "time", denoise_us=2000, hot_pixels=True)
    assert FramingSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError):
        FramingSpec(8, 32, 32, denoise_us=-1)
