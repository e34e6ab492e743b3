"""``events.StreamDecoder``: a byte stream cut anywhere decodes to exactly what ``events.load`` gives.

The reference for every format is the file decoder (itself checked against faery, the evt3
package, dv-processing and OpenEB conventions in the format tests). Files: the real samples under
``tests/data`` and ``examples/``, and files our writers make (EVT 2.1 in both word orders, AEDAT 4
with every compression, packed records). Cuts are drawn anywhere, near the structure (header end,
AEDAT 4 packet and LZ4 / ZSTD frame starts, found here from the layout) and at every byte of a
small file. Malformed streams raise ``EventDecodeError`` where the error becomes certain.
"""

from __future__ import annotations

import io
import itertools
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import events
from events import aedat4
from events.aedat4 import write_aedat4
from events.errors import LimitExceededError
from events.evt2 import write_evt2
from events.evt3 import write_evt3
from events.evt21 import write_evt21

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
EXAMPLES = ROOT / "examples"
SENSOR = (64, 48)


def recording(n: int, seed: int) -> np.ndarray:
    """Events as a sensor groups them: runs of neighbours in one row at one time (EVT vectors)."""
    rng = np.random.default_rng(seed)
    t = np.repeat(np.cumsum(rng.integers(0, 900, n // 4 + 1)), 4)[:n]
    x = (np.repeat(rng.integers(0, SENSOR[0] - 4, n // 4 + 1), 4) + np.tile(np.arange(4), n // 4 + 1))[:n]
    y = np.repeat(rng.integers(0, SENSOR[1], n // 4 + 1), 4)[:n]
    p = np.repeat(rng.integers(0, 2, n // 4 + 1), 4)[:n]
    return events.make_events(t, x, y, p)


def written(write, ev: np.ndarray, **kwargs) -> bytes:
    buffer = io.BytesIO()
    write(buffer, ev, **kwargs)
    return buffer.getvalue()


def without_geometry(data: bytes) -> bytes:
    """A written file whose header states no sensor size (the size then comes from the events)."""
    if data.startswith(b"#!AER-DAT4.0"):  # rename the size attributes, keeping every length
        return data.replace(b'key="sizeX"', b'key="sizeQ"', 1).replace(b'key="sizeY"', b'key="sizeZ"', 1)
    body = data[data.index(b"% end\n") + 6 :]
    return (
        b"\n".join(
            line for line in data[: -len(body)].split(b"\n") if b"geometry" not in line and b"format" not in line
        )
        + body
    )


def with_data_table(ev: np.ndarray, table_at_extra: int = 0) -> bytes:
    """An LZ4 AEDAT 4 file whose IOHeader points at a file data table after the packets.

    The table here is 64 bytes of 0xFF: read as packets they would be malformed, so a decoder
    must stop at ``dataTablePosition`` (``table_at_extra`` moves the position past that).
    """
    plain = written(write_aedat4, ev, sensor_size=SENSOR, compression="lz4", packet_events=400)
    (size,) = struct.unpack_from("<i", plain, 14)
    info = aedat4._info_node("lz4", SENSOR, "stlsnn-serve")
    header = aedat4.io_header(1, info, len(plain) + table_at_extra)
    assert len(header) == size
    return plain[:18] + header + plain[18 + size :] + b"\xff" * 64


EV = recording(3000, 1)
FILES: dict[str, list[tuple[str, bytes]]] = {
    "evt2": [
        ("prophesee_gen3_evt2.raw", (DATA / "prophesee_gen3_evt2.raw").read_bytes()),
        ("swipe_up.evt2.raw", (EXAMPLES / "swipe_up.evt2.raw").read_bytes()),
        ("written", written(write_evt2, EV, sensor_size=SENSOR)),
        ("no geometry", without_geometry(written(write_evt2, EV, sensor_size=SENSOR))),
    ],
    "evt21": [
        ("written", written(write_evt21, EV, sensor_size=SENSOR)),
        ("written legacy", written(write_evt21, EV, sensor_size=SENSOR, legacy=True)),
    ],
    "evt3": [
        ("prophesee_imx636_evt3.raw", (DATA / "prophesee_imx636_evt3.raw").read_bytes()),
        ("rotate_clockwise.evt3.raw", (EXAMPLES / "rotate_clockwise.evt3.raw").read_bytes()),
        ("no geometry", without_geometry(written(write_evt3, EV, sensor_size=SENSOR))),
        ("written", written(write_evt3, EV, sensor_size=SENSOR)),
    ],
    "aedat4": [
        ("davis346_head.aedat4", (DATA / "davis346_head.aedat4").read_bytes()),
        ("davis346_noframes.aedat4", (DATA / "davis346_noframes.aedat4").read_bytes()),
        ("swipe_left.aedat4", (EXAMPLES / "swipe_left.aedat4").read_bytes()),
        ("with data table", with_data_table(EV)),
        ("no sizes", without_geometry(written(write_aedat4, EV, sensor_size=SENSOR, packet_events=400))),
    ]
    + [
        (f"written {c}", written(write_aedat4, EV, sensor_size=SENSOR, compression=c, packet_events=400))
        for c in ("none", "lz4", "lz4_high", "zstd", "zstd_high")
    ],
    "events": [("written", written(events.write_events, EV))],
}
CASES = [(fmt, name) for fmt, files in FILES.items() for name, _ in files]
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def file_bytes(fmt: str, name: str) -> bytes:
    return dict(FILES[fmt])[name]


def aedat4_packet_starts(data: bytes) -> list[int]:
    """Offsets of the IOHeader and of every packet header and payload (from the AEDAT 4 layout)."""
    (size,) = struct.unpack_from("<i", data, 14)
    pos = 18 + size
    marks = [14, 18, pos]
    while pos + 8 <= len(data):
        _, length = struct.unpack_from("<ii", data, pos)
        marks += [pos, pos + 8]
        pos += 8 + length
    return marks


def landmarks(fmt: str, data: bytes) -> list[int]:
    """Offsets where structure changes: the header's end, AEDAT 4 packet headers and payloads."""
    if fmt == "aedat4":
        return aedat4_packet_starts(data)
    if fmt == "events":
        return [0, 13]
    end = data.find(b"% end\n")
    return [end + 6] if end >= 0 else [data.rfind(b"\n%", 0, 4096) + 1]


def decode_in_pieces(fmt: str, data: bytes, cuts, **kwargs) -> tuple[np.ndarray, events.StreamDecoder]:
    decoder = events.StreamDecoder(fmt, **kwargs)
    pieces = [decoder.feed(data[a:b]) for a, b in itertools.pairwise([0, *sorted(cuts), len(data)])]
    pieces.append(decoder.close())
    return np.concatenate(pieces), decoder


def assert_same_as_load(fmt: str, data: bytes, cuts) -> None:
    expected = events.load(data, format=fmt)
    got, decoder = decode_in_pieces(fmt, data, cuts)
    assert got.dtype == events.EVENT_DTYPE
    np.testing.assert_array_equal(got, expected.events)
    assert decoder.sensor_size == expected.sensor_size
    assert decoder.format == fmt and decoder.closed


@st.composite
def cut_points(draw, size: int, marks: list[int]):
    anywhere = st.integers(0, size)
    near_structure = st.sampled_from(marks).flatmap(lambda m: st.integers(max(0, m - 20), min(size, m + 20)))
    in_header = st.integers(0, min(size, 300))
    return draw(st.lists(st.one_of(anywhere, near_structure, in_header), max_size=40))


@pytest.mark.parametrize("fmt, name", CASES, ids=[f"{f}-{n}" for f, n in CASES])
@PROPERTY
@given(data=st.data())
def test_cut_anywhere_gives_exactly_what_load_gives(fmt, name, data):
    blob = file_bytes(fmt, name)
    assert_same_as_load(fmt, blob, data.draw(cut_points(len(blob), landmarks(fmt, blob))))


SMALL = recording(24, 2)
SMALL_FILES = {
    "evt2": written(write_evt2, SMALL, sensor_size=SENSOR),
    "evt21": written(write_evt21, SMALL, sensor_size=SENSOR),
    "evt3": written(write_evt3, SMALL, sensor_size=SENSOR),
    "aedat4": written(write_aedat4, SMALL, sensor_size=SENSOR, compression="lz4", packet_events=7),
    "events": written(events.write_events, SMALL),
}


def test_files_without_geometry_get_the_smallest_sensor_holding_their_events():
    smallest = (int(EV["x"].max()) + 1, int(EV["y"].max()) + 1)
    for fmt, name in CASES:
        if name in ("no geometry", "no sizes"):
            recording = events.load(file_bytes(fmt, name), format=fmt)
            assert not recording.sensor_from_header and recording.sensor_size == smallest
            assert decode_in_pieces(fmt, file_bytes(fmt, name), [100, 5000])[1].sensor_size == smallest


@pytest.mark.parametrize("fmt", list(SMALL_FILES))
def test_every_byte_boundary_of_a_small_file(fmt):
    data = SMALL_FILES[fmt]
    assert len(events.load(data, format=fmt).events) == len(SMALL)
    for cut in range(len(data) + 1):
        assert_same_as_load(fmt, data, [cut])
    assert_same_as_load(fmt, data, range(len(data)))  # one byte at a time


def test_zstd_frames_cut_at_every_byte_of_a_packet():
    data = written(write_aedat4, SMALL, sensor_size=SENSOR, compression="zstd", packet_events=30)
    first_payload = aedat4_packet_starts(data)[4]
    for cut in range(first_payload - 8, len(data) + 1):
        assert_same_as_load("aedat4", data, [cut])


def test_sensor_size_is_known_once_the_header_is_read():
    data = SMALL_FILES["evt3"]
    header_end = data.index(b"% end\n") + 6
    decoder = events.StreamDecoder("evt3")
    decoder.feed(data[: header_end - 1])
    assert decoder.sensor_size is None
    decoder.feed(data[header_end - 1 : header_end])
    assert decoder.sensor_size == SENSOR
    assert decoder.buffered_bytes == 0


def test_a_header_without_end_line_ends_at_the_first_byte_that_is_not_percent():
    """Older files have no ``% end``: the header is complete once a line starts with another byte."""
    header = b"% evt 3.0\n% geometry 64x48\n"
    body = evt3_words(0x8000, 0x6007, 0x0003, 0x2000 | 9)
    assert b"\n" not in body
    decoder = events.StreamDecoder("evt3")
    assert len(decoder.feed(header)) == 0 and decoder.sensor_size is None
    assert decoder.feed(body).tolist() == [(7, 9, 3, 0)]
    assert decoder.sensor_size == SENSOR


def test_packed_records_sensor_is_the_given_one_or_the_smallest_at_close():
    ev = events.make_events([5, 9, 9], [3, 10, 0], [7, 1, 2], [1, 0, 1])
    data = written(events.write_events, ev)
    decoder = events.StreamDecoder("events")
    assert len(decoder.feed(data)) == 3
    assert decoder.sensor_size is None
    decoder.close()
    assert decoder.sensor_size == (11, 8)
    given = events.StreamDecoder("events", sensor_size=(16, 16))
    assert given.sensor_size == (16, 16)
    given.feed(data)
    with pytest.raises(events.EventDecodeError, match="outside the 8x8 sensor"):
        events.StreamDecoder("events", sensor_size=(8, 8)).feed(data)


def test_packed_records_layout_and_load():
    """13 bytes per event, little-endian t int64, x uint16, y uint16, p uint8 (any non-zero p is ON)."""
    record = struct.pack("<qHHB", 1_000_000_007, 300, 2, 5) + struct.pack("<qHHB", -3, 0, 65535, 0)
    got = events.load(record, format="events")
    assert got.events.tolist() == [(1_000_000_007, 300, 2, 1), (-3, 0, 65535, 0)]
    assert got.sensor_size == (301, 65536) and not got.sensor_from_header
    assert events.StreamDecoder("events").feed(record).tolist() == got.events.tolist()
    assert written(events.write_events, got.events) == struct.pack("<qHHB", 1_000_000_007, 300, 2, 1) + record[13:]
    with pytest.raises(events.EventDecodeError, match="13-byte record"):
        events.load(record[:-1], format="events")
    with pytest.raises(events.UnknownFormatError):
        events.detect_format(record)


def test_packed_records_fed_from_any_bytes_like_cut_anywhere():
    """Read-only and writable buffers alike (bytes, bytearray, NumPy memory of any item size), every
    feed completing the record held from the one before."""
    ev = events.make_events([5, 9, 9, 12, 40], [3, 10, 0, 65535, 1], [7, 1, 2, 0, 65535], [1, 0, 2, 0, 1])
    want = [(5, 3, 7, 1), (9, 10, 1, 0), (9, 0, 2, 1), (12, 65535, 0, 0), (40, 1, 65535, 1)]
    data = struct.pack("<" + "qHHB" * 5, *(v for e in ev.tolist() for v in e))
    assert len(data) == 65
    for as_buffer in (bytes, bytearray, lambda b: np.frombuffer(b, np.uint8).copy(), memoryview):
        for step in (1, 3, 13, 14, 40, 65):
            decoder = events.StreamDecoder("events")
            pieces = [decoder.feed(as_buffer(data[a : a + step])) for a in range(0, len(data), step)]
            assert np.concatenate([*pieces, decoder.close()]).tolist() == want
            assert decoder.sensor_size == (65536, 65536) and decoder.bytes_fed == 65
    wide = np.frombuffer(data[:52], "<i4").copy()  # items of 4 bytes: fed as its 52 bytes
    assert events.StreamDecoder("events").feed(wide).tolist() == want[:4]


@pytest.mark.parametrize("cut", [13, 20, 26, 30, 38])
def test_packed_record_outside_the_sensor_raises_with_its_offset(cut):
    """The record at bytes 26..38 (x 9 on an 8x8 sensor) raises at the feed that completes it,
    wherever the stream is cut (also when it is the record held from the feed before)."""
    data = written(events.write_events, events.make_events([1, 2, 3, 4], [7, 0, 9, 1], [7, 0, 1, 1], [1, 1, 1, 1]))
    decoder = events.StreamDecoder("events", sensor_size=(8, 8))
    assert len(decoder.feed(data[:cut])) == min(cut // 13, 2)
    with pytest.raises(events.EventDecodeError, match="event at \\(9, 1\\) lies outside the 8x8") as raised:
        decoder.feed(data[cut:])
    assert raised.value.offset == 26
    with pytest.raises(events.EventDecodeError):
        decoder.close()


# Malformed streams -------------------------------------------------------------------------

EVT3_HEADER = b"% evt 3.0\n% format EVT3;height=48;width=64\n% end\n"


def evt3_words(*words: int) -> bytes:
    return np.array(words, dtype="<u2").tobytes()


def test_event_outside_the_sensor_raises_at_the_feed_that_holds_it():
    good = evt3_words(0x8000, 0x6005, 0x0001, 0x2000 | 5)  # TIME_HIGH 0, TIME_LOW 5, row 1, x 5
    bad = evt3_words(0x2000 | 100)  # x 100 on a 64-wide sensor
    decoder = events.StreamDecoder("evt3")
    assert decoder.feed(EVT3_HEADER + good).tolist() == [(5, 5, 1, 0)]
    with pytest.raises(events.EventDecodeError) as raised:
        decoder.feed(bad[:1])
        decoder.feed(bad[1:])
    assert raised.value.offset == len(EVT3_HEADER) + len(good)
    with pytest.raises(events.EventDecodeError):  # a failed decoder stays failed
        decoder.feed(good)
    with pytest.raises(events.EventDecodeError):
        decoder.close()


def test_header_of_another_version_raises_once_complete():
    decoder = events.StreamDecoder("evt2")
    decoder.feed(EVT3_HEADER[:12])
    with pytest.raises(events.EventDecodeError, match=r"declares EVT 3\.0"):
        decoder.feed(EVT3_HEADER[12:])


def test_aedat4_bad_magic_raises_at_the_first_bytes():
    with pytest.raises(events.EventDecodeError, match=r"AER-DAT4\.0"):
        events.StreamDecoder("aedat4").feed(b"#!AER-DAT3")


def test_aedat4_packet_of_an_undeclared_stream_raises_at_its_header():
    data = bytearray(SMALL_FILES["aedat4"])
    packet = aedat4_packet_starts(bytes(data))[3]
    data[packet : packet + 4] = struct.pack("<i", 7)
    decoder = events.StreamDecoder("aedat4")
    decoder.feed(bytes(data[: packet + 7]))
    with pytest.raises(events.EventDecodeError, match="undeclared stream 7") as raised:
        decoder.feed(bytes(data[packet + 7 : packet + 8]))
    assert raised.value.offset == packet


def test_aedat4_data_table_ends_the_packets():
    np.testing.assert_array_equal(events.load(with_data_table(EV), format="aedat4").events, EV)
    past_the_end = with_data_table(EV, table_at_extra=1000)[:-64]  # the stream stops before the table
    with pytest.raises(events.EventDecodeError, match="dataTablePosition"):
        events.load(past_the_end, format="aedat4")
    decoder = events.StreamDecoder("aedat4")
    assert len(decoder.feed(past_the_end)) == len(EV)
    with pytest.raises(events.EventDecodeError, match="dataTablePosition"):
        decoder.close()


def test_aedat4_empty_event_packet_raises_with_its_header():
    data = SMALL_FILES["aedat4"]
    packet = aedat4_packet_starts(data)[3]
    decoder = events.StreamDecoder("aedat4")
    with pytest.raises(events.EventDecodeError, match="shorter than a flatbuffer header"):
        decoder.feed(data[:packet] + struct.pack("<ii", 0, 0))


def test_aedat4_packet_too_large_for_the_limit_is_refused_before_it_is_held():
    data = SMALL_FILES["aedat4"]
    packet = aedat4_packet_starts(data)[3]
    huge = data[:packet] + struct.pack("<ii", 0, 50 << 20)
    decoder = events.StreamDecoder("aedat4", limits=events.DecodeLimits(max_decompressed_bytes=1 << 20))
    with pytest.raises(LimitExceededError):
        decoder.feed(huge)
    assert decoder.buffered_bytes < 64


TRUNCATED = {
    "evt2": SMALL_FILES["evt2"][:-1],  # inside the last 32-bit word
    "evt21": SMALL_FILES["evt21"][:-3],
    "evt3": SMALL_FILES["evt3"][:-1],
    "aedat4": SMALL_FILES["aedat4"][:-5],  # inside the last packet
    "events": SMALL_FILES["events"][:-4],  # inside the last record
    "evt3 header": EVT3_HEADER[:20],  # inside a header line
    "aedat4 header": SMALL_FILES["aedat4"][:40],  # inside the IOHeader
    "aedat4 packet header": SMALL_FILES["aedat4"][: aedat4_packet_starts(SMALL_FILES["aedat4"])[3] + 5],
}


@pytest.mark.parametrize("case", list(TRUNCATED))
def test_a_truncated_stream_raises_at_close(case):
    fmt = case.split()[0]
    data = TRUNCATED[case]
    with pytest.raises(events.EventDecodeError):
        events.load(data, format=fmt)
    decoder = events.StreamDecoder(fmt)
    for a in range(0, len(data), 50):
        decoder.feed(data[a : a + 50])
    with pytest.raises(events.EventDecodeError, match=r"ends|past the end|truncated"):
        decoder.close()


@pytest.mark.parametrize("fmt", list(SMALL_FILES))
def test_max_events_holds_across_chunks(fmt):
    data = FILES[fmt][-1][1]  # 3000 events
    limits = events.DecodeLimits(max_events=1000)
    decoder = events.StreamDecoder(fmt, limits=limits)
    total = 0
    with pytest.raises(LimitExceededError) as raised:
        for a in range(0, len(data), 997):
            total += len(decoder.feed(data[a : a + 997]))
    assert raised.value.status == 413
    assert total <= 1000


def test_unknown_format_and_feed_after_close():
    with pytest.raises(events.UnknownFormatError):
        events.StreamDecoder("dat")
    decoder = events.StreamDecoder("events")
    decoder.close()
    with pytest.raises(RuntimeError):
        decoder.feed(b"")


# Bounded memory ----------------------------------------------------------------------------


def long_recording(n: int) -> np.ndarray:
    rng = np.random.default_rng(5)
    return events.make_events(
        np.cumsum(rng.integers(0, 3, n)),
        rng.integers(0, SENSOR[0], n),
        rng.integers(0, SENSOR[1], n),
        rng.integers(0, 2, n),
    )


@pytest.mark.parametrize(
    "fmt, data, most",
    [
        ("evt3", written(write_evt3, long_recording(3_000_000), sensor_size=SENSOR), 1),
        ("evt21", written(write_evt21, long_recording(1_000_000), sensor_size=SENSOR), 7),
        ("events", written(events.write_events, long_recording(600_000)), 12),
    ],
    ids=["evt3", "evt21", "events"],
)
def test_many_megabytes_in_small_chunks_hold_only_a_word(fmt, data, most):
    assert len(data) > 7_000_000
    decoder = events.StreamDecoder(fmt)
    header_end = data.index(b"% end\n") + 6 if fmt != "events" else 0
    decoder.feed(data[:header_end])
    held = count = 0
    for a in range(header_end, len(data), 4099):
        count += len(decoder.feed(data[a : a + 4099]))
        held = max(held, decoder.buffered_bytes)
    count += len(decoder.close())
    assert count == len(events.load(data, format=fmt).events)
    assert held <= most


def test_aedat4_holds_at_most_one_packet():
    data = written(write_aedat4, long_recording(500_000), sensor_size=SENSOR, compression="lz4", packet_events=5000)
    assert len(data) > 3_000_000
    marks = aedat4_packet_starts(data)
    largest = max(b - a for a, b in itertools.pairwise([*marks[3::2], len(data)]))  # header + payload
    decoder = events.StreamDecoder("aedat4")
    decoder.feed(data[: marks[2]])
    held = count = 0
    for a in range(marks[2], len(data), 4099):
        count += len(decoder.feed(data[a : a + 4099]))
        held = max(held, decoder.buffered_bytes)
    count += len(decoder.close())
    assert count == 500_000
    assert 0 < held <= largest
