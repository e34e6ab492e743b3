"""CSV and text exports as tools write them, decoded through ``events.load``.

faery (installed with the dev requirements) writes the files of the first tests; the expected
events are the arrays handed to faery. The hand-written files after them follow what other
tools and people write; each expected value is read off the file text.
"""

from __future__ import annotations

import numpy as np
import pytest

import events
from events import EventDecodeError

faery = pytest.importorskip("faery")


@pytest.fixture
def stream() -> np.ndarray:
    rng = np.random.default_rng(3)
    n = 500
    out = np.zeros(n, dtype=faery.EVENTS_DTYPE)
    out["t"] = np.sort(rng.integers(1_000, 2_000_000, n))
    out["x"] = rng.integers(0, 320, n)
    out["y"] = rng.integers(0, 240, n)
    out["on"] = rng.integers(0, 2, n).astype(bool)
    return out


def faery_csv(path, stream, **options) -> bytes:
    faery.events_stream_from_array(stream, dimensions=(320, 240)).to_file(path, zero_t0=False, **options)
    return path.read_bytes()


def assert_same_events(recording, stream) -> None:
    assert recording.events["t"].tolist() == stream["t"].tolist()
    assert recording.events["x"].tolist() == stream["x"].tolist()
    assert recording.events["y"].tolist() == stream["y"].tolist()
    assert recording.events["p"].tolist() == stream["on"].astype(int).tolist()


def test_faery_csv_with_its_sensor_size_header(tmp_path, stream):
    data = faery_csv(tmp_path / "faery.csv", stream)
    assert data.startswith(b"t,x@320,y@240,on\r\n")
    recording = events.load(tmp_path / "faery.csv")
    assert recording.format == "csv"
    assert recording.sensor_size == (320, 240) and recording.sensor_from_header
    assert_same_events(recording, stream)


def test_faery_csv_without_header_reads_as_t_x_y_p(tmp_path, stream):
    data = faery_csv(tmp_path / "plain.csv", stream, csv_header=False)
    assert data.split(b"\n", 1)[0].count(b",") == 3 and data[:1].isdigit()
    recording = events.load(data)
    assert not recording.sensor_from_header
    assert_same_events(recording, stream)


def test_faery_csv_with_another_separator(tmp_path, stream):
    faery_csv(tmp_path / "tabs.csv", stream, csv_separator=b"\t")
    recording = events.load(tmp_path / "tabs.csv")
    assert recording.sensor_size == (320, 240)
    assert_same_events(recording, stream)


HAND_WRITTEN = {
    "metavision order named by a header": (b"x,y,p,t\n5,6,1,100\n7,8,0,250\n", [100, 250], [5, 7], [6, 8], [1, 0]),
    "any order, long names": (b"polarity timestamp y x\n1 10 2 3\n0 20 4 5\n", [10, 20], [3, 5], [2, 4], [1, 0]),
    "pol and ts, semicolons": (b"ts;x;y;pol\n1;1;1;-1\n2;1;1;1\n", [1, 2], [1, 1], [1, 1], [0, 1]),
    "quoted header, true/false": (b'"t","x","y","on"\n7,1,2,true\n9,3,4,false\n', [7, 9], [1, 3], [2, 4], [1, 0]),
    "comments everywhere": (
        b"# exported\nt,x,y,p\n# part 1\n10,1,2,1 # first\n\n20,3,4,0\n",
        [10, 20],
        [1, 3],
        [2, 4],
        [1, 0],
    ),
    "seconds by decimal point": (b"0.000010 3 4 1\n1.5 5 6 0\n", [10, 1_500_000], [3, 5], [4, 6], [1, 0]),
    "seconds named, integer values": (b"t_s,x,y,p\n1,0,0,1\n2,0,0,1\n", [1_000_000, 2_000_000], [0, 0], [0, 0], [1, 1]),
    "milliseconds named": (b"time[ms],x,y,p\n1.25,0,0,1\n3,0,0,0\n", [1250, 3000], [0, 0], [0, 0], [1, 0]),
    "microseconds named, with decimals": (b"t_us,x,y,p\n10.0,0,0,1\n12.6,0,0,0\n", [10, 13], [0, 0], [0, 0], [1, 0]),
    "nanoseconds named": (b"timestamp_ns,x,y,p\n5000,1,1,1\n9000,1,1,0\n", [5, 9], [1, 1], [1, 1], [1, 0]),
}


@pytest.mark.parametrize("case", sorted(HAND_WRITTEN))
def test_hand_written_exports(case):
    data, t, x, y, p = HAND_WRITTEN[case]
    recording = events.load(data)
    assert recording.format == "csv"
    assert recording.events["t"].tolist() == t
    assert recording.events["x"].tolist() == x
    assert recording.events["y"].tolist() == y
    assert recording.events["p"].tolist() == p


def test_a_faery_header_sets_the_sensor_size_even_beyond_the_events():
    recording = events.load(b"t,x@640,y@480,on\n1,2,3,1\n")
    assert recording.sensor_size == (640, 480)
    assert events.resolve_sensor_size(recording, model_sensor=(128, 128)) == (640, 480)


AMBIGUOUS = {
    "x,y,p,t without a header": (b"5,6,1,100\n7,8,0,250\n", "add a header"),
    "polarity out of range": (b"t,x,y,p\n1,2,3,2\n", "polarity column"),
    "a column named twice": (b"t,x,x,p\n1,2,3,1\n", "once each"),
    "an unknown column": (b"t,x,y,brightness\n1,2,3,1\n", "'brightness'"),
    "only the width": (b"t,x@320,y,p\n1,2,3,1\n", "x@WIDTH and y@HEIGHT"),
    "unit on a coordinate": (b"t,x_ms,y,p\n1,2,3,1\n", "not on the time"),
    "event outside the header's sensor": (b"t,x@4,y@4,p\n1,4,0,1\n", "outside the header's 4 x 4"),
    "fractional coordinates": (b"0.5,1.5,2,1\n", "integers"),
    "seconds too large for microseconds": (b"t_s,x,y,p\n1e300,1,1,1\n", "out of range"),
    "decimal after integer rows": (b"10,1,1,1\n10.5,1,1,1\n", "unparseable"),
}


@pytest.mark.parametrize("case", sorted(AMBIGUOUS))
def test_ambiguous_or_inconsistent_text_is_refused_with_the_reason(case):
    data, message = AMBIGUOUS[case]
    with pytest.raises(EventDecodeError, match=message):
        events.load(data, format="csv")
