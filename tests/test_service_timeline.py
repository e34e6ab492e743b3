"""``POST /v1/models/{name}/timeline`` (DESIGN.md section 10) against a real server without PyTorch.

The recording is built so that the answer is known without the code under test: two bundled
gestures, each placed at the start of a window exactly one gesture long, separated by silence.
Each of those windows then holds exactly one gesture's events, so it must be classified exactly
as classify classifies that gesture alone; the windows in the silence must be idle.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
from service_harness import ROOT, Server, demo_repository, legacy_copy

import events
from export.manifest import Manifest

PROBLEM = "application/problem+json"
MAX_WINDOWS = 40
GESTURES = ("swipe_left.aedat4", "rotate_clockwise.evt3.raw")


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    shared = demo_repository(tmp_path_factory.getbasetemp() / "service-demo")
    repo = tmp_path_factory.mktemp("timeline-repo")
    shutil.copytree(shared / "demo", repo / "demo")
    legacy_copy(repo, "demo", "legacy")
    return repo


@pytest.fixture(scope="module")
def client(repo, tmp_path_factory):
    log = tmp_path_factory.mktemp("timeline-log") / "server.log"
    server = Server(repo, log, without_torch=True, max_timeline_windows=MAX_WINDOWS, max_duration_s=30)
    try:
        server.wait_ready()
        with httpx.Client(base_url=server.url, timeout=60) as c:
            yield c
    finally:
        code = server.stop()
    assert code == 0 and "Traceback" not in server.log(), server.log()[-3000:]


@pytest.fixture(scope="module")
def manifest(repo) -> Manifest:
    return Manifest.read(repo / "demo" / "1")


def save_npz(path: Path, rec: np.ndarray) -> Path:
    np.savez(path, t=rec["t"], x=rec["x"], y=rec["y"], p=rec["p"])
    return path


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    """Two gestures at window starts 0 and 4 windows later (silence between), each also saved alone."""
    folder = tmp_path_factory.mktemp("timeline-recordings")
    parts = [events.load(ROOT / "examples" / name).events for name in GESTURES]
    parts = [p.copy() for p in parts]
    for part in parts:
        part["t"] -= part["t"][0]
    window_us = int(max(p["t"][-1] for p in parts)) + 1
    second_start = 4 * window_us
    parts[1]["t"] += second_start
    alone = [save_npz(folder / f"alone{i}.npz", p) for i, p in enumerate(parts)]
    whole = save_npz(folder / "two_gestures.npz", np.concatenate(parts))
    return whole, alone, window_us


def post(client, path: Path, url: str = "/v1/models/demo/timeline", **form) -> httpx.Response:
    with path.open("rb") as fh:
        return client.post(url, files={"file": (path.name, fh)}, data={k: str(v) for k, v in form.items()})


def assert_problem(response: httpx.Response, status: int, kind: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    if kind:
        assert body["type"] == f"urn:stlsnn:problem:{kind}"
    return body


def test_windows_holding_one_gesture_are_classified_as_that_gesture_alone(client, layout, manifest):
    whole, alone, window_us = layout
    body = post(client, whole, window_ms=window_us / 1000, stride_ms=window_us / 1000).json()
    assert body["input"]["window_us"] == window_us and body["input"]["stride_us"] == window_us
    windows = body["windows"]
    assert len(windows) == 5 and [w["start_us"] for w in windows] == [k * window_us for k in range(5)]
    assert [w["state"] for w in windows] == ["classified", "idle", "idle", "idle", "classified"]
    assert [w["events"] for w in windows[1:4]] == [0, 0, 0]
    for window, path in zip((windows[0], windows[4]), alone, strict=True):
        with path.open("rb") as fh:
            single = client.post("/v1/models/demo/classify", files={"file": (path.name, fh)}).json()
        assert window["events"] == single["input"]["events"]
        assert window["prediction"]["index"] == single["prediction"]["index"]
        assert window["prediction"]["score"] == pytest.approx(single["prediction"]["score"], abs=1e-6)
        assert window["spikes_total"] == single["spikes"]["total"] and window["sops"] == single["energy"]["sops"]
        assert window["snn_pj"] == pytest.approx(single["energy"]["snn_pj"])
    labels = [windows[0]["prediction"]["label"], windows[4]["prediction"]["label"]]
    assert labels == ["swipe_left", "rotate_clockwise"]  # the demo knows these two bundled gestures
    assert [(s["label"], s["start_us"], s["end_us"], s["windows"]) for s in body["segments"]] == [
        ("swipe_left", 0, window_us, 1),
        ("rotate_clockwise", 4 * window_us, 5 * window_us, 1),
    ]
    energy = body["energy"]
    assert energy["classified_windows"] == 2 and energy["sops"] == windows[0]["sops"] + windows[4]["sops"]
    assert energy["ann_pj"] == pytest.approx(2 * 4.6 * manifest.dense_macs)
    assert energy["ratio"] == pytest.approx(energy["ann_pj"] / energy["snn_pj"])


def test_defaults_come_from_the_manifest(client, layout, manifest):
    whole, _, _ = layout
    body = post(client, whole).json()
    spec = manifest.input
    assert body["input"]["window_us"] == spec.window_us and body["input"]["stride_us"] == spec.window_us // 2
    assert body["input"]["min_events"] == max(manifest.time_steps, math.ceil(0.01 * spec.window_events))
    for window in body["windows"]:
        assert window["end_us"] - window["start_us"] == spec.window_us
        if window["events"] < body["input"]["min_events"]:  # (the noise filters can idle a busier one too)
            assert window["state"] == "idle"


def test_early_exit_gives_each_classified_window_a_decision(client, layout):
    whole, _, window_us = layout
    body = post(client, whole, window_ms=window_us / 1000, stride_ms=window_us / 1000, early_exit=0.2).json()
    classified = [w for w in body["windows"] if w["state"] == "classified"]
    assert all(1 <= w["decision"]["step"] <= 8 and w["snn_pj_decided"] <= w["snn_pj"] + 1e-6 for w in classified)
    assert body["energy"]["snn_pj_decided"] == pytest.approx(sum(w["snn_pj_decided"] for w in classified))


def test_more_windows_than_allowed_is_413_naming_the_limit(client, layout):
    whole, _, window_us = layout
    body = assert_problem(post(client, whole, window_ms=window_us / 1000, stride_ms=window_us / 10_000), 413)
    assert f"at most {MAX_WINDOWS} allowed" in body["detail"]


def test_bad_requests_are_problems(client, layout, tmp_path):
    whole, _, _ = layout
    assert_problem(post(client, whole, window_ms=0), 422, "invalid-parameters")
    assert_problem(post(client, whole, stride_ms="nan"), 422, "invalid-parameters")
    assert_problem(post(client, whole, min_events=0), 422, "invalid-parameters")
    assert_problem(post(client, whole, early_exit=2), 422, "invalid-parameters")
    assert_problem(post(client, whole, format="nope"), 415, "unknown-format")
    garbage = tmp_path / "garbage.raw"
    garbage.write_bytes(b"% evt 3.0\n% end\n" + bytes(range(7)))
    assert assert_problem(post(client, garbage), 400)["detail"]
    body = assert_problem(post(client, whole, url="/v1/models/legacy/timeline"), 422, "model-lacks-step-outputs")
    assert "re-export" in body["detail"]
    assert_problem(post(client, whole, url="/v1/models/nope/timeline"), 404, "unknown-model")


def test_the_default_model_route_answers_the_same(client, layout):
    whole, _, window_us = layout
    form = {"window_ms": window_us / 1000, "stride_ms": window_us / 1000}
    named, default = post(client, whole, **form).json(), post(client, whole, url="/v1/timeline", **form).json()
    assert named["segments"] == default["segments"] and named["energy"] == default["energy"]


def test_noise_filters_follow_the_model_unless_the_request_overrides_them(client, layout, manifest):
    whole, alone, window_us = layout
    form = {"window_ms": window_us / 1000, "stride_ms": window_us / 1000}
    default = post(client, whole, **form).json()
    assert default["input"]["noise"] == {
        "denoise_us": manifest.input.denoise_us,
        "hot_pixels": manifest.input.hot_pixels,
    }
    off = post(client, whole, denoise_us=0, hot_pixels="false", **form).json()
    assert off["input"]["noise"] == {"denoise_us": 0, "hot_pixels": False}
    with alone[0].open("rb") as fh:  # the first window holds exactly this gesture: filtered alike, counted alike
        single = client.post(
            "/v1/models/demo/classify",
            files={"file": (alone[0].name, fh)},
            data={"denoise_us": "0", "hot_pixels": "false"},
        ).json()
    assert off["windows"][0]["sops"] == single["energy"]["sops"]
    assert_problem(post(client, whole, denoise_us=-1, **form), 422)
