"""One upload -> frames (``service.ingest.prepare``), with expected values worked out by hand.

The sensor-size rule (DESIGN.md section 4, README "Where a file has no geometry"): a request's
override wins; else the file's header; else the model's training sensor when every event fits
in it; else the smallest size that holds them. The model here frames 128 x 128 sensors to 4 x 4
in one time step, so which size was chosen shows in where the events land:
``x' = x * 4 // W``.
"""

from __future__ import annotations

import dataclasses
import io
import time

import numpy as np
import pytest
from service_harness import AEDAT4_SAMPLE

import events
from events.aedat2 import write_aedat2
from events.aedat4 import write_aedat4
from events.evt2 import write_evt2
from events.evt3 import write_evt3
from events.text_files import write_csv
from export.manifest import Manifest
from service.ingest import (
    IngestLimits,
    WindowParams,
    framing_spec,
    inline_format,
    inline_limits,
    over_inline_budget,
    prepare,
    prepare_windows,
    warm_up_framing,
)

LIMITS = IngestLimits(max_events=1000, max_duration_us=10_000, max_decompressed_bytes=1 << 20)
# (x, y, p) of each event; times 0, 1000, 2000, ...
FITS = [(0, 0, 0), (96, 96, 1), (50, 50, 1)]  # the smallest sensor holding them: 97 x 97
WIDE = [*FITS, (200, 10, 1)]
TALL = [*FITS, (10, 200, 1)]


@pytest.fixture(scope="module")
def manifest() -> Manifest:
    return Manifest.from_dict(
        {
            "name": "m",
            "version": 1,
            "classes": ["a"],
            "time_steps": 1,
            "input": {"width": 4, "height": 4, "sensor_width": 128, "sensor_height": 128},
            "layers": {"lif": [], "synaptic": []},
        }
    )


def npz(rows: list[tuple[int, int, int]], times: list[int] | None = None) -> io.BytesIO:
    buffer = io.BytesIO()
    x, y, p = (np.array(column) for column in zip(*rows, strict=True))
    t = np.arange(len(rows), dtype=np.int64) * 1000 if times is None else np.array(times, dtype=np.int64)
    np.savez(buffer, t=t, x=x.astype(np.uint16), y=y.astype(np.uint16), p=p.astype(np.uint8))
    return buffer


def frame(on: dict[tuple[int, int], int], off: dict[tuple[int, int], int]) -> np.ndarray:
    """The expected ``[1, 2, 4, 4]`` frames from counts at ``(row, column)`` = ``(y', x')``."""
    expected = np.zeros((1, 2, 4, 4), dtype=np.float32)
    for channel, counts in ((0, off), (1, on)):
        for (row, column), count in counts.items():
            expected[0, channel, row, column] = count
    return expected


def test_events_that_fit_the_training_sensor_are_framed_on_it(manifest):
    prepared = prepare(npz(FITS), "fits.npz", None, None, manifest, LIMITS)
    assert prepared.input["sensor_size"] == [128, 128] and prepared.input["sensor_from_header"] is False
    np.testing.assert_array_equal(prepared.frames, frame(on={(3, 3): 1, (1, 1): 1}, off={(0, 0): 1}))


@pytest.mark.parametrize(
    ("rows", "sensor", "on"),
    [
        # x' = 96*4//201 = 1, 50*4//201 = 0, 200*4//201 = 3; y' = 96*4//97 = 3, 50*4//97 = 2, 10*4//97 = 0
        (WIDE, [201, 97], {(3, 1): 1, (2, 0): 1, (0, 3): 1}),
        (TALL, [97, 201], {(1, 3): 1, (0, 2): 1, (3, 0): 1}),
    ],
    ids=["too-wide", "too-tall"],
)
def test_events_outside_the_training_sensor_get_the_smallest_sensor_that_holds_them(manifest, rows, sensor, on):
    prepared = prepare(npz(rows), "outside.npz", None, None, manifest, LIMITS)
    assert prepared.input["sensor_size"] == sensor and prepared.input["sensor_from_header"] is False
    np.testing.assert_array_equal(prepared.frames, frame(on=on, off={(0, 0): 1}))


def test_a_request_override_wins_over_the_training_sensor(manifest):
    prepared = prepare(npz(FITS), "fits.npz", None, (256, 256), manifest, LIMITS)
    assert prepared.input["sensor_size"] == [256, 256] and prepared.input["sensor_from_header"] is False
    np.testing.assert_array_equal(prepared.frames, frame(on={(1, 1): 1, (0, 0): 1}, off={(0, 0): 1}))


def test_the_file_header_wins_over_the_training_sensor_and_an_override_over_the_header(manifest):
    limits = IngestLimits(max_events=10_000_000, max_duration_us=10**9, max_decompressed_bytes=1 << 30)
    with AEDAT4_SAMPLE.open("rb") as fh:
        from_header = prepare(fh, AEDAT4_SAMPLE.name, None, None, manifest, limits)
        overridden = prepare(fh, AEDAT4_SAMPLE.name, None, (400, 300), manifest, limits)
    assert from_header.input["sensor_size"] == [346, 260] and from_header.input["sensor_from_header"] is True
    assert from_header.input["format"] == "aedat4"
    assert overridden.input["sensor_size"] == [400, 300] and overridden.input["sensor_from_header"] is False


def test_the_response_describes_the_input(manifest):
    prepared = prepare(npz(WIDE), "named.aedat4", None, None, manifest, LIMITS)
    assert prepared.input == {
        "filename": "named.aedat4",
        "format": "npz",  # the content decides, not the misleading name
        "events": 4,
        "duration_us": 3000,
        "sensor_size": [201, 97],
        "sensor_from_header": False,
        "time_steps": 1,
        "noise": {  # this manifest has no noise filters, and none were asked for
            "denoise_us": 0,
            "hot_pixels": False,
            "hot_pixels_found": 0,
            "removed": {"hot_pixels": 0, "background_activity": 0},
        },
    }


def test_a_named_format_is_used_as_is(manifest):
    with pytest.raises(events.EventDecodeError) as raised:
        prepare(npz(FITS), "fits.npz", "aedat4", None, manifest, LIMITS)
    assert raised.value.status == 400


def test_duration_and_event_limits_are_inclusive_and_refused_beyond_as_413(manifest):
    at_limit = IngestLimits(max_events=4, max_duration_us=3000, max_decompressed_bytes=1 << 20)
    assert prepare(npz(WIDE), "a.npz", None, None, manifest, at_limit).input["events"] == 4
    for limits in (
        IngestLimits(max_events=4, max_duration_us=2999, max_decompressed_bytes=1 << 20),
        IngestLimits(max_events=3, max_duration_us=3000, max_decompressed_bytes=1 << 20),
    ):
        with pytest.raises(events.LimitExceededError) as raised:
            prepare(npz(WIDE), "a.npz", None, None, manifest, limits)
        assert raised.value.status == 413


def test_a_stream_is_read_from_its_start_whatever_its_position(manifest):
    stream = npz(FITS)
    stream.seek(0, io.SEEK_END)
    assert prepare(stream, None, None, None, manifest, LIMITS).input["events"] == 3


def test_the_inflation_cap_reaches_the_decoder(manifest):
    capped = IngestLimits(max_events=1000, max_duration_us=10_000, max_decompressed_bytes=16)
    with pytest.raises(events.LimitExceededError):  # t alone inflates to 4 x 8 bytes
        prepare(npz(WIDE), "a.npz", None, None, manifest, capped)


def test_a_model_that_splits_by_time_gets_frames_split_by_time(manifest):
    data = manifest.to_dict()
    timed = Manifest.from_dict(data | {"time_steps": 2, "input": data["input"] | {"split_by": "time"}})
    buffer = io.BytesIO()
    t = np.array([0, 1, 2, 100], dtype=np.int64)  # by time: 3 events in [0, 50), 1 in [50, 100]
    zeros = np.zeros(4, dtype=np.uint16)
    np.savez(buffer, t=t, x=zeros, y=zeros, p=np.ones(4, dtype=np.uint8))
    frames = prepare(buffer, "t.npz", None, None, timed, LIMITS).frames
    assert frames[:, 1, 0, 0].tolist() == [3, 1]  # by number it would be [2, 2]


def test_an_overlong_recording_is_refused_with_both_durations_in_seconds(manifest):
    limits = IngestLimits(max_events=1000, max_duration_us=2500, max_decompressed_bytes=1 << 20)
    with pytest.raises(events.LimitExceededError) as raised:
        prepare(npz(WIDE), "a.npz", None, None, manifest, limits)
    message = str(raised.value)
    assert "npz" in message and "recording lasts 0.003 s, over the 0.0025 s limit" in message
    default = IngestLimits(max_events=1000, max_duration_us=600_000_000, max_decompressed_bytes=1 << 20)
    buffer, zeros = io.BytesIO(), np.zeros(2, dtype=np.uint16)
    np.savez(buffer, t=np.array([0, 601_000_000]), x=zeros, y=zeros, p=zeros.astype(np.uint8))
    with pytest.raises(events.LimitExceededError) as raised:
        prepare(buffer, "long.npz", None, None, manifest, default)
    assert "recording lasts 601.000 s, over the 600 s limit" in str(raised.value)


def test_decode_and_frame_times_are_parts_of_the_call(manifest):
    started = time.perf_counter()
    prepared = prepare(npz(FITS), "a.npz", None, None, manifest, LIMITS)
    elapsed = time.perf_counter() - started
    assert 0 <= prepared.decode_s <= elapsed and 0 <= prepared.frame_s <= elapsed
    assert prepared.decode_s + prepared.frame_s <= elapsed


@pytest.mark.parametrize(
    ("sensor", "frame", "time_steps", "split_by"),
    [((1, 1), (1, 1), 1, "number"), ((346, 260), (32, 32), 8, "time"), ((1280, 720), (64, 36), 16, "number")],
)
def test_the_start_up_warm_up_frames_within_any_model_geometry(sensor, frame, time_steps, split_by):
    """The server warms framing up for every model at start: it must never fail a valid manifest."""
    model = Manifest.from_dict(
        {
            "name": "w",
            "version": 1,
            "classes": ["a"],
            "time_steps": time_steps,
            "input": {
                "width": frame[0],
                "height": frame[1],
                "sensor_width": sensor[0],
                "sensor_height": sensor[1],
                "split_by": split_by,
            },
            "layers": {"lif": [], "synaptic": []},
        }
    )
    assert warm_up_framing(model) is None


def written(writer, **options) -> io.BytesIO:
    """Three events in a file format, as an upload's stream."""
    buffer = io.BytesIO()
    writer(buffer, events.make_events([0, 1000, 2000], [0, 96, 50], [0, 96, 50], [0, 1, 1]), **options)
    return buffer


SMALL = 5000  # bytes, as the upload declares them; well under the 256 KiB line


@pytest.mark.parametrize(
    "stream, filename, expected",
    [
        (lambda: written(write_evt3, sensor_size=(128, 128)), "a.raw", "evt3"),
        (lambda: written(write_evt2, sensor_size=(128, 128)), "a.raw", "evt2"),
        (lambda: written(write_aedat2, sensor_size=(128, 128)), "a.aedat", "aedat2"),
        (lambda: written(write_aedat4, sensor_size=(128, 128)), "a.aedat4", "aedat4"),  # inflation is budgeted
        (lambda: written(write_csv), "a.csv", None),  # parsed as text: ~10x the cost per byte
        (lambda: npz(FITS), "a.npz", None),  # a zip archive: inflates too
        (lambda: io.BytesIO(b"\x00\x01 matches no format"), "a.bin", None),  # the thread reports the error
    ],
)
def test_small_uploads_decode_on_the_loop_and_text_or_zip_archives_in_a_thread(stream, filename, expected):
    upload = stream()
    upload.seek(7)
    assert inline_format(upload, SMALL, filename, None) == expected
    assert upload.tell() == 0


def test_the_loop_takes_uploads_up_to_256_kib_and_a_named_format_without_sniffing():
    upload = written(write_evt3, sensor_size=(128, 128))
    assert inline_format(upload, 256 * 1024, "a.raw", None) == "evt3"
    assert inline_format(upload, 256 * 1024 + 1, "a.raw", None) is None
    assert inline_format(upload, None, "a.raw", None) is None  # size unknown
    garbage = io.BytesIO(b"\x00\x01 matches no format")
    assert inline_format(garbage, SMALL, "a.bin", "evt2") == "evt2"
    assert inline_format(garbage, SMALL, "a.bin", "npz") is None


def test_the_warm_up_runs_both_noise_filters_whatever_the_models_spec(manifest, monkeypatch):
    """Any request may turn the filters on, so their compiled code is warmed up too."""
    import events.denoise as denoise

    ran = []
    for name in ("hot_pixels", "background_activity"):
        real = getattr(denoise, name)
        monkeypatch.setattr(denoise, name, lambda *args, _real=real, _name=name: ran.append(_name) or _real(*args))
    warm_up_framing(manifest)  # a manifest with both filters off
    assert ran == ["hot_pixels", "background_activity"]


def test_a_requests_noise_filters_replace_the_models_where_it_gives_them(manifest):
    data = manifest.to_dict()
    filtered = Manifest.from_dict(data | {"input": data["input"] | {"denoise_us": 2000, "hot_pixels": True}})
    assert framing_spec(filtered) == events.FramingSpec(1, 4, 4, "number", 2000, True)
    assert framing_spec(filtered, 0, False) == events.FramingSpec(1, 4, 4, "number", 0, False)
    assert framing_spec(filtered, 500, None) == events.FramingSpec(1, 4, 4, "number", 500, True)
    assert framing_spec(filtered, None, False) == events.FramingSpec(1, 4, 4, "number", 2000, False)
    assert framing_spec(manifest, 700, True) == events.FramingSpec(1, 4, 4, "number", 700, True)


# A recording for timelines: FITS at 0, 1 and 2 ms, then one more event at 6 ms.
TIMELINE = [*FITS, (10, 10, 1)]
TIMELINE_US = [0, 1000, 2000, 6000]
EVERY_3_MS = WindowParams(window_us=3000, stride_us=3000, min_events=2, max_windows=10)


def test_a_timeline_cuts_the_recording_into_windows_and_frames_the_busy_ones(manifest):
    stream = npz(TIMELINE, TIMELINE_US)
    stream.seek(0, io.SEEK_END)  # read from the start whatever the position
    started = time.perf_counter()
    prepared = prepare_windows(stream, "t.npz", None, None, manifest, LIMITS, EVERY_3_MS)
    elapsed = time.perf_counter() - started
    windows = prepared.windows
    assert windows.start_us.tolist() == [0, 3000, 6000] and windows.end_us.tolist() == [3000, 6000, 9000]
    assert windows.events.tolist() == [3, 0, 1] and windows.idle.tolist() == [False, True, True]
    np.testing.assert_array_equal(windows.frames, frame(on={(3, 3): 1, (1, 1): 1}, off={(0, 0): 1})[None])
    assert prepared.input == {
        "filename": "t.npz",
        "format": "npz",
        "events": 4,
        "duration_us": 6000,
        "sensor_size": [128, 128],
        "sensor_from_header": False,
        "time_steps": 1,
        "window_us": 3000,
        "stride_us": 3000,
        "min_events": 2,
        "noise": {"denoise_us": 0, "hot_pixels": False},
    }
    assert 0 <= prepared.decode_s <= elapsed and 0 <= prepared.frame_s <= elapsed
    assert prepared.decode_s + prepared.frame_s <= elapsed


def test_a_timeline_frames_with_the_requests_spec_sensor_and_window_limit(manifest):
    spec = events.FramingSpec(1, 2, 2, "number", 0, True)
    params = WindowParams(window_us=1000, stride_us=2000, min_events=1, max_windows=4)
    prepared = prepare_windows(npz(TIMELINE, TIMELINE_US), None, None, (256, 256), manifest, LIMITS, params, spec)
    windows = prepared.windows
    # windows [0, 1), [2, 3), [4, 5), [6, 7) ms: one event each but the third
    assert windows.events.tolist() == [1, 1, 0, 1] and windows.frames.shape == (3, 1, 2, 2, 2)
    # x' = x * 2 // 256: (0, 0) OFF, (50, 50) ON and (10, 10) ON all land in pixel (0, 0)
    assert windows.frames[:, 0, :, 0, 0].tolist() == [[1, 0], [0, 1], [0, 1]]
    assert prepared.input["sensor_size"] == [256, 256] and prepared.input["filename"] is None
    assert prepared.input["noise"] == {"denoise_us": 0, "hot_pixels": True}
    fewer = dataclasses.replace(params, max_windows=3)
    with pytest.raises(events.LimitExceededError, match="at most 3"):
        prepare_windows(npz(TIMELINE, TIMELINE_US), None, None, None, manifest, LIMITS, fewer)


def test_a_timeline_keeps_to_the_recording_limits_and_a_named_format(manifest):
    short = IngestLimits(max_events=1000, max_duration_us=5999, max_decompressed_bytes=1 << 20)
    with pytest.raises(events.LimitExceededError, match=r"recording lasts 0\.006 s"):
        prepare_windows(npz(TIMELINE, TIMELINE_US), "t.npz", None, None, manifest, short, EVERY_3_MS)
    with pytest.raises(events.EventDecodeError) as raised:
        prepare_windows(npz(TIMELINE, TIMELINE_US), "t.npz", "aedat4", None, manifest, LIMITS, EVERY_3_MS)
    assert raised.value.status == 400


def test_the_loop_decodes_within_a_budget_of_65536_events_and_1_mib_inflated():
    generous = IngestLimits(max_events=10_000_000, max_duration_us=60_000_000, max_decompressed_bytes=1 << 28)
    assert inline_limits(generous) == IngestLimits(65_536, 60_000_000, 1 << 20)
    assert inline_limits(LIMITS) == LIMITS  # the request's limits are already tighter
    assert inline_limits(IngestLimits(100_000, 5, 1000)) == IngestLimits(65_536, 5, 1000)


def budget_breaker(n: int) -> io.BytesIO:
    """An AEDAT 4 upload of ``n`` events at one pixel: ZSTD shrinks it to a few KB, it inflates to 16 bytes each."""
    return written_events(write_aedat4, np.arange(n), np.zeros(n), np.zeros(n), np.ones(n), compression="zstd")


def written_events(writer, t, x, y, p, **options) -> io.BytesIO:
    buffer = io.BytesIO()
    writer(buffer, events.make_events(t, x, y, p), sensor_size=(128, 128), **options)
    return buffer


def test_an_upload_over_the_loops_budget_is_refused_there_and_retried_under_the_requests_limits(manifest):
    generous = IngestLimits(max_events=10_000_000, max_duration_us=60_000_000, max_decompressed_bytes=1 << 28)
    for upload, count in (
        (budget_breaker(70_000), 70_000),  # 1.1 MB inflated, 70,000 events: over both budgets
        # EVT 3.0 vector words: 32 neighbouring pixels at each microsecond, 70,016 events in ~30 KB
        (written_events(write_evt3, np.arange(70_016) // 32, np.arange(70_016) % 32, np.zeros(70_016), 1), 70_016),
    ):
        assert inline_format(upload, len(upload.getvalue()), "a", None) is not None
        with pytest.raises(events.LimitExceededError) as refused:
            prepare(upload, "a", None, None, manifest, inline_limits(generous))
        assert over_inline_budget(refused.value, generous)
        assert prepare(upload, "a", None, None, manifest, generous).input["events"] == count
    # refused by the request's own limits: retried only where the budget was tighter than them
    with pytest.raises(events.LimitExceededError) as refused:
        prepare(budget_breaker(2000), "a", None, None, manifest, LIMITS)
    assert not over_inline_budget(refused.value, LIMITS)
    assert not over_inline_budget(events.EventDecodeError("evt3", "broken"), generous)
