"""npz / npy / CSV event files: writers and ``events.load`` round-trip, detection, malformed content."""

import io

import numpy as np
import pytest

import events
from events import EVENT_DTYPE, EventDecodeError, make_events
from events.numpy_files import write_npy, write_npz
from events.text_files import write_csv


@pytest.fixture
def stream() -> np.ndarray:
    rng = np.random.default_rng(7)
    n = 1000
    return make_events(
        np.sort(rng.integers(0, 5_000_000, n)), rng.integers(0, 346, n), rng.integers(0, 260, n), rng.integers(0, 2, n)
    )


WRITERS = {"npz": write_npz, "npy": write_npy, "csv": write_csv}


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_round_trip_through_a_file_and_format_detection(tmp_path, stream, name):
    path = tmp_path / f"rec.{name}"
    WRITERS[name](path, stream)
    recording = events.load(path)
    assert recording.format == name
    assert recording.events.dtype == EVENT_DTYPE
    np.testing.assert_array_equal(recording.events, stream)
    assert recording.sensor_size == (int(stream["x"].max()) + 1, int(stream["y"].max()) + 1)
    assert not recording.sensor_from_header


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_detection_reads_content_not_the_file_name(tmp_path, stream, name):
    path = tmp_path / "recording.bin"
    with open(path, "wb") as handle:  # a path without the suffix would get one from NumPy
        WRITERS[name](handle, stream)
    assert events.load(path).format == name
    assert events.load(path.read_bytes()).format == name
    with open(path, "rb") as handle:
        np.testing.assert_array_equal(events.load(handle).events, stream)


def test_csv_header_in_any_order_seconds_and_minus_one_polarity():
    text = b"# from a tool\nx,y,polarity,timestamp\n3,4,1,0.000010\n5,6,-1,0.5\n"
    recording = events.load(text)
    assert recording.format == "csv"
    assert recording.events["t"].tolist() == [10, 500_000]
    assert recording.events["x"].tolist() == [3, 5]
    assert recording.events["p"].tolist() == [1, 0]
    whitespace = events.load(b"100 1 2 0\n200 3 4 1\n")
    assert whitespace.events["t"].tolist() == [100, 200]


def test_spikingjelly_npz_with_signed_polarity():
    buffer = io.BytesIO()
    np.savez(buffer, t=np.array([1, 2, 3]), x=np.array([0, 1, 2]), y=np.array([2, 1, 0]), p=np.array([1, -1, 0]))
    recording = events.load(buffer.getvalue())
    assert recording.format == "npz"
    assert recording.events["p"].tolist() == [1, 0, 0]


def test_an_explicit_format_overrides_detection(tmp_path, stream):
    path = tmp_path / "rec.csv"
    write_csv(path, stream)
    with pytest.raises(EventDecodeError):
        events.load(path, format="npz")
    with pytest.raises(EventDecodeError, match="unknown format"):
        events.load(path, format="mp4")


def npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def npy_bytes(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


MALFORMED = {
    "npz missing p": (npz_bytes(t=np.arange(3), x=np.arange(3), y=np.arange(3)), "need arrays t, x, y, p"),
    "npz float x": (npz_bytes(t=np.arange(3), x=np.ones(3) / 2, y=np.arange(3), p=np.ones(3)), "non-integer"),
    "npz unequal lengths": (npz_bytes(t=np.arange(3), x=np.arange(2), y=np.arange(3), p=np.ones(3)), "lengths"),
    "npz truncated": (npz_bytes(t=np.arange(100), x=np.arange(100), y=np.arange(100), p=np.ones(100))[:200], "npz"),
    "npy wrong shape": (npy_bytes(np.zeros((5, 3), dtype=np.int64)), "expected"),
    "npy negative x": (npy_bytes(np.array([[0, -1, 0, 1]], dtype=np.int64)), "outside"),
    "csv three columns": (b"1,2,3\n4,5,6\n", "unknown"),
    "csv bad header": (b"time,col,row,pol\n1,2,3,1\n", "header"),
    "csv garbage row": (b"t,x,y,p\n1,2,3,1\n4,five,6,1\n", "unparseable"),
    "empty": (b"", "empty"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_content_raises_event_decode_error(case):
    data, message = MALFORMED[case]
    with pytest.raises(EventDecodeError, match=message):
        events.load(data)


def test_a_csv_with_thousands_of_columns_is_rejected_before_anything_is_allocated_for_it():
    """Fuzz finding: NumPy's loadtxt allocates max_rows x columns up front (11.5 GiB here)."""
    import tracemalloc

    wide = b"3,x," * 3861 + b"\n"
    tracemalloc.start()
    with pytest.raises(EventDecodeError, match="expected 4 columns, found 7722"):
        events.load(wide, format="csv", limits=events.DecodeLimits(max_events=200_000))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 4 << 20


def test_csv_blank_and_comment_lines_before_the_first_row_are_skipped():
    text = b"t,x,y,p\n\n# recorded 2026\n10,1,2,1  # first\n20,3,4,0\n"
    recording = events.load(text, format="csv")
    assert recording.events["t"].tolist() == [10, 20]
    assert recording.events["p"].tolist() == [1, 0]
