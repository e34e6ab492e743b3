"""N-MNIST / N-Caltech101 ``.bin``: exactness against tonic's reader (both ways), overflow markers,
content detection (and what it must not claim), truncation and limits."""

from __future__ import annotations

import io

import numpy as np
import pytest

import events
import events.chunked
import events.nmnist
from events import DecodeLimits, EventDecodeError, LimitExceededError
from events.nmnist import write_nmnist

TONIC_DTYPE = np.dtype([("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")])


def saccade(n: int, seed: int, duration_us: int = 300_000, size=(34, 34)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, duration_us, n))
    return events.make_events(t, rng.integers(0, size[0], n), rng.integers(0, size[1], n), rng.integers(0, 2, n))


def encode(ev: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    write_nmnist(buffer, ev)
    return buffer.getvalue()


def tonic_read(data: bytes) -> np.ndarray:
    from tonic.io import read_mnist_file

    return read_mnist_file(io.BytesIO(data), dtype=TONIC_DTYPE, is_stream=True)


def same_as_tonic(ev: np.ndarray, theirs: np.ndarray) -> bool:
    return len(ev) == len(theirs) and all(np.array_equal(ev[f].astype(np.int64), theirs[f]) for f in "txyp")


def spec_records(x, y, p, ts) -> bytes:
    """Records built byte by byte from the format description (not with our writer)."""
    out = bytearray()
    for xi, yi, pi, ti in zip(x, y, p, ts, strict=True):
        out += bytes([xi, yi, (pi << 7) | (ti >> 16), (ti >> 8) & 0xFF, ti & 0xFF])
    return bytes(out)


@pytest.mark.parametrize("size", [(34, 34), (240, 180)])  # N-MNIST, N-Caltech101
def test_round_trip_and_tonic_reads_our_files(size):
    ev = saccade(5_000, 1, size=size)
    data = encode(ev)
    rec = events.load(data)
    assert rec.format == "nmnist" and not rec.sensor_from_header
    assert rec.sensor_size == (int(ev["x"].max()) + 1, int(ev["y"].max()) + 1)
    assert np.array_equal(rec.events, ev)
    assert same_as_tonic(ev, tonic_read(data))


def test_spec_built_records_read_like_tonic():
    rng = np.random.default_rng(2)
    n = 400
    x, y, p = rng.integers(0, 34, n), rng.integers(0, 34, n), rng.integers(0, 2, n)
    ts = np.sort(rng.integers(0, 1 << 23, n))
    data = spec_records(x.tolist(), y.tolist(), p.tolist(), ts.tolist())
    rec = events.load(data, format="nmnist")
    assert same_as_tonic(rec.events, tonic_read(data))
    assert rec.events["t"].tolist() == ts.tolist() and rec.events["p"].tolist() == p.tolist()


def test_overflow_markers_shift_later_timestamps():
    # Two markers (y == 240): each adds 2**13 µs to its own and every later timestamp.
    data = spec_records([1, 9, 2, 9, 9, 3], [1, 240, 2, 240, 240, 3], [1, 0, 0, 0, 0, 1], [5, 0, 7, 0, 0, 11])
    rec = events.load(data, format="nmnist")
    assert rec.events["t"].tolist() == [5, 7 + 8192, 11 + 3 * 8192]
    assert rec.events["y"].tolist() == [1, 2, 3] and rec.metadata["overflow_markers"] == 3
    assert same_as_tonic(rec.events, tonic_read(data))


def test_long_recordings_need_markers_and_round_trip():
    ev = saccade(50_000, 3, duration_us=40_000_000)  # 40 s: well past the 23-bit field
    data = encode(ev)
    assert len(data) > 5 * len(ev)  # markers were written
    assert np.array_equal(events.load(data).events, ev)
    assert same_as_tonic(ev, tonic_read(data))


def test_writer_refuses_what_the_format_cannot_hold():
    ev = saccade(10, 4)
    with pytest.raises(ValueError, match="240"):
        write_nmnist(io.BytesIO(), events.make_events([0], [1], [240], [1]))
    with pytest.raises(ValueError, match="256"):
        write_nmnist(io.BytesIO(), ev, (300, 34))
    late_then_early = events.make_events([20_000_000, 5], [1, 1], [1, 1], [1, 1])
    with pytest.raises(ValueError, match="step back"):
        write_nmnist(io.BytesIO(), late_then_early)


def test_truncated_file_is_an_error():
    data = encode(saccade(100, 5))
    for cut in (1, 4, 6, 251, len(data) - 1):
        with pytest.raises(EventDecodeError, match="ends inside a 5-byte") as info:
            events.load(data[:cut], format="nmnist")
        assert info.value.offset == cut - cut % 5


def test_limit():
    data = encode(saccade(1_000, 6))
    assert len(events.load(data, format="nmnist", limits=DecodeLimits(max_events=1_000))) == 1_000
    with pytest.raises(LimitExceededError):
        events.load(data, format="nmnist", limits=DecodeLimits(max_events=999))


def test_chunks_and_pieces_carry_the_overflow_count(monkeypatch):
    ev = saccade(20_000, 7, duration_us=20_000_000)
    data = encode(ev)
    monkeypatch.setattr(events.nmnist, "PIECE_RECORDS", 97)
    assert np.array_equal(events.load(data).events, ev)


def test_detection_is_last_resort_and_never_claims_other_formats(tmp_path):
    ev = saccade(2_000, 8)
    data = encode(ev)
    assert events.detect_format(data[:4096]).name == "nmnist"
    path = tmp_path / "00001.bin"
    path.write_bytes(data)
    assert events.load(path).format == "nmnist"
    # Not N-MNIST: text, other formats' headers, random bytes, unsorted records, a partial record.
    rng = np.random.default_rng(9)
    sniff = events.nmnist.NMNIST.sniff
    assert not sniff(b"t,x,y,p\n" + b"1,2,3,1\n" * 300)
    assert not sniff(b"% evt 3.0\n% end\n" + data[:4000])
    assert not sniff(b"#!AER-DAT2.0\r\n" + data[:4000])
    assert not sniff(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    shuffled = saccade(2_000, 10)
    shuffled["t"] = rng.permutation(shuffled["t"])
    assert not sniff(encode(shuffled)[:4096])
    assert not sniff(data[:103])  # a whole short file must be whole records
    assert sniff(data[:100])


def test_csv_with_a_bin_name_is_still_csv(tmp_path):
    path = tmp_path / "x.bin"
    path.write_text("t,x,y,p\n" + "".join(f"{i},{i % 30},{i % 20},{i % 2}\n" for i in range(500)))
    assert events.load(path).format == "csv"


def test_decodes_from_a_file_object():
    """Decoding a ``.bin`` from a file object works (no path needed, the stream is read in chunks)."""
    ev = saccade(3_000, 11)
    with io.BytesIO(encode(ev)) as f:
        assert np.array_equal(events.load(f, format="nmnist").events, ev)


@pytest.mark.parametrize("piece", [7, 1 << 17])
def test_markers_anywhere_and_the_limit_counts_only_events(piece, monkeypatch):
    rng = np.random.default_rng(12)
    n = 3_000
    y = rng.choice([1, 33, 240], n, p=[0.45, 0.45, 0.1])
    y[:3] = y[-3:] = 240  # markers first and last, and runs of them
    ts = rng.integers(0, 1 << 23, n)
    data = spec_records(rng.integers(0, 34, n).tolist(), y.tolist(), rng.integers(0, 2, n).tolist(), ts.tolist())
    monkeypatch.setattr(events.nmnist, "PIECE_RECORDS", piece)
    rec = events.load(data, format="nmnist")
    assert same_as_tonic(rec.events, tonic_read(data)) and rec.metadata["overflow_markers"] == int((y == 240).sum())
    count = int((y != 240).sum())
    assert len(events.load(data, format="nmnist", limits=DecodeLimits(max_events=count))) == count
    with pytest.raises(LimitExceededError):
        events.load(data, format="nmnist", limits=DecodeLimits(max_events=count - 1))
    only_markers = events.load(spec_records([0] * 9, [240] * 9, [0] * 9, [0] * 9), format="nmnist")
    assert len(only_markers) == 0 and only_markers.sensor_size == (1, 1)
