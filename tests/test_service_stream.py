"""``WebSocket /v1/models/{name}/stream`` (DESIGN.md section 10): a real client against a real server.

Expected answers come from outside the stream code: the same recording through the HTTP timeline
(the windows must match), packed records built here with NumPy (not our writer), close codes
from the protocol, and the server's resident memory read from /proc.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
from service_harness import ROOT, Server, demo_repository, legacy_copy, metric
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

import events
from events.denoise import background_activity

KEY = "stream-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
MAX_STREAMS = 3
MAX_BUFFERED = 300_000
PACKED = np.dtype([("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "u1")])  # 13 bytes, as DESIGN section 10 says


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    shared = demo_repository(tmp_path_factory.getbasetemp() / "service-demo")
    repo = tmp_path_factory.mktemp("stream-repo")
    shutil.copytree(shared / "demo", repo / "demo")
    legacy_copy(repo, "demo", "legacy")
    srv = Server(
        repo,
        tmp_path_factory.mktemp("stream-log") / "server.log",
        without_torch=True,
        api_keys=KEY,
        max_streams=MAX_STREAMS,
        stream_max_buffered_events=MAX_BUFFERED,
        stream_max_pending_windows=2,
        max_duration_s=30,
    )
    try:
        srv.wait_ready()
        yield srv
    finally:
        code = srv.stop()
    assert code == 0 and "Traceback" not in srv.log(), srv.log()[-3000:]


def ws_url(server: Server, model: str = "demo") -> str:
    return server.url.replace("http://", "ws://") + f"/v1/models/{model}/stream"


def packed(recording: np.ndarray) -> bytes:
    out = np.empty(len(recording), PACKED)
    for name in PACKED.names:
        out[name] = recording[name]
    return out.tobytes()


def two_gestures() -> tuple[np.ndarray, int]:
    """Two bundled gestures, each at the start of a window one gesture long, silence between."""
    parts = [events.load(ROOT / "examples" / name).events.copy() for name in ("swipe_left.aedat4", "approach.aedat")]
    for part in parts:
        part["t"] -= part["t"][0]
    window_us = int(max(p["t"][-1] for p in parts)) + 1
    parts[1]["t"] += 3 * window_us
    return np.concatenate(parts), window_us


def receive_until_flushed(ws, timeout: float = 60) -> tuple[list[dict], dict]:
    """The window messages up to the flush's acknowledgement, and the acknowledgement."""
    messages = []
    while True:
        message = json.loads(ws.recv(timeout=timeout))
        if message.get("flushed"):
            return messages, message
        messages.append(message)


def close_code(ws, timeout: float = 30) -> tuple[int, str]:
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            ws.recv(timeout=timeout)
    return closed.value.rcvd.code, closed.value.rcvd.reason


def send_in_pieces(ws, data: bytes, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.integers(0, len(data), 25))
    for piece in np.split(np.frombuffer(data, np.uint8), cuts):
        ws.send(piece.tobytes())


def timeline(server, recording: np.ndarray, path: Path, form: dict) -> dict:
    np.savez(path, t=recording["t"], x=recording["x"], y=recording["y"], p=recording["p"])
    with path.open("rb") as fh:
        return httpx.post(
            server.url + "/v1/models/demo/timeline", files={"file": fh}, data=form, headers=AUTH, timeout=60
        ).json()


WINDOW_KEYS = ("start_us", "end_us", "events", "state", "prediction", "spikes_total", "sops")


def streamed_windows(server, recording: np.ndarray, config: dict) -> list[dict]:
    with connect(ws_url(server), additional_headers=AUTH) as ws:
        ws.send(json.dumps({"format": "events", "sensor_size": [128, 128], **config}))
        send_in_pieces(ws, packed(recording))
        ws.send(json.dumps({"flush": True}))
        messages, _ = receive_until_flushed(ws)
    assert all(m["latency_ms"] >= 0 and m["dropped_windows"] == 0 for m in messages)
    return [{k: m[k] for k in WINDOW_KEYS} for m in messages]


def test_windows_of_a_stream_split_anywhere_match_the_timeline_of_the_same_recording(server, tmp_path):
    """Background filter off (it runs on arrival in a stream, per window in a timeline): the hot-pixel
    rule still runs per window in both."""
    recording, window_us = two_gestures()
    window = {"window_ms": window_us / 1000, "stride_ms": window_us / 1000}
    messages = streamed_windows(server, recording, window | {"denoise_us": 0})
    answer = timeline(
        server, recording, tmp_path / "two.npz", {k: str(v) for k, v in window.items()} | {"denoise_us": "0"}
    )
    assert messages == [{k: w[k] for k in WINDOW_KEYS} for w in answer["windows"]]
    assert [m["prediction"]["label"] for m in messages if m["prediction"]] == ["swipe_left", "approach"]


def test_a_stream_filters_background_activity_as_events_arrive(server, tmp_path):
    """With the model's filters, a stream split anywhere answers as the timeline does for the recording
    filtered whole by ``events.denoise.background_activity`` (then hot pixels per window in both)."""
    recording, window_us = two_gestures()
    window = {"window_ms": window_us / 1000, "stride_ms": window_us / 1000}
    messages = streamed_windows(server, recording, window)
    kept, bad = background_activity(recording, (128, 128), 2000)  # the demo's denoise_us
    assert bad == -1 and 0 < len(kept) < len(recording)
    form = {k: str(v) for k, v in window.items()} | {"denoise_us": "0"}
    answer = timeline(server, kept, tmp_path / "kept.npz", form)
    assert messages == [{k: w[k] for k in WINDOW_KEYS} for w in answer["windows"]]
    assert [m["prediction"]["label"] for m in messages if m["prediction"]] == ["swipe_left", "approach"]


def test_a_camera_format_streams_too_and_early_exit_reports_decisions(server):
    data = (ROOT / "examples" / "rotate_clockwise.evt3.raw").read_bytes()
    whole = events.load(ROOT / "examples" / "rotate_clockwise.evt3.raw")
    span_ms = (whole.duration_us + 1) / 1000
    config = {"format": "evt3", "window_ms": span_ms, "stride_ms": span_ms, "early_exit": 0.2, "api_key": KEY}
    with connect(ws_url(server)) as ws:  # the key in the configuration instead of the header
        ws.send(json.dumps(config))
        send_in_pieces(ws, data, seed=3)
        ws.send(json.dumps({"flush": True}))
        (message,), _ = receive_until_flushed(ws)
    with (ROOT / "examples" / "rotate_clockwise.evt3.raw").open("rb") as fh:
        single = httpx.post(server.url + "/v1/models/demo/classify", files={"file": fh}, headers=AUTH).json()
    kept, _ = background_activity(whole.events, whole.sensor_size, 2000)  # on arrival: the window holds these
    assert message["events"] == len(kept) and message["prediction"]["label"] == single["prediction"]["label"]
    assert message["sops"] == single["energy"]["sops"] and 1 <= message["decision"]["step"] <= 8


def test_undecodable_bytes_close_with_1003_and_say_why(server):
    with connect(ws_url(server), additional_headers=AUTH) as ws:
        ws.send(json.dumps({"format": "aedat4"}))
        ws.send(b"this is not an AEDAT 4 stream" * 10)
        code, reason = close_code(ws)
    assert code == 1003 and reason


def test_an_event_outside_the_sensor_closes_with_1003_when_the_background_filter_runs_on_arrival(server):
    recording = events.make_events([10, 20], [5, 200], [5, 6], [1, 0])
    with connect(ws_url(server), additional_headers=AUTH) as ws:
        ws.send(json.dumps({"format": "events", "sensor_size": [128, 128]}))
        ws.send(packed(recording))
        code, reason = close_code(ws)
    assert code == 1003 and "(200, 6) lies outside the 128x128 sensor" in reason


@pytest.mark.parametrize(
    "config, expected",
    [
        ({"format": "mp4"}, "format must be one of"),
        ({"format": "events", "window_ms": -1}, "window_ms must be a positive"),
        ({"format": "events", "colour": "red"}, "unknown configuration keys"),
        ({"format": "events", "early_exit": 3}, "early_exit is a margin"),
        ({"format": "events", "denoise_us": -5}, "denoise_us must be a whole number"),
        ({"format": "events", "hot_pixels": "yes"}, "hot_pixels must be true or false"),
    ],
)
def test_a_bad_configuration_closes_with_1003(server, config, expected):
    with connect(ws_url(server), additional_headers=AUTH) as ws:
        ws.send(json.dumps(config))
        code, reason = close_code(ws)
    assert code == 1003 and expected in reason


def test_a_missing_or_wrong_key_closes_with_1008(server):
    for headers, config in (({}, {"format": "events"}), ({"Authorization": "Bearer nope"}, {"format": "events"})):
        with connect(ws_url(server), additional_headers=headers) as ws:
            ws.send(json.dumps(config))
            assert close_code(ws)[0] == 1008


def test_unknown_and_old_models_are_refused_with_a_reason(server):
    with connect(ws_url(server, "nope"), additional_headers=AUTH) as ws:
        ws.send(json.dumps({"format": "events"}))
        assert close_code(ws)[0] == 4404
    with connect(ws_url(server, "legacy"), additional_headers=AUTH) as ws:
        ws.send(json.dumps({"format": "events"}))
        code, reason = close_code(ws)
    assert code == 1003 and "re-export" in reason


def test_too_many_events_in_open_windows_closes_with_1009(server):
    n = MAX_BUFFERED + 1000
    t = np.arange(n, dtype=np.int64) // 100  # all within 10 ms: one window of 1 s never closes
    recording = events.make_events(t, t % 128, (t * 7) % 128, t % 2)
    with connect(ws_url(server), additional_headers=AUTH) as ws:
        # filter off: its own pixel never vouches for an event, so it would keep none of these
        ws.send(json.dumps({"format": "events", "sensor_size": [128, 128], "window_ms": 1000, "denoise_us": 0}))
        ws.send(packed(recording))
        code, reason = close_code(ws)
    assert code == 1009 and "events wait" in reason


def test_more_streams_than_allowed_are_refused_with_1013(server):
    with contextlib.ExitStack() as stack:
        for _ in range(MAX_STREAMS):
            ws = stack.enter_context(connect(ws_url(server), additional_headers=AUTH))
            ws.send(json.dumps({"format": "events", "sensor_size": [128, 128]}))
        with connect(ws_url(server), additional_headers=AUTH) as extra:
            code, reason = close_code(extra)
    assert code == 1013 and f"limit {MAX_STREAMS}" in reason


def server_rss_mb(server: Server) -> float:
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]) / 1024


def test_a_flood_drops_windows_while_memory_stays_bounded(server):
    rng = np.random.default_rng(5)
    per_window, seconds = 2_000, 20  # 20 ms windows of 2,000 events: 100,000 ev/s, 4 M events, 52 MB on the wire
    base = np.sort(rng.integers(0, 20_000, per_window))
    first, last = int(base[0]), int(base[-1]) + (seconds * 50 - 1) * 20_000
    with connect(ws_url(server), additional_headers=AUTH) as ws:
        # uniform random events are what the noise filters remove: off, so every window needs the model
        config = {"format": "events", "sensor_size": [128, 128], "window_ms": 20, "stride_ms": 20}
        ws.send(json.dumps(config | {"denoise_us": 0, "hot_pixels": False}))
        before = peak = server_rss_mb(server)
        for second in range(seconds):  # each message closes 50 windows at once: the model cannot keep up
            xy = rng.integers(0, 128, (2, 50 * per_window))
            t = (base[None, :] + 20_000 * np.arange(second * 50, second * 50 + 50)[:, None]).ravel()
            ws.send(packed(events.make_events(t, xy[0], xy[1], xy[0] % 2)))
            peak = max(peak, server_rss_mb(server))
        ws.send(json.dumps({"flush": True}))
        messages, ack = receive_until_flushed(ws, timeout=120)
    windows = (last - first) // 20_000 + 1
    assert ack["dropped_windows"] > 0 and len(messages) + ack["dropped_windows"] == windows
    assert [m["start_us"] for m in messages] == sorted(m["start_us"] for m in messages)
    assert peak - before < 150, f"RSS grew {peak - before:.0f} MB while 52 MB were streamed"
    text = httpx.get(server.url + "/metrics").text
    assert metric(text, "stlsnn_stream_windows_dropped_total", model="demo") >= ack["dropped_windows"]
    assert metric(text, "stlsnn_windows_classified_total", model="demo", source="stream") > 0
    assert "stlsnn_stream_latency_seconds_bucket" in text
