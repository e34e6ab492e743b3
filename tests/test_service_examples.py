"""``GET /v1/examples``, ``GET /v1/examples/{name}`` and classify's ``include=frames`` (DESIGN.md section 11).

One real server with API keys on and an examples folder made for the test: two bundled
recordings, ``generate.py``, a text note, a hidden file and a link to a file outside the folder.
Only the two recordings may be listed or served.
"""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
from service_harness import ROOT, Server, demo_repository

import events
from export.manifest import Manifest
from service.examples import list_examples
from service.frame_payload import encode_frames

KEY = "examples-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
PROBLEM = "application/problem+json"
SERVED = ["swipe_left.aedat4", "swipe_up.evt2.raw"]


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    return demo_repository(tmp_path_factory.getbasetemp() / "service-demo")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("examples")
    for name in SERVED:
        shutil.copy(ROOT / "examples" / name, folder / name)
    shutil.copy(ROOT / "examples" / "generate.py", folder / "generate.py")
    (folder / "notes.md").write_text("# Notes\n\nRecorded on a bench, under a desk lamp.\n")
    shutil.copy(ROOT / "examples" / "approach.aedat", folder / ".hidden.aedat")
    (folder / "outside.aedat4").symlink_to(ROOT / "examples" / "swipe_left.aedat4")
    return folder


@pytest.fixture(scope="module")
def client(repo, folder, tmp_path_factory):
    log = tmp_path_factory.mktemp("examples-log") / "server.log"
    server = Server(repo, log, without_torch=True, api_keys=KEY, examples_dir=folder)
    try:
        server.wait_ready()
        with httpx.Client(base_url=server.url, timeout=60) as c:
            yield c
    finally:
        assert server.stop() == 0


def assert_problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    return response.json()


def test_listing_names_each_event_file_with_its_format_size_and_gesture(client, folder):
    assert_problem(client.get("/v1/examples"), 401)
    listing = client.get("/v1/examples", headers=AUTH).json()["examples"]
    assert listing == [
        {
            "name": "swipe_left.aedat4",
            "format": "aedat4",
            "size": (folder / "swipe_left.aedat4").stat().st_size,
            "label": "swipe_left",
        },
        {
            "name": "swipe_up.evt2.raw",
            "format": "evt2",
            "size": (folder / "swipe_up.evt2.raw").stat().st_size,
            "label": "swipe_up",
        },
    ]


def test_a_listed_file_is_served_byte_for_byte_and_nothing_else(client, folder):
    assert_problem(client.get("/v1/examples/swipe_up.evt2.raw"), 401)
    answer = client.get("/v1/examples/swipe_up.evt2.raw", headers=AUTH)
    assert answer.status_code == 200
    assert answer.content == (folder / "swipe_up.evt2.raw").read_bytes()
    for name in ("generate.py", "notes.md", ".hidden.aedat", "outside.aedat4", "%2E%2E", "missing.aedat4"):
        body = assert_problem(client.get(f"/v1/examples/{name}", headers=AUTH), 404)
        assert body["type"] == "urn:stlsnn:problem:unknown-example", name
    for path in ("/v1/examples/..%2F..%2Fpyproject.toml", "/v1/examples/%2E%2E/%2E%2E/pyproject.toml"):
        assert_problem(client.get(path, headers=AUTH), 404)


def test_a_missing_or_empty_folder_lists_nothing(tmp_path):
    assert list_examples(tmp_path / "absent") == []
    assert list_examples(tmp_path) == []


def test_include_frames_adds_the_counts_the_model_saw(client, repo):
    path = ROOT / "examples" / "swipe_left.aedat4"
    manifest = Manifest.read(repo / "demo" / "1")
    recording = events.load(path)
    sensor = events.resolve_sensor_size(recording, (manifest.input.sensor_width, manifest.input.sensor_height))
    inp = manifest.input  # the model's framing spec, noise filters included, as the server frames
    spec = events.FramingSpec(manifest.time_steps, inp.width, inp.height, inp.split_by, inp.denoise_us, inp.hot_pixels)
    expected = events.frame_events(recording.events, sensor, spec).astype(np.int64)

    def post(**form):
        files = {"file": (path.name, path.read_bytes())}
        return client.post("/v1/models/demo/classify", files=files, data=form, headers=AUTH)

    frames = post(include="frames").json()["input"]["frames"]
    assert frames["shape"] == [manifest.time_steps, 2, manifest.input.height, manifest.input.width]
    assert frames["dtype"] == "uint16"
    counts = np.frombuffer(base64.b64decode(frames["data"]), dtype="<u2").reshape(frames["shape"])
    np.testing.assert_array_equal(counts.astype(np.int64), expected)
    removed = post().json()["input"]["noise"]["removed"]  # every event counts, but those the filters dropped
    assert counts.sum() == len(recording) - removed["hot_pixels"] - removed["background_activity"]

    plain = post().json()
    assert "frames" not in plain["input"]
    assert plain["prediction"] == post(include="frames").json()["prediction"]
    body = assert_problem(post(include="spikes"), 422)
    assert "include" in body["detail"]


def test_frames_saturate_at_the_uint16_maximum():
    frames = np.array([0, 1, 65_535, 65_536, 1_000_000], dtype=np.float32).reshape(1, 1, 1, 5)
    payload = encode_frames(frames)
    assert payload["shape"] == [1, 1, 1, 5] and payload["dtype"] == "uint16"
    assert base64.b64decode(payload["data"]) == bytes([0, 0, 1, 0, 255, 255, 255, 255, 255, 255])


def test_openapi_documents_the_examples_and_the_frames(client):
    spec = client.get("/openapi.json").json()
    assert {"/v1/examples", "/v1/examples/{name}"} <= set(spec["paths"])
    assert "404" in spec["paths"]["/v1/examples/{name}"]["get"]["responses"]
    assert set(spec["components"]["schemas"]["InputFrames"]["properties"]) == {"shape", "dtype", "data"}
    assert "frames" in spec["components"]["schemas"]["InputInfo"]["properties"]
