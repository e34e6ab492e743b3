"""Windows over a live stream (events/stream_windows.py): the timeline's windows, cut as events arrive."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import events
from events.stream_windows import WindowAssembler

SPEC = events.FramingSpec(4, 16, 16, "number")


def recording(seed: int = 0, n: int = 3000) -> np.ndarray:
    """Sorted events in bursts with silent gaps between them, on a 32x32 sensor."""
    rng = np.random.default_rng(seed)
    bursts = [rng.integers(start, start + 40_000, n // 3) for start in (0, 150_000, 400_000)]
    t = np.sort(np.concatenate(bursts))
    return events.make_events(t, rng.integers(0, 32, n), rng.integers(0, 32, n), rng.integers(0, 2, n))


def stream(assembler: WindowAssembler, recording: np.ndarray, cuts: list[int]) -> list:
    closed = []
    for piece in np.split(recording, sorted(cuts)):
        closed += assembler.push(piece)
    return closed + assembler.flush()


@settings(max_examples=25, deadline=None)
@given(
    cuts=st.lists(st.integers(0, 3000), max_size=12),
    window=st.integers(5_000, 90_000),
    ratio=st.sampled_from([1, 2, 3]),
)
def test_a_stream_sent_whole_and_flushed_gives_the_timelines_windows(cuts, window, ratio):
    rec = recording()
    stride = max(1, window // ratio)
    closed = stream(WindowAssembler(window, stride, 10**6, max_idle_run=10**6), rec, cuts)
    timeline = events.frame_windows(
        rec, (32, 32), SPEC, window_us=window, stride_us=stride, min_events=1, max_windows=10**6
    )
    assert [c.start_us for c in closed] == timeline.start_us.tolist()
    assert [c.end_us for c in closed] == timeline.end_us.tolist()
    assert [len(c.events) for c in closed] == timeline.events.tolist()
    busy = [c for c in closed if len(c.events) >= SPEC.time_steps]
    for cut, frames in zip(busy, timeline.frames, strict=True):
        np.testing.assert_array_equal(events.frame_events(cut.events, (32, 32), SPEC), frames)


def test_a_window_closes_as_soon_as_an_event_reaches_its_end():
    assembler = WindowAssembler(100, 100, 1000)
    t = np.array([0, 10, 99])
    assert assembler.push(events.make_events(t, t % 4, t % 4, t % 2)) == []
    closed = assembler.push(events.make_events(np.array([100]), [0], [0], [1]))
    assert [(c.start_us, c.end_us, c.events["t"].tolist()) for c in closed] == [(0, 100, [0, 10, 99])]


def test_an_event_older_than_every_open_window_is_dropped_and_counted():
    assembler = WindowAssembler(100, 50, 1000)
    assembler.push(
        events.make_events(np.array([0, 120, 160]), [0, 0, 0], [0, 0, 0], [1, 1, 1])
    )  # closes [0,100), [50,150)
    assembler.push(events.make_events(np.array([40, 110]), [1, 1], [1, 1], [0, 0]))  # 40 < 100: too late
    assert assembler.late_events == 1
    closed = assembler.flush()
    assert [(c.start_us, c.events["t"].tolist()) for c in closed] == [(100, [120, 160, 110]), (150, [160])]


def test_a_long_time_jump_skips_empty_windows_instead_of_cutting_each():
    assembler = WindowAssembler(100, 100, 1000, max_idle_run=3)
    assembler.push(events.make_events(np.array([0, 5]), [0, 0], [0, 0], [1, 1]))
    closed = assembler.push(events.make_events(np.array([10**12 + 50]), [0], [0], [1]))
    assert len(closed) == 4 and [len(c.events) for c in closed] == [2, 0, 0, 0]
    assert assembler.skipped_windows == 10**10 - 4  # windows [400, 10**12) held nothing
    (last,) = assembler.flush()
    assert (last.start_us, last.events["t"].tolist()) == (10**12, [10**12 + 50])


def test_flush_closes_started_windows_and_the_next_event_starts_a_new_grid():
    assembler = WindowAssembler(100, 50, 1000)
    assembler.push(events.make_events(np.array([7, 60]), [0, 0], [0, 0], [1, 1]))
    assert [(c.start_us, len(c.events)) for c in assembler.flush()] == [(7, 2), (57, 1)]
    assembler.push(events.make_events(np.array([1000]), [0], [0], [1]))
    assert [(c.start_us, c.end_us) for c in assembler.flush()] == [(1000, 1100)]


def test_too_many_events_waiting_for_a_window_is_a_limit_error():
    assembler = WindowAssembler(10**6, 10**6, max_buffered_events=100)
    t = np.arange(101)
    with pytest.raises(events.LimitExceededError, match="101 events wait"):
        assembler.push(events.make_events(t, t % 4, t % 4, t % 2))
