"""AEDAT 2.0 / 3.1 / 4 decoders: cross-checked against dv-processing, aedat, faery and tonic,
on our spec-exact writers' files and on real DAVIS346 recordings; hostile input gives only
``EventDecodeError``."""

from __future__ import annotations

import contextlib
import io
import struct
import tracemalloc
from pathlib import Path

import aedat
import dv_processing as dv
import faery
import lz4.frame
import numpy as np
import pytest
import zstandard
from tonic.io import get_aer_events_from_file, read_aedat_header_from_file, read_davis_346

import events
from events import DecodeLimits, EventDecodeError, LimitExceededError
from events.aedat2 import RECORD, encode_addresses, write_aedat2
from events.aedat3 import EVENT as AEDAT3_EVENT
from events.aedat3 import PACKET_HEADER, write_aedat3
from events.aedat4 import MAGIC, event_packet, io_header, write_aedat4
from events.aedat4 import PACKET_HEADER as AEDAT4_PACKET
from events.chips import CHIPS

DATA = Path(__file__).parent / "data"
COMPRESSIONS = ["none", "lz4", "lz4_high", "zstd", "zstd_high"]
DV_COMPRESSION = {
    "none": dv.CompressionType.NONE,
    "lz4": dv.CompressionType.LZ4,
    "lz4_high": dv.CompressionType.LZ4_HIGH,
    "zstd": dv.CompressionType.ZSTD,
    "zstd_high": dv.CompressionType.ZSTD_HIGH,
}


def random_events(n: int, width: int, height: int, seed: int = 0, t0: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = t0 + np.cumsum(rng.integers(0, 50, n))
    return events.make_events(t, rng.integers(0, width, n), rng.integers(0, height, n), rng.integers(0, 2, n))


def decode(name: str, data: bytes, limits: DecodeLimits | None = None):
    """The decoder itself, not ``events.load``: so an exception of another type would surface here."""
    return events.FORMATS[name].decode(io.BytesIO(data), limits or DecodeLimits())


def columns(t, x, y, p) -> np.ndarray:
    return events.make_events(np.asarray(t).astype(np.int64), x, y, np.asarray(p).astype(np.uint8))


def dv_read(path) -> np.ndarray:
    recording = dv.io.MonoCameraRecording(str(path))
    parts = []
    while (batch := recording.getNextEventBatch()) is not None:
        parts.append(batch.numpy())
    a = np.concatenate(parts)
    return columns(a["timestamp"], a["x"], a["y"], a["polarity"])


def aedat_read(path) -> np.ndarray:
    a = np.concatenate([packet["events"] for packet in aedat.Decoder(str(path)) if "events" in packet])
    return columns(a["t"], a["x"], a["y"], a["on"])


def faery_read(path) -> np.ndarray:
    a = np.concatenate(list(faery.events_stream_from_file(str(path))))
    return columns(a["t"], a["x"], a["y"], a["on"])


# --- AEDAT 4 -------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_aedat4_our_writer_reads_identically_in_dv_aedat_and_faery(tmp_path, compression):
    ev = random_events(25_000, 346, 260, seed=1, t0=1_700_000_000_000_000)
    path = tmp_path / f"ours_{compression}.aedat4"
    write_aedat4(path, ev, (346, 260), compression, packet_events=7_000)
    for reader in (dv_read, aedat_read, faery_read):
        assert np.array_equal(reader(path), ev), reader.__name__
    recording = events.load(path)
    assert recording.format == "aedat4" and recording.sensor_size == (346, 260) and recording.sensor_from_header
    assert np.array_equal(recording.events, ev)
    assert recording.metadata["compression"] == compression


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_aedat4_dv_processing_writer_decodes_identically(tmp_path, compression):
    ev = random_events(23_456, 640, 480, seed=2, t0=1_000)
    path = tmp_path / f"dv_{compression}.aedat4"
    config = dv.io.MonoCameraWriter.EventOnlyConfig("DVXplorer_test", (640, 480), DV_COMPRESSION[compression])
    writer = dv.io.MonoCameraWriter(str(path), config)
    store = dv.EventStore()
    for t, x, y, p in ev[["t", "x", "y", "p"]].tolist():
        store.push_back(t, x, y, bool(p))
    writer.writeEvents(store)
    del writer  # closes the file and writes its data table
    recording = events.load(path)
    assert recording.sensor_size == (640, 480)
    assert np.array_equal(recording.events, ev)


@pytest.mark.parametrize("name, n_events", [("davis346_head.aedat4", 3576), ("davis346_noframes.aedat4", 26036)])
def test_real_davis346_recordings_decode_like_dv_aedat_and_faery(name, n_events):
    path = DATA / name
    recording = events.load(path)
    assert len(recording) == n_events
    assert recording.sensor_size == (346, 260)
    assert recording.metadata["streams"] == ["EVTS", "FRME", "IMUS", "TRIG"]
    for reader in (dv_read, aedat_read, faery_read):
        assert np.array_equal(reader(path), recording.events), reader.__name__


def test_real_recording_frame_imu_and_trigger_packets_are_skipped():
    recording = events.load(DATA / "davis346_head.aedat4")
    assert recording.metadata["skipped"] == {"TRIG": 7, "FRME": 2, "IMUS": 8}
    assert events.load(DATA / "davis346_noframes.aedat4").metadata["skipped"] == {"IMUS": 73, "TRIG": 54}


def test_frames_only_recording_is_a_decode_error():
    with pytest.raises(EventDecodeError, match="no event stream"):
        events.load(DATA / "dv_frames_only_gray16.aedat4")


def test_aedat4_events_outside_the_declared_sensor_are_rejected(tmp_path):
    ev = random_events(100, 346, 260)
    buffer = io.BytesIO()
    write_aedat4(buffer, ev, (346, 260), "none")
    data = buffer.getvalue().replace(b'"sizeX" type="int">346<', b'"sizeX" type="int">100<')
    with pytest.raises(EventDecodeError, match="outside the 100x260 sensor"):
        events.load(data)


def _bomb_file(payload: bytes, compression: int) -> bytes:
    info = (
        b'<dv version="2.0"><node name="outInfo"><node name="0"><attr key="typeIdentifier" type="string">EVTS</attr>'
        b'<node name="info"><attr key="sizeX" type="int">32</attr><attr key="sizeY" type="int">32</attr></node>'
        b"</node></node></dv>"
    )
    header = io_header(compression, info)
    return MAGIC + struct.pack("<i", len(header)) + header + AEDAT4_PACKET.pack(0, len(payload)) + payload


def test_zstd_bomb_is_rejected_from_its_declared_size_without_inflating():
    sink = io.BytesIO()
    with zstandard.ZstdCompressor().stream_writer(sink, size=256 << 20, closefd=False) as writer:
        zeros = bytes(16 << 20)
        for _ in range(16):
            writer.write(zeros)
    bomb = _bomb_file(sink.getvalue(), 3)
    tracemalloc.start()
    with pytest.raises(LimitExceededError, match="compression-ratio"):
        events.load(bomb)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 << 20


def test_lz4_bomb_without_declared_size_stops_at_the_budget():
    compressor = lz4.frame.LZ4FrameCompressor()
    zeros = bytes(16 << 20)
    payload = compressor.begin() + b"".join(compressor.compress(zeros) for _ in range(16)) + compressor.flush()
    bomb = _bomb_file(payload, 1)
    tracemalloc.start()
    with pytest.raises(LimitExceededError):
        events.load(bomb, limits=DecodeLimits(max_decompressed_bytes=4 << 20))
    with pytest.raises(LimitExceededError, match="compression-ratio"):
        events.load(bomb, limits=DecodeLimits(max_compression_ratio=20))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 48 << 20


def test_corrupt_compressed_packet_is_a_decode_error():
    packet = bytearray(zstandard.ZstdCompressor().compress(event_packet(random_events(500, 32, 32))))
    packet[len(packet) // 2 :] = bytes(len(packet) - len(packet) // 2)
    with pytest.raises(EventDecodeError, match="corrupt ZSTD"):
        events.load(_bomb_file(bytes(packet), 3))
    with pytest.raises(EventDecodeError, match="corrupt LZ4"):
        events.load(_bomb_file(b"\x04\x22\x4d\x18garbage", 1))


def test_flatbuffer_offsets_pointing_outside_the_packet_are_rejected():
    packet = bytearray(event_packet(random_events(10, 32, 32)))
    struct.pack_into("<I", packet, 28, 1_000_000)  # vector length far beyond the packet
    with pytest.raises(EventDecodeError, match="vector elements"):
        events.load(_bomb_file(bytes(packet), 0))
    struct.pack_into("<I", packet, 4, 0xFFFFFF00)  # root offset outside the buffer
    with pytest.raises(EventDecodeError, match="flatbuffer"):
        events.load(_bomb_file(bytes(packet), 0))


def test_infonode_entity_declarations_are_refused():
    header = io_header(0, b'<!DOCTYPE dv [<!ENTITY a "aaaa">]><dv>&a;</dv>')
    with pytest.raises(EventDecodeError, match="DOCTYPE"):
        events.load(MAGIC + struct.pack("<i", len(header)) + header)


# --- AEDAT 2.0 -----------------------------------------------------------------------------


def test_aedat2_dvs128_layout_matches_jaer_and_tonic_raw_records(tmp_path):
    ev = random_events(5_000, 128, 128, seed=3)
    path = tmp_path / "cifar_like.aedat"
    write_aedat2(path, ev, (128, 128), chip="DVS128")
    version, start, _ = read_aedat_header_from_file(str(path))
    raw = get_aer_events_from_file(str(path), version, start)
    address = raw["address"].astype(np.int64)
    # jAER's DVS128 extractor: x = 127 - ((a >> 1) & 0x7F), y = (a >> 8) & 0x7F, type = 1 - (a & 1)
    assert np.array_equal(127 - ((address >> 1) & 0x7F), ev["x"])
    assert np.array_equal((address >> 8) & 0x7F, ev["y"])
    assert np.array_equal(1 - (address & 1), ev["p"])
    assert np.array_equal(raw["timeStamp"], ev["t"])
    recording = events.load(path)
    assert recording.format == "aedat2" and recording.sensor_size == (128, 128) and recording.sensor_from_header
    assert np.array_equal(recording.events, ev)


def test_aedat2_known_addresses_decode_to_known_events():
    header = b"#!AER-DAT2.0\r\n# AEChip: ch.unizh.ini.jaer.chip.retina.DVS128\r\n"
    records = np.array([(0x070B, 10), (0x0000, 20), (0x8001, 30), (0x7FFE, 40)], dtype=RECORD)
    recording = events.load(header + records.tobytes())
    # 0x070B: y=7, raw x=5 -> x=122, bit 0 set -> OFF; 0x8001 is a sync event (bit 15), skipped
    assert recording.events.tolist() == [(10, 122, 7, 0), (20, 127, 0, 1), (40, 0, 127, 1)]


@pytest.mark.parametrize("chip", ["DAVIS240", "DAVIS346"])
def test_aedat2_davis_layout_skips_aps_imu_and_trigger_records(chip):
    spec = CHIPS[chip]
    ev = random_events(2_000, spec.width, spec.height, seed=4)
    records = np.zeros(len(ev) + 3, dtype=RECORD)
    records["a"][:-3] = encode_addresses(ev, spec)
    records["t"][:-3] = ev["t"]
    records[-3] = ((1 << 31) | (5 << 22) | (7 << 12) | 0x123, ev["t"][-1] + 1)  # APS sample
    records[-2] = (0x80000C00 | (3 << 12), ev["t"][-1] + 2)  # IMU sample
    records[-1] = ((1 << 10) | (2 << 22), ev["t"][-1] + 3)  # external trigger
    header = f"#!AER-DAT2.0\r\n# AEChip: {spec.jaer_class}\r\n".encode()
    recording = events.load(header + records.tobytes())
    assert recording.sensor_size == (spec.width, spec.height) and recording.metadata["chip"] == chip
    assert np.array_equal(recording.events, ev)
    # jAER DAVIS: y = (a >> 22) & 0x1FF, x = W - 1 - ((a >> 12) & 0x3FF), polarity bit 11 = ON
    a = records["a"][:-3].astype(np.int64)
    assert np.array_equal(spec.width - 1 - ((a >> 12) & 0x3FF), ev["x"])
    assert np.array_equal((a >> 11) & 1, ev["p"])


def test_aedat2_davis346_agrees_with_tonic_up_to_its_y_flip(tmp_path):
    ev = random_events(3_000, 346, 260, seed=5)
    path = tmp_path / "davis.aedat"
    write_aedat2(path, ev, (346, 260), chip="DAVIS346")
    _, _, tonic_events = read_davis_346(str(path))
    assert np.array_equal(tonic_events["x"], ev["x"]) and np.array_equal(tonic_events["p"], ev["p"])
    assert np.array_equal(tonic_events["y"], 259 - ev["y"])  # tonic flips y to a top-left origin; jAER does not
    assert np.array_equal(events.load(path).events, ev)


def test_aedat2_timestamps_unwrap_across_32_bit_wraps_and_chunks(monkeypatch):
    ev = random_events(3_000, 128, 128, seed=6, t0=(1 << 32) - 30_000)
    assert ev["t"][-1] > 1 << 32
    buffer = io.BytesIO()
    write_aedat2(buffer, ev, (128, 128))
    monkeypatch.setattr("events.aedat2.CHUNK_EVENTS", 7)  # wraps fall inside and across chunk borders
    decoded = events.load(buffer.getvalue()).events
    assert np.array_equal(decoded["t"], ev["t"])
    assert np.all(np.diff(decoded["t"]) >= 0)


def test_aedat2_small_steps_back_are_not_wraps():
    header = b"#!AER-DAT2.0\r\n"
    records = np.array([(0, 1000), (0, 995), (0, 2000)], dtype=RECORD)
    assert events.load(header + records.tobytes()).events["t"].tolist() == [1000, 995, 2000]


def test_aedat2_unnamed_chip_falls_back_to_dvs128_then_davis():
    ev = random_events(500, 128, 128, seed=7)
    buffer = io.BytesIO()
    write_aedat2(buffer, ev, None, chip=None)
    recording = events.load(buffer.getvalue())
    assert not recording.sensor_from_header and recording.sensor_size == (128, 128)
    assert recording.metadata["chip"].startswith("DVS128 (assumed")
    assert np.array_equal(recording.events, ev)
    davis = random_events(500, 240, 180, seed=8)
    records = np.zeros(len(davis), dtype=RECORD)
    records["a"] = encode_addresses(davis, CHIPS["DAVIS240"])
    records["t"] = davis["t"]
    recording = events.load(b"#!AER-DAT2.0\r\n" + records.tobytes())
    assert recording.metadata["chip"].startswith("DAVIS240 (assumed") and not recording.sensor_from_header
    assert np.array_equal(recording.events, davis)


def test_aedat2_coordinates_outside_the_named_chip_are_rejected():
    records = np.array([((100 << 22) | (300 << 12), 1)], dtype=RECORD)
    header = b"#!AER-DAT2.0\r\n# AEChip: eu.seebetter.ini.chips.davis.DAVIS240C\r\n"
    with pytest.raises(EventDecodeError, match="outside the DAVIS240 sensor"):
        events.load(header + records.tobytes())


# --- AEDAT 3.1 -----------------------------------------------------------------------------


def test_aedat3_matches_tonic_raw_records_and_ibm_layout(tmp_path):
    ev = random_events(6_000, 128, 128, seed=9)
    path = tmp_path / "user01_fluorescent.aedat"
    write_aedat3(path, ev, (128, 128), packet_events=1_000)
    version, start, _ = read_aedat_header_from_file(str(path))
    raw = get_aer_events_from_file(str(path), version, start)
    a = raw["address"].astype(np.int64)
    assert version == 3.1
    assert np.array_equal((a >> 17) & 0x1FFF, ev["x"]) and np.array_equal((a >> 2) & 0x1FFF, ev["y"])
    assert np.array_equal((a >> 1) & 1, ev["p"]) and np.array_equal(raw["timeStamp"], ev["t"])
    recording = events.load(path)
    assert recording.format == "aedat3" and recording.sensor_size == (128, 128) and recording.sensor_from_header
    assert np.array_equal(recording.events, ev)


def _aedat3(*packets: bytes, header: bytes = b"#!AER-DAT3.1\r\n#Source 1: DVS128\r\n#!END-HEADER\r\n") -> bytes:
    return header + b"".join(packets)


def _polarity_packet(words, timestamps, overflow=0, capacity=None) -> bytes:
    body = np.array(list(zip(words, timestamps, strict=True)), dtype=AEDAT3_EVENT)
    n = len(body)
    return PACKET_HEADER.pack(1, 1, 8, 4, overflow, capacity or n, n, n) + body.tobytes()


def test_aedat3_invalid_events_and_other_packet_types_are_skipped():
    valid_on = (5 << 17) | (6 << 2) | 0b11
    invalid = (7 << 17) | (8 << 2) | 0b10
    valid_off = (9 << 17) | (10 << 2) | 0b01
    special = PACKET_HEADER.pack(0, 1, 8, 4, 0, 2, 2, 2) + bytes(16)
    frame = PACKET_HEADER.pack(2, 1, 100, 4, 0, 1, 1, 1) + bytes(100)
    imu = PACKET_HEADER.pack(3, 1, 36, 4, 0, 2, 2, 2) + bytes(72)
    data = _aedat3(special, _polarity_packet([valid_on, invalid], [100, 200]), frame, imu,
                   _polarity_packet([valid_off], [300], overflow=2))  # fmt: skip
    recording = events.load(data)
    assert recording.events.tolist() == [(100, 5, 6, 1), ((2 << 31) | 300, 9, 10, 0)]
    assert recording.metadata["skipped_packets_by_type"] == {0: 1, 2: 1, 3: 1}


def test_aedat3_timestamp_overflow_round_trips():
    ev = random_events(2_000, 128, 128, seed=10, t0=(1 << 31) - 20_000)
    buffer = io.BytesIO()
    write_aedat3(buffer, ev, (128, 128), packet_events=512)
    assert np.array_equal(events.load(buffer.getvalue()).events, ev)


def test_aedat3_sensor_from_size_lines_or_fallback():
    word = (200 << 17) | (100 << 2) | 1
    sized = b"#!AER-DAT3.1\r\n#-Source 1: dvsSizeX=346 dvsSizeY=260\r\n#!END-HEADER\r\n"
    assert events.load(_aedat3(_polarity_packet([word], [1]), header=sized)).sensor_size == (346, 260)
    bare = b"#!AER-DAT3.1\r\n#!END-HEADER\r\n"
    recording = events.load(_aedat3(_polarity_packet([word], [1]), header=bare))
    assert recording.sensor_size == (201, 101) and not recording.sensor_from_header
    with pytest.raises(EventDecodeError, match="outside the 128x128 sensor"):
        events.load(_aedat3(_polarity_packet([word], [1])))


@pytest.mark.parametrize(
    "packet, problem",
    [
        (PACKET_HEADER.pack(1, 1, 8, 4, 0, 5, 6, 6) + bytes(40), "absurd packet header"),
        (PACKET_HEADER.pack(1, 1, 0, 4, 0, 5, 5, 5), "absurd packet header"),
        (PACKET_HEADER.pack(1, 1, 8, 4, 0, 1 << 30, 1, 1) + bytes(8), "runs past the end"),
        (PACKET_HEADER.pack(1, 1, 12, 4, 0, 1, 1, 1) + bytes(12), "event size 12"),
        (_polarity_packet([1], [-5]), "negative event timestamp"),
        (PACKET_HEADER.pack(1, 1, 8, 4, 0, 1, 1, 1)[:20], "inside a packet header"),
    ],
)
def test_aedat3_malformed_packets(packet, problem):
    with pytest.raises(EventDecodeError, match=problem):
        events.load(_aedat3(packet))


def test_aedat3_compressed_formats_are_refused():
    header = b"#!AER-DAT3.1\r\n#Format: SerializedTS\r\n#!END-HEADER\r\n"
    with pytest.raises(EventDecodeError, match="SerializedTS"):
        events.load(header)


# --- all three -----------------------------------------------------------------------------


def _files() -> dict[str, bytes]:
    ev = random_events(3_000, 128, 128, seed=11)
    out = {}
    for name, write in [
        ("aedat2", lambda f: write_aedat2(f, ev, (128, 128))),
        ("aedat3", lambda f: write_aedat3(f, ev, (128, 128), packet_events=700)),
        ("aedat4", lambda f: write_aedat4(f, ev, (128, 128), "lz4", packet_events=700)),
    ]:
        buffer = io.BytesIO()
        write(buffer)
        out[name] = buffer.getvalue()
    return out


@pytest.mark.parametrize("name", ["aedat2", "aedat3", "aedat4"])
def test_content_detection_ignores_the_file_name(name, tmp_path):
    data = _files()[name]
    assert events.detect_format(data[:4096]).name == name
    misnamed = tmp_path / "recording.csv"
    misnamed.write_bytes(data)
    assert events.load(misnamed).format == name


@pytest.mark.parametrize("name", ["aedat2", "aedat3", "aedat4"])
def test_max_events_limit(name):
    with pytest.raises(LimitExceededError, match="more than 2999 events"):
        events.load(_files()[name], limits=DecodeLimits(max_events=2_999))
    assert len(events.load(_files()[name], limits=DecodeLimits(max_events=3_000))) == 3_000


@pytest.mark.parametrize("name", ["aedat2", "aedat3", "aedat4"])
def test_truncation_anywhere_is_an_error_or_a_clean_prefix(name):
    data = _files()[name]
    full = events.load(data).events
    errors = 0
    for cut in list(range(0, 400, 7)) + list(range(400, len(data), 997)):
        try:
            decoded = decode(name, data[:cut]).events
        except EventDecodeError:
            errors += 1
            continue
        assert np.array_equal(decoded, full[: len(decoded)])  # cut at a record/packet border
    assert errors > 0


@pytest.mark.parametrize("name", ["aedat2", "aedat3", "aedat4"])
def test_random_corruption_only_raises_decode_errors(name):
    data = _files()[name]
    rng = np.random.default_rng(12)
    for _ in range(150):
        mutated = bytearray(data)
        for position in rng.integers(0, min(len(data), 2_000), size=rng.integers(1, 6)):
            mutated[position] = rng.integers(0, 256)
        with contextlib.suppress(EventDecodeError):
            decode(name, bytes(mutated))


def test_aedat2_many_wraps_in_one_chunk_unwrap_the_same_way():
    raw = np.tile(np.array([0, 0xFFFFFFFF], dtype=np.uint32), 20)
    records = np.zeros(len(raw), dtype=RECORD)
    records["t"] = raw
    decoded = events.load(b"#!AER-DAT2.0\r\n" + records.tobytes()).events["t"]
    assert np.array_equal(decoded, raw.astype(np.int64) + (np.arange(len(raw)) // 2 << 32))


def test_aedat3_window_edges_and_oversized_packets_decode_the_same(monkeypatch):
    ev = random_events(5_000, 128, 128, seed=13, t0=(1 << 31) - 40_000)
    buffer = io.BytesIO()
    write_aedat3(buffer, ev, (128, 128), packet_events=300)
    monkeypatch.setattr("events.aedat3.WINDOW", 3_000)  # packets straddle windows; some exceed one
    assert np.array_equal(events.load(buffer.getvalue()).events, ev)


def test_aedat3_errors_point_at_the_offending_event():
    first = _polarity_packet([3, 3, 3], [1, 2, 3])
    second = _polarity_packet([3, 3, 2], [4, -5, -6])  # the invalid third event is not an error
    data = _aedat3(first, second)
    with pytest.raises(EventDecodeError) as caught:
        events.load(data)
    header_end = data.index(b"#!END-HEADER\r\n") + len(b"#!END-HEADER\r\n")
    assert caught.value.offset == header_end + len(first) + 28 + 8


# --- compiled decoders against plain per-record / per-packet references -------------------


def _aedat2_reference(records: np.ndarray, chip) -> np.ndarray:
    """jAER's rules written out in NumPy over the whole file (one chunk: no window carry-over)."""
    a, raw_t = records["a"].astype(np.int64), records["t"].astype(np.int64)
    previous = np.concatenate([raw_t[:1], raw_t[:-1]])
    t = raw_t + (np.cumsum(previous - raw_t > 1 << 31) << 32)
    if chip.layout == "dvs128":
        keep = a < 0x8000
        a, t = a[keep], t[keep]
        return columns(t, 127 - ((a >> 1) & 0x7F), (a >> 8) & 0x7F, 1 - (a & 1))
    keep = (a & 0x80000400) == 0
    a, t = a[keep], t[keep]
    x_raw, y = (a >> 12) & 0x3FF, (a >> 22) & 0x1FF
    if (x_raw >= chip.width).any() or (y >= chip.height).any():
        raise ValueError("outside the sensor")
    return columns(t, chip.width - 1 - x_raw, y, (a >> 11) & 1)


@pytest.mark.parametrize("chip", ["DVS128", "DAVIS240", "DAVIS346"])
@pytest.mark.parametrize("seed", range(6))
def test_aedat2_matches_the_reference_on_mutated_records(monkeypatch, chip, seed):
    spec = CHIPS[chip]
    rng = np.random.default_rng(100 + seed)
    ev = random_events(3_000, spec.width, spec.height, seed=seed, t0=(1 << 32) - 40_000)
    records = np.zeros(len(ev), dtype=RECORD)
    records["a"] = encode_addresses(ev, spec)
    records["t"] = ev["t"] % (1 << 32)
    picks = rng.integers(0, len(records), 40)
    records["a"][picks[:20]] ^= (1 << rng.integers(0, 32, 20)).astype(np.uint32)  # specials, coordinates
    records["t"][picks[20:]] = rng.integers(0, 1 << 32, 20, dtype=np.uint32)  # wraps and steps back
    monkeypatch.setattr("events.aedat2.CHUNK_EVENTS", int(rng.integers(5, 400)))
    data = f"#!AER-DAT2.0\r\n# AEChip: {spec.jaer_class}\r\n".encode() + records.tobytes()
    try:
        expected = _aedat2_reference(records, spec)
    except ValueError:
        with pytest.raises(EventDecodeError, match="outside the"):
            decode("aedat2", data)
        return
    assert np.array_equal(decode("aedat2", data).events, expected)


def _aedat3_reference(data: bytes, sensor: tuple[int, int]) -> tuple[np.ndarray, dict[int, int]]:
    """The packet rules written out with ``struct`` and NumPy, one packet at a time."""
    pos = data.index(b"\n", data.index(b"#!END-HEADER")) + 1
    parts, skipped = [columns([], [], [], [])], {}
    while pos < len(data):
        if pos + 28 > len(data):
            raise ValueError("truncated header")
        kind, _, size, ts_offset, overflow, capacity, number, _ = PACKET_HEADER.unpack_from(data, pos)
        if size <= 0 or capacity < 0 or number < 0 or number > capacity or overflow < 0:
            raise ValueError("absurd header")
        if pos + 28 + capacity * size > len(data):
            raise ValueError("past the end")
        if kind == 1:
            if size != 8 or ts_offset != 4:
                raise ValueError("polarity size")
            body = np.frombuffer(data, AEDAT3_EVENT, number, pos + 28)
            body = body[(body["data"] & 1) == 1]
            word, t = body["data"], body["t"]
            x, y = word >> 17, (word >> 2) & 0x7FFF
            if (t < 0).any() or (x >= sensor[0]).any() or (y >= sensor[1]).any():
                raise ValueError("bad event")
            parts.append(columns((overflow << 31) | t.astype(np.int64), x, y, (word >> 1) & 1))
        else:
            skipped[kind] = skipped.get(kind, 0) + 1
        pos += 28 + capacity * size
    return np.concatenate(parts), skipped


@pytest.mark.parametrize("seed", range(30))
def test_aedat3_matches_the_reference_on_mutated_packets(monkeypatch, seed):
    rng = np.random.default_rng(200 + seed)
    ev = random_events(2_000, 128, 128, seed=seed, t0=(1 << 31) - 30_000)
    buffer = io.BytesIO()
    per_packet = int(rng.integers(1, 700))
    write_aedat3(buffer, ev, (128, 128), packet_events=per_packet)
    data = bytearray(buffer.getvalue())
    header_end = data.index(b"\n", data.index(b"#!END-HEADER")) + 1
    packets = rng.integers(0, len(ev) // per_packet, int(rng.integers(0, 4)))
    for packet in sorted(packets.tolist(), reverse=True):  # skipped packets (frame, IMU, ...) between polarity ones
        at = header_end + (28 + 8 * per_packet) * packet
        data[at:at] = PACKET_HEADER.pack(int(rng.integers(-5, 9)), 1, 12, 4, 0, 3, 2, 2) + bytes(36)
    for _ in range(int(rng.integers(0, 4))):  # flips in events: valid bits, coordinates, timestamps
        data[int(rng.integers(header_end, len(data)))] ^= 1 << int(rng.integers(0, 8))
    if rng.random() < 0.3:  # and sometimes in a header field or the length
        data = data[: int(rng.integers(header_end, len(data)))]
    data = bytes(data)
    monkeypatch.setattr("events.aedat3.WINDOW", int(rng.integers(28, 5_000)))
    try:
        expected, skipped = _aedat3_reference(data, (128, 128))
    except ValueError:
        with pytest.raises(EventDecodeError):
            decode("aedat3", data)
        return
    recording = decode("aedat3", data)
    assert np.array_equal(recording.events, expected)
    assert list(recording.metadata["skipped_packets_by_type"].items()) == list(skipped.items())  # first seen first
