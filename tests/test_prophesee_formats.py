"""Prophesee EVT 2.0 / 2.1 / 3.0 ``.raw`` and ``.dat``: exactness against faery and the evt3 package
(both ways), real recordings, OpenEB's time policies, wraps, truncation, hostile headers, limits,
detection, streaming across chunk boundaries and bounded memory."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import events
import events.chunked
import events.evt2
import events.evt3
import events.evt21
import events.prophesee_dat
from events import DecodeLimits, EventDecodeError, LimitExceededError
from events.evt2 import write_evt2
from events.evt3 import write_evt3
from events.evt21 import write_evt21
from events.prophesee_dat import write_dat

DATA = Path(__file__).parent / "data"
WRITERS = {"evt2": write_evt2, "evt21": write_evt21, "evt3": write_evt3, "dat": write_dat}
EVT3_HEADER = b"% evt 3.0\n% format EVT3;height=720;width=1280\n% end\n"
EVT2_HEADER = b"% evt 2.0\n% geometry 1280x720\n% end\n"


def sensor_events(n: int, width: int, height: int, seed: int, start: int = 0, max_dt: int = 3) -> np.ndarray:
    """Time-ordered events like a sensor's: shared timestamps and runs of neighbouring columns on a row."""
    rng = np.random.default_rng(seed)
    t = start + np.cumsum(rng.integers(0, max_dt + 1, n))
    x = rng.integers(0, width, n)
    y = rng.integers(0, height, n)
    p = rng.integers(0, 2, n)
    for k in range(0, n - 40, 23):  # vector-like runs: same t, y, p; increasing x in one 32-column group
        m = int(rng.integers(2, 25))
        group = int(rng.integers(0, max(width // 32, 1)))
        cols = np.sort(rng.choice(min(32, width), m, replace=False)) + 32 * group
        keep = cols < width
        m = int(keep.sum())
        x[k : k + m], y[k : k + m], t[k : k + m], p[k : k + m] = cols[keep], y[k], t[k], p[k]
    return events.make_events(np.maximum.accumulate(t), x, y, p)


def encode(fmt: str, ev: np.ndarray, size, **kwargs) -> bytes:
    buffer = io.BytesIO()
    WRITERS[fmt](buffer, ev, size, **kwargs)
    return buffer.getvalue()


def faery_columns(path) -> tuple:
    from faery.file_decoder import Decoder

    out = np.concatenate(list(Decoder(path)))
    return out["t"].astype(np.int64), out["x"], out["y"], out["on"].astype(np.uint8)


def same(ev: np.ndarray, columns: tuple) -> bool:
    t, x, y, p = columns
    return (
        len(ev) == len(t)
        and np.array_equal(ev["t"], np.asarray(t).astype(np.int64))
        and np.array_equal(ev["x"], x)
        and np.array_equal(ev["y"], y)
        and np.array_equal(ev["p"], np.asarray(p).astype(np.uint8))
    )


def to_faery(ev: np.ndarray):
    import faery

    out = np.zeros(len(ev), dtype=faery.EVENTS_DTYPE)
    out["t"], out["x"], out["y"], out["on"] = ev["t"], ev["x"], ev["y"], ev["p"] > 0
    return out


# -- round trips, writers and the independent decoders -------------------------------------------


@pytest.mark.parametrize("fmt", list(WRITERS))
@pytest.mark.parametrize("size", [(1280, 720), (346, 260), (640, 480)])
def test_round_trip(fmt, size):
    ev = sensor_events(20_000, *size, seed=hash((fmt, size)) % 1000, start=123_456_789)
    rec = events.load(encode(fmt, ev, size))
    assert rec.format == fmt and rec.sensor_size == size and rec.sensor_from_header
    assert np.array_equal(rec.events, ev)


def test_evt21_legacy_word_order_round_trip():
    ev = sensor_events(10_000, 1280, 720, seed=5)
    data = encode("evt21", ev, (1280, 720), legacy=True)
    assert b"endianness=legacy" in data
    rec = events.load(data)
    assert rec.metadata["word_order"] == "legacy" and np.array_equal(rec.events, ev)
    assert encode("evt21", ev, (1280, 720)) != data


@pytest.mark.parametrize("fmt", list(WRITERS))
def test_empty_and_header_only(fmt):
    data = encode(fmt, sensor_events(0, 640, 480, 0), (640, 480))
    rec = events.load(data, format=fmt)
    assert len(rec) == 0 and rec.sensor_size == (640, 480) and rec.sensor_from_header


def test_header_only_raw_with_geometry():
    rec = events.load(b"% evt 3.0\n% geometry 640x480\n% end\n")
    assert rec.format == "evt3" and len(rec) == 0 and rec.sensor_size == (640, 480)


@pytest.mark.parametrize("version, fmt", [("evt2", "evt2"), ("evt3", "evt3"), ("dat2", "dat")])
@pytest.mark.parametrize("zero_t0", [True, False])
def test_faery_writes_we_read(tmp_path, version, fmt, zero_t0):
    from faery.file_encoder import events_to_file

    ev = sensor_events(30_000, 1280, 720, seed=3, start=5_000_000)
    path = tmp_path / ("out.dat" if fmt == "dat" else "out.raw")
    events_to_file([to_faery(ev)], path, (1280, 720), version=version, zero_t0=zero_t0)
    rec = events.load(path)
    assert rec.format == fmt and rec.sensor_size == (1280, 720)
    assert np.array_equal(rec.events, ev)  # faery's `% t0` header line is honoured


@pytest.mark.parametrize("fmt", ["evt2", "evt3", "dat"])
def test_we_write_faery_reads(tmp_path, fmt):
    ev = sensor_events(30_000, 1280, 720, seed=4, start=77_000)
    path = tmp_path / ("out.dat" if fmt == "dat" else "out.raw")
    WRITERS[fmt](path, ev, (1280, 720))
    assert same(ev, faery_columns(path))


def test_we_write_evt3_package_reads(tmp_path):
    evt3 = pytest.importorskip("evt3")
    ev = sensor_events(30_000, 1280, 720, seed=6, start=3 << 24)
    path = tmp_path / "out.raw"
    write_evt3(path, ev, (1280, 720))
    decoded = evt3.decode_file(str(path))
    assert decoded.sensor_size == (1280, 720)
    assert same(ev, (decoded.timestamp, decoded.x, decoded.y, decoded.polarity))


def test_faery_evt3_without_t0_matches_evt3_package(tmp_path):
    evt3 = pytest.importorskip("evt3")
    from faery.file_encoder import events_to_file

    ev = sensor_events(20_000, 1280, 720, seed=7, start=1_000)
    path = tmp_path / "f.raw"
    events_to_file([to_faery(ev)], path, (1280, 720), version="evt3", zero_t0=False)
    decoded = evt3.decode_file(str(path))
    rec = events.load(path)
    assert same(rec.events, (decoded.timestamp, decoded.x, decoded.y, decoded.polarity))
    assert np.array_equal(rec.events, ev)


# -- real recordings (faery's samples, cut; see tests/data/PROPHESEE_SAMPLES.md) ---------------------


@pytest.mark.parametrize(
    "name, fmt, size, count",
    [
        ("prophesee_gen3_evt2.raw", "evt2", (640, 480), 72_013),
        ("prophesee_imx636_evt3.raw", "evt3", (1280, 720), 50_994),
        ("prophesee_gen4.dat", "dat", (1280, 720), 36_241),
    ],
)
def test_real_recordings_match_faery(name, fmt, size, count):
    rec = events.load(DATA / name)
    assert (rec.format, rec.sensor_size, len(rec)) == (fmt, size, count)
    assert rec.sensor_from_header
    assert same(rec.events, faery_columns(DATA / name))


def test_real_evt3_matches_evt3_package_and_numpy_reference():
    evt3 = pytest.importorskip("evt3")
    path = DATA / "prophesee_imx636_evt3.raw"
    rec = events.load(path)
    decoded = evt3.decode_file(str(path))
    assert same(rec.events, (decoded.timestamp, decoded.x, decoded.y, decoded.polarity))
    with open(path, "rb") as f:
        assert np.array_equal(events.evt3.decode_numpy(f, DecodeLimits()).events, rec.events)


def test_gen3_evt2_without_geometry_gets_the_generation_size():
    rec = events.load(DATA / "prophesee_gen3_evt2.raw")
    assert rec.sensor_size == (640, 480) and rec.sensor_from_header
    assert "hal_plugin_gen3_fx3" in rec.metadata["sensor_source"]
    data = (DATA / "prophesee_gen3_evt2.raw").read_bytes().replace(b"plugin_name hal_plugin_gen3_fx3", b"plugin_name x")
    rec = events.load(data)
    assert not rec.sensor_from_header
    assert rec.sensor_size == (int(rec.events["x"].max()) + 1, int(rec.events["y"].max()) + 1)
    assert rec.metadata["sensor_source"].startswith("smallest")


# -- time policies (OpenEB's decoders, time shifting off), on hand-made word streams ---------------


def TH(v):
    return 0x8000 | v


def TL(v):
    return 0x6000 | v


def Y(v, cd=True):
    return (0x0000 if cd else 0x1000) | v


def X(v, p=1):
    return 0x2000 | (p << 11) | v


def VBX(v, p=1):
    return 0x3000 | (p << 11) | v


def evt3_decode(words, header=EVT3_HEADER, **kw):
    data = header + np.array(words, dtype="<u2").tobytes()
    rec = events.load(data, format="evt3", **kw)
    with io.BytesIO(data) as f:
        reference = events.evt3.decode_numpy(f, DecodeLimits())
    assert np.array_equal(rec.events, reference.events)
    return rec.events


def txyp(ev):
    return [(int(e["t"]), int(e["x"]), int(e["y"]), int(e["p"])) for e in ev]


def test_evt3_words_before_the_first_time_high_are_dropped():
    # The row set before the first TIME_HIGH is dropped too: X(4) has no row yet.
    ev = evt3_decode([Y(5), X(1), TL(7), X(2), TH(3), X(4), Y(6), X(5), TL(9), X(6)])
    assert txyp(ev) == [(3 << 12, 5, 6, 1), ((3 << 12) | 9, 6, 6, 1)]


def test_evt3_time_low_step_back_is_kept_not_clamped():
    ev = evt3_decode([TH(1), Y(0), TL(100), X(1), TL(96), X(2), TL(101), X(3)])
    assert [t for t, *_ in txyp(ev)] == [4096 + 100, 4096 + 96, 4096 + 101]


def test_evt3_repeated_time_high_keeps_time_low_a_new_one_resets_it():
    ev = evt3_decode([TH(1), Y(0), TL(100), TH(1), X(1), TH(2), X(2), TL(5), X(3)])
    assert [t for t, *_ in txyp(ev)] == [4096 + 100, 2 * 4096, 2 * 4096 + 5]


def test_evt3_time_high_wrap_needs_half_the_range():
    ev = evt3_decode([TH(4000), Y(0), X(1), TH(4095), X(2), TH(3), X(3), TH(2), X(4), TH(1000), X(5), TH(100), X(6)])
    loop = 1 << 24
    assert [t for t, *_ in txyp(ev)] == [
        4000 << 12,
        4095 << 12,
        loop + (3 << 12),
        loop + (2 << 12),
        loop + (1000 << 12),
        loop + (100 << 12),  # back by 900 (< 2048): the same loop
    ]
    ev = evt3_decode([TH(3000), Y(0), X(1), TH(952), X(2), TH(953), X(3)])  # back by 2048: a wrap
    assert [t for t, *_ in txyp(ev)] == [3000 << 12, loop + (952 << 12), loop + (953 << 12)]


def test_evt3_rows_vectors_and_skipped_words():
    words = [TH(0), TL(1), X(9), Y(7, cd=False), X(3), Y(8), X(4, p=0), 0x4FFF, VBX(32, p=0), 0x4801, 0x5081]
    words += [0xA101, 0xE014, 0xF123, 0xF456, 0x7007, 0x4003, Y(9), 0x5001]
    ev = evt3_decode(words)
    # X(9) before any row, X(3) on a non-CD row and the vector before any VECT_BASE_X are dropped.
    expected = [(1, 4, 8, 0), (1, 32, 8, 0), (1, 43, 8, 0), (1, 44, 8, 0), (1, 51, 8, 0)]
    expected += [(1, 52, 8, 0), (1, 53, 8, 0), (1, 64, 9, 0)]  # VECT_12 0x003 at 52; VECT_8 0x01 at 64
    assert txyp(ev) == expected


def test_evt3_vector_past_the_sensor_edge_is_an_error():
    with pytest.raises(EventDecodeError, match=r"outside the 1280x720 sensor") as info:
        evt3_decode([TH(0), Y(1), VBX(1272), 0x4FFF])
    assert info.value.offset == len(EVT3_HEADER) + 6


def test_evt2_policies():
    def decode(words):
        return events.load(EVT2_HEADER + np.array(words, dtype="<u4").tobytes(), format="evt2").events

    def cd(x, y, low, p=1):
        return (p << 28) | (low << 22) | (x << 11) | y

    ev = decode([cd(1, 1, 5), 0x8000_0002, cd(2, 3, 7), 0xA000_0101, 0xE000_0000, 0x8000_0001, cd(4, 5, 1, p=0)])
    assert txyp(ev) == [(2 * 64 + 7, 2, 3, 1), (64 + 1, 4, 5, 0)]  # small step back: taken as it is
    top = (1 << 28) - 1
    ev = decode([0x8000_0000 | top, cd(0, 0, 3), 0x8000_0000, cd(0, 0, 4)])
    assert [t for t, *_ in txyp(ev)] == [top * 64 + 3, (1 << 34) + 4]
    # A step back of at least 2**34 - 64 - 10000 µs is a wrap (OpenEB's loop threshold).
    back = ((1 << 28) - 1) * 64 - 10_000
    raw = (back + 63) // 64
    ev = decode([0x8000_0000 | raw, cd(0, 0, 0), 0x8000_0000, cd(0, 0, 0)])
    assert [t for t, *_ in txyp(ev)] == [raw * 64, 1 << 34]
    ev = decode([0x8000_0000 | (raw - 1), cd(0, 0, 0), 0x8000_0000, cd(0, 0, 0)])
    assert [t for t, *_ in txyp(ev)] == [(raw - 1) * 64, 0]


def test_evt21_wraps_only_from_the_top_time_high():
    header = b"% evt 2.1\n% geometry 1280x720\n% end\n"

    def word(kind, content, mask=0):
        return np.uint64((kind << 60) | (content << 32) | mask)

    def cd(x, y, low, mask, p=1):
        return word(p, (low << 22) | (x << 11) | y, mask)

    top = (1 << 28) - 1
    words = [cd(0, 0, 0, 1), word(8, top << 0), cd(32, 2, 5, 0b101), word(8, 0), cd(64, 3, 1, 1 << 31), word(8, 5)]
    words += [word(8, 3), cd(0, 4, 0, 1, p=0)]
    data = header + np.array(words, dtype="<u8").tobytes()
    ev = events.load(data).events
    loop = 1 << 34
    assert txyp(ev) == [
        (top * 64 + 5, 32, 2, 1),
        (top * 64 + 5, 34, 2, 1),
        (loop + 1, 95, 3, 1),
        (loop + 3 * 64, 0, 4, 0),
    ]


def test_dat_wrap_and_small_steps_back():
    header = b"% Version 2\n% Width 640\n% Height 480\n" + bytes([0x0C, 8])
    ts = np.array([10, 5, (1 << 32) - 10, 20, (1 << 31) + 30, 40], dtype=np.uint64)
    d = np.array([1 | (2 << 14) | (1 << 28)] * len(ts), dtype=np.uint64)
    ev = events.load(header + ((d << np.uint64(32)) | ts).astype("<u8").tobytes()).events
    assert ev["t"].tolist() == [10, 5, (1 << 32) - 10, (1 << 32) + 20, (1 << 32) + (1 << 31) + 30, (1 << 32) + 40]
    assert set(ev["x"].tolist()) == {1} and set(ev["y"].tolist()) == {2} and set(ev["p"].tolist()) == {1}


@pytest.mark.parametrize("fmt", ["evt2", "evt3", "evt21", "dat"])
def test_wraps_round_trip(fmt, tmp_path):
    wrap = {"evt2": 1 << 34, "evt21": 1 << 34, "evt3": 1 << 24, "dat": 1 << 32}[fmt]
    rng = np.random.default_rng(11)
    n = 6_000
    gaps = rng.integers(0, 3, n)
    gaps[::1000] = wrap // 3 if fmt != "dat" else (1 << 31) - 1  # jumps across several wraps
    t = np.cumsum(gaps) + wrap - 5_000
    if fmt == "dat":
        t -= wrap - 5_000
    ev = events.make_events(t, rng.integers(0, 640, n), rng.integers(0, 480, n), rng.integers(0, 2, n))
    path = tmp_path / ("w.dat" if fmt == "dat" else "w.raw")
    WRITERS[fmt](path, ev, (640, 480))
    assert int(ev["t"][-1]) > 2 * wrap - (wrap if fmt == "dat" else 0)
    assert np.array_equal(events.load(path).events, ev)
    if fmt in ("evt2", "evt3", "dat"):
        assert same(ev, faery_columns(path))


def test_t0_header_is_added():
    data = b"% evt 3.0\n% geometry 64x64\n% t0 1000000\n% end\n" + np.array([TH(0), Y(1), TL(5), X(2)], "<u2").tobytes()
    assert txyp(events.load(data).events) == [(1_000_005, 2, 1, 1)]


# -- compiled EVT 3.0 loop against its NumPy reference ----------------------------------------------


def test_mask_bits_expands_word_by_word_low_bit_first():
    from events.evt_common import mask_bits

    rng = np.random.default_rng(1)
    for masks in ([0, 3], [1, 0, 6, 0x80000000], rng.integers(0, 1 << 32, 300, dtype=np.uint64), [4, 8, 1]):
        masks = np.asarray(masks, dtype=np.uint64).astype(np.uint32)
        word, bit = mask_bits(masks)
        expected = [(i, b) for i, m in enumerate(masks.tolist()) for b in range(32) if m >> b & 1]
        assert list(zip(word.tolist(), bit.tolist(), strict=True)) == expected


@pytest.mark.parametrize("seed", range(12))
def test_evt3_compiled_equals_numpy_reference_on_word_soup(seed):
    rng = np.random.default_rng(seed)
    weights = np.array([0.2, 0.01, 0.25, 0.04, 0.05, 0.03, 0.2, 0.12, 0.03, 0.03, 0.03])
    kinds = rng.choice([0, 1, 2, 3, 4, 5, 6, 8, 10, 14, 15], 20_000, p=weights / weights.sum())
    words = (kinds << 12) | rng.integers(0, 4096, len(kinds))
    words[(kinds == 0) | (kinds == 1)] &= 0xF0FF  # keep most rows inside 720
    words[kinds == 3] &= 0xF4FF
    words[kinds == 2] &= 0xFCFF
    data = EVT3_HEADER + words.astype("<u2").tobytes()
    outcomes = []
    for decode in (events.evt3.EVT3.decode, events.evt3.decode_numpy):
        try:
            outcomes.append(decode(io.BytesIO(data), DecodeLimits()).events)
        except EventDecodeError as exc:
            outcomes.append((type(exc), exc.offset))
    if isinstance(outcomes[0], tuple):
        assert outcomes[0] == outcomes[1]
    else:
        assert np.array_equal(outcomes[0], outcomes[1])


@pytest.mark.parametrize(
    "words",
    [
        [TH(0), Y(3), VBX(2040)] + [0x4FFF] * 6000 + [Y(5), X(7), 0x5081],  # vector columns past uint16
        [TH(9), Y(700), X(1279), TL(4), VBX(0, 0), 0x4801, 0x4000, 0x5080, Y(2, cd=False), X(5)],
        [TL(3), Y(1), X(2)],  # no time base: no events, a 1x1 sensor
    ],
)
def test_evt3_without_geometry_compiled_equals_numpy_reference_sensor_included(words):
    data = b"% evt 3.0\n% end\n" + np.array(words, dtype="<u2").tobytes()
    compiled = events.evt3.EVT3.decode(io.BytesIO(data), DecodeLimits())
    reference = events.evt3.decode_numpy(io.BytesIO(data), DecodeLimits())
    assert np.array_equal(compiled.events, reference.events)
    assert compiled.sensor_size == reference.sensor_size and not compiled.sensor_from_header


# -- hostile input -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(WRITERS))
def test_truncation_inside_a_word_is_an_error(fmt):
    data = encode(fmt, sensor_events(2_000, 640, 480, 1), (640, 480))
    word = {"evt2": 4, "evt21": 8, "evt3": 2, "dat": 8}[fmt]
    rng = np.random.default_rng(0)
    start = data.index(bytes([0x0C, 8])) + 2 if fmt == "dat" else data.index(b"% end\n") + 6
    for cut in rng.integers(start + 3, len(data), 20):
        if (cut - len(data)) % word == 0:
            continue
        with pytest.raises(EventDecodeError, match="ends inside") as info:
            events.load(data[:cut], format=fmt)
        assert info.value.format == fmt and info.value.offset is not None and info.value.offset < cut


@pytest.mark.parametrize(
    "header, problem",
    [
        (b"% evt 3.0\n% geometry 0x480\n% end\n", "outside 1..2048"),
        (b"% evt 3.0\n% geometry 640x0\n% end\n", "outside 1..2048"),
        (b"% evt 3.0\n% geometry 99999x480\n% end\n", "outside 1..2048"),
        (b"% evt 3.0\n% geometry 640by480\n% end\n", "not WIDTHxHEIGHT"),
        (b"% evt 3.0\n% format EVT3;width=abc;height=1\n% end\n", "not a whole number"),
        (b"% evt 3.0\n% format EVT3;width=640\n% end\n", "only one of width and height"),
        (b"% format EVT3;width=1280;height=720\n% geometry 640x480\n% end\n", "contradicts"),
        (b"% evt 3.0\n% format EVT2\n% end\n", "contradicts"),
        (b"% evt 3.0\n% t0 -5\n% end\n", "t0"),
        (b"% evt 3.0\n% geometry 640x480", "without a newline"),
        (b"% evt 3.0\n% " + b"x" * (1 << 20) + b"\n% end\n", "longer than"),
    ],
)
def test_bad_headers(header, problem):
    with pytest.raises(EventDecodeError, match=problem) as info:
        events.load(header + b"\x00\x80", format="evt3")
    assert info.value.format == "evt3" and info.value.offset is not None


def test_unsupported_evt_version_and_explicit_format_mismatch():
    with pytest.raises(EventDecodeError, match="unsupported EVT version"):
        events.load(b"% evt 4.0\n% end\n", format="evt3")
    data = encode("evt3", sensor_events(100, 640, 480, 2), (640, 480))
    with pytest.raises(EventDecodeError, match=r"declares EVT 3\.0"):
        events.load(data, format="evt2")
    with pytest.raises(EventDecodeError, match=r"\(a \.raw file\)"):
        events.load(data, format="dat")


@pytest.mark.parametrize("fmt", list(WRITERS))
def test_events_outside_the_stated_sensor_are_errors(fmt):
    ev = sensor_events(500, 640, 480, 3)
    data = bytearray(encode(fmt, ev, (640, 480)))
    if fmt == "dat":
        data = data.replace(b"% Width 640", b"% Width 600")
    else:
        data = data.replace(b"geometry 640x480", b"geometry 600x480").replace(b"width=640", b"width=600")
    with pytest.raises(EventDecodeError, match="outside the 600x480 sensor") as info:
        events.load(bytes(data))
    assert info.value.offset is not None


def test_dat_hostile_bits():
    header = b"% Version 2\n% Width 640\n% Height 480\n"
    record = np.array([(5, 1 | (2 << 14) | (3 << 28))], dtype=[("t", "<u4"), ("d", "<u4")]).tobytes()
    with pytest.raises(EventDecodeError, match="polarity field 3"):
        events.load(header + bytes([0x0C, 8]) + record)
    with pytest.raises(EventDecodeError, match="external triggers"):
        events.load(header + bytes([0x0E, 8]) + record, format="dat")
    with pytest.raises(EventDecodeError, match="event size 16"):
        events.load(header + bytes([0x0C, 16]) + record, format="dat")
    with pytest.raises(EventDecodeError, match="type/size"):
        events.load(header + bytes([0x0C]), format="dat")
    with pytest.raises(EventDecodeError, match="version"):
        events.load(b"% Version 7\n" + bytes([0x0C, 8]), format="dat")
    assert len(events.load(header, format="dat")) == 0  # faery's empty file: the header alone


@pytest.mark.parametrize("fmt", list(WRITERS))
def test_event_limit(fmt):
    ev = sensor_events(5_000, 640, 480, 4)
    data = encode(fmt, ev, (640, 480))
    assert len(events.load(data, limits=DecodeLimits(max_events=5_000))) == 5_000
    with pytest.raises(LimitExceededError) as info:
        events.load(data, limits=DecodeLimits(max_events=4_999))
    assert info.value.status == 413 and info.value.format == fmt


@pytest.mark.parametrize("compiled", [True, False])
def test_evt3_vector_bomb_stops_at_the_limit(compiled):
    words = np.array([TH(0), Y(1), VBX(0)] + [0x4FFF, 0x4FFF, 0x50FF] * 200_000, dtype="<u2")
    data = b"% evt 3.0\n% end\n" + words.tobytes()  # 1.2 MB of words, 6.4 M events
    decode = events.evt3.EVT3.decode if compiled else events.evt3.decode_numpy
    with pytest.raises(LimitExceededError):
        decode(io.BytesIO(data), DecodeLimits(max_events=100_000))


# -- detection, sources, streaming, memory --------------------------------------------------------


@pytest.mark.parametrize("fmt", list(WRITERS))
def test_detection_from_content_whatever_the_name(fmt, tmp_path):
    data = encode(fmt, sensor_events(300, 640, 480, 5), (640, 480))
    assert events.detect_format(data[:4096]).name == fmt
    for name in ("x.bin", "x.raw", "x.dat", "x.csv", "noext"):
        path = tmp_path / name
        path.write_bytes(data)
        assert events.load(path).format == fmt
        with open(path, "rb") as f:
            assert events.load(f).format == fmt


def test_headerless_dat_needs_the_explicit_format():
    ev = sensor_events(200, 640, 480, 6)
    data = encode("dat", ev, (640, 480))
    body = data[data.index(bytes([0x0C, 8])) + 2 :]
    rec = events.load(body, format="dat")
    assert np.array_equal(rec.events, ev) and not rec.sensor_from_header


@pytest.mark.parametrize("fmt", list(WRITERS))
def test_state_carries_across_chunks(fmt, monkeypatch):
    ev = sensor_events(30_000, 1280, 720, seed=8, start=(1 << 24) - 20_000, max_dt=40)
    data = encode(fmt, ev, (1280, 720))
    monkeypatch.setattr(events.chunked, "CHUNK_BYTES", 4096 + 8)  # chunks end inside vectors and time pairs
    for module in (events.evt2, events.evt3, events.evt21, events.prophesee_dat):
        for name in ("PIECE_WORDS", "PIECE_RECORDS"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, 64)
    monkeypatch.setattr(events.evt3, "BATCH_EVENTS", 100)
    assert np.array_equal(events.load(data).events, ev)
    if fmt == "evt3":
        assert np.array_equal(events.evt3.decode_numpy(io.BytesIO(data), DecodeLimits()).events, ev)


PEAK_SCRIPT = """
import sys, events
from pathlib import Path
events.load(sys.argv[2])  # imports, numba's compiled-code cache
Path("/proc/self/clear_refs").write_text("5")
def kib(field):
    return int(next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(field)).split()[1])
base = kib("VmRSS")
rec = events.load(sys.argv[1])
print(len(rec), kib("VmHWM") - base)
"""


@pytest.mark.slow
@pytest.mark.parametrize("fmt", list(WRITERS))
def test_memory_is_the_output_plus_a_bounded_buffer(fmt, tmp_path):
    if not os.access("/proc/self/clear_refs", os.W_OK):
        pytest.skip("needs Linux /proc/self/clear_refs to reset the peak RSS")
    ev = sensor_events(1_500_000, 1280, 720, seed=9)
    path = tmp_path / "big"
    WRITERS[fmt](path, ev, (1280, 720))
    warm = tmp_path / "warm"
    warm.write_bytes(encode(fmt, ev[:100], (1280, 720)))
    out = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT, str(path), str(warm)], capture_output=True, text=True, check=True
    )
    n, peak_kib = map(int, out.stdout.split())
    assert n == len(ev)
    file_mb = path.stat().st_size / 1e6
    # 13 bytes per event of output; the input (here 10-40 MB) is never held, only 2 MB chunks.
    assert peak_kib * 1024 < 13 * n + 24e6, (fmt, file_mb, peak_kib / 1024)


# EVT 2.1 as Prophesee documents it (docs.prophesee.ai, "EVT 2.1 Format"): 64-bit words, type in
# bits 63-60; EVT_NEG 0x0 / EVT_POS 0x1 carry time low (59-54), x of the vector's first pixel
# (53-43), y (42-32) and a 32-bit valid mask (bit i: pixel x + i); EVT_TIME_HIGH 0x8 carries
# time bits 33-6 in 59-32; EXT_TRIGGER 0xA, OTHERS 0xE and CONTINUED 0xF are not CD events.
# The words are written out by hand here, not by our writer.
EVT21_WORDS = [
    0x1000_0000_0000_0001,  # EVT_POS before any time high: no time yet, dropped (as OpenEB)
    0x8000_0030_0000_0000,  # TIME_HIGH 0x30: time 0x30 << 6 = 3072
    0x1142_000A_0000_0005,  # EVT_POS, low 5, x 64, y 10, mask 0b101: (64, 10) and (66, 10) at 3077
    0xA0C0_0001_0000_0000,  # EXT_TRIGGER: skipped
    0x0FE7_02CF_8000_0000,  # EVT_NEG, low 63, x 1248, y 719, mask bit 31: (1279, 719) at 3135
    0xE000_0000_0000_0000,  # OTHERS: skipped
    0xF000_0000_0000_1234,  # CONTINUED: skipped
    0x8000_0031_0000_0000,  # TIME_HIGH 0x31: 3136
    0x1000_0000_8000_0001,  # EVT_POS, low 0, x 0, y 0, mask bits 0 and 31: (0, 0) then (31, 0)
]
EVT21_EVENTS = [(3077, 64, 10, 1), (3077, 66, 10, 1), (3135, 1279, 719, 0), (3136, 0, 0, 1), (3136, 31, 0, 1)]


def test_evt21_reads_a_word_stream_assembled_from_the_published_description():
    header = b"% camera_integrator_name Prophesee\n% format EVT21;height=720;width=1280\n% end\n"
    data = header + b"".join(struct.pack("<Q", word) for word in EVT21_WORDS)
    rec = events.load(data)
    assert rec.format == "evt21" and rec.sensor_size == (1280, 720)
    assert txyp(rec.events) == EVT21_EVENTS


def test_evt21_legacy_order_is_the_imx636_transmission_of_the_same_words():
    # IMX636 sends a word's high 32 bits first, each half little-endian (the docs' example:
    # 0x0102030405060708 arrives as bytes 04 03 02 01 08 07 06 05)
    assert struct.pack("<II", 0x0102_0304, 0x0506_0708) == bytes([4, 3, 2, 1, 8, 7, 6, 5])
    header = b"% format EVT21;endianness=legacy;height=720;width=1280\n% end\n"
    data = header + b"".join(struct.pack("<II", word >> 32, word & 0xFFFF_FFFF) for word in EVT21_WORDS)
    assert txyp(events.load(data).events) == EVT21_EVENTS
