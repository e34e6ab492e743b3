"""EventSink: the decoders' output buffer, capped by max_events, reserving room where events per byte vary."""

import numpy as np
import pytest

from events.errors import LimitExceededError
from events.event_sink import RESERVE_FROM_BYTES, EventSink
from events.recording import EVENT_DTYPE


def test_a_large_possible_output_is_reserved_up_front_so_it_never_moves():
    most = RESERVE_FROM_BYTES // EVENT_DTYPE.itemsize + 1
    sink = EventSink("evt3", max_events=10**9, capacity_hint=1000, most=most)
    assert sink.free == most
    first = sink.reserve(10)
    first["t"] = 7
    later = sink.reserve(most - 10)
    assert later.ctypes.data == first.ctypes.data + 10 * EVENT_DTYPE.itemsize
    sink.give_back(most - 20)
    assert len(sink.result()) == 20
    assert (sink.result()["t"][:10] == 7).all()


def test_a_small_possible_output_starts_at_the_hint_and_grows():
    sink = EventSink("evt3", max_events=10**9, capacity_hint=100, most=1200)
    assert sink.free == 100
    sink.append(np.arange(500), np.zeros(500), np.zeros(500), np.ones(500))
    assert sink.result()["t"].tolist() == list(range(500))


def test_the_reservation_and_the_output_never_pass_max_events():
    sink = EventSink("aedat4", max_events=50, capacity_hint=10, most=10**12)
    assert sink.free <= 50
    sink.reserve(50)
    with pytest.raises(LimitExceededError, match="more than 50 events"):
        sink.reserve(1, offset=123)
