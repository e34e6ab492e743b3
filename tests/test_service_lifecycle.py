"""Serving under pressure and at the edges: API keys, CORS, overload, disconnects, SIGTERM, TorchScript.

The server here holds every sample 1.5 s waiting for a batch partner and queues at most one,
so "in flight", "queue full" and "client gone" are states a test can reach deterministically.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from service_harness import AEDAT4_SAMPLE, ROOT, WITHOUT_TORCH, Server, demo_repository, metric

import events
from export.manifest import Manifest

KEY = "key-two"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    shared = demo_repository(tmp_path_factory.getbasetemp() / "service-demo")
    repo = tmp_path_factory.mktemp("lifecycle-repo")
    shutil.copytree(shared / "demo", repo / "demo")
    return repo


def start(repo: Path, tmp_path_factory, name: str, **settings) -> Server:
    server = Server(repo, tmp_path_factory.mktemp(name) / "server.log", **settings)
    server.wait_ready()
    return server


@pytest.fixture(scope="module")
def server(repo, tmp_path_factory):
    srv = start(
        repo,
        tmp_path_factory,
        "slow",
        api_keys=f"key-one,{KEY}",
        cors_origins="http://app.test",
        max_batch_size=2,
        max_queue_size=1,
        max_queue_delay_ms=1500,
        batch_wait="fixed",
    )
    yield srv
    srv.stop()


def post_sample(url: str, timeout: float = 30, headers: dict | None = None) -> httpx.Response:
    with AEDAT4_SAMPLE.open("rb") as fh:
        return httpx.post(
            url + "/v1/classify", files={"file": (AEDAT4_SAMPLE.name, fh)}, headers=headers or AUTH, timeout=timeout
        )


def in_background(fn, *args, **kwargs) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def run():
        try:
            out["response"] = fn(*args, **kwargs)
        except Exception as exc:
            out["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def wait_for_metric(url: str, name: str, value: float, timeout_s: float = 30, **labels) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if metric(httpx.get(url + "/metrics").text, name, **labels) == value:
            return
        time.sleep(0.05)
    raise AssertionError(f"{name}{labels} never reached {value}")


def test_api_key_is_required_on_v1_but_not_on_health(server):
    assert httpx.get(server.url + "/v1/models").status_code == 401
    wrong = httpx.get(server.url + "/v1/models", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert wrong.headers["content-type"].startswith("application/problem+json")
    assert post_sample(server.url, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert httpx.get(server.url + "/v1/models", headers=AUTH).status_code == 200
    for path in ("/healthz", "/readyz", "/metrics"):
        assert httpx.get(server.url + path).status_code == 200


def test_cors_allows_only_the_configured_origin(server):
    def preflight(origin):
        headers = {"Origin": origin, "Access-Control-Request-Method": "POST"}
        return httpx.options(server.url + "/v1/classify", headers=headers).headers

    assert preflight("http://app.test")["access-control-allow-origin"] == "http://app.test"
    assert "access-control-allow-origin" not in preflight("http://evil.test")


def test_full_queue_is_503_with_retry_after_not_a_hang(server):
    thread, first = in_background(post_sample, server.url)
    wait_for_metric(server.url, "stlsnn_queue_depth", 1, model="demo")
    second = post_sample(server.url)
    assert second.status_code == 503
    assert int(second.headers["retry-after"]) >= 1
    assert second.json()["type"] == "urn:stlsnn:problem:overloaded"
    thread.join(30)
    assert first["response"].status_code == 200


def test_a_client_that_disconnects_leaves_no_work_behind(server):
    before = metric(httpx.get(server.url + "/metrics").text, "stlsnn_batch_size_count", model="demo")
    with pytest.raises(httpx.ReadTimeout):
        post_sample(server.url, timeout=0.5)
    wait_for_metric(server.url, "stlsnn_cancelled_samples_total", 1, model="demo")
    after = metric(httpx.get(server.url + "/metrics").text, "stlsnn_batch_size_count", model="demo")
    assert after == before, "the abandoned sample must not reach the model"
    assert post_sample(server.url).status_code == 200


def test_sigterm_lets_in_flight_requests_finish(server):
    thread, flight = in_background(post_sample, server.url)
    wait_for_metric(server.url, "stlsnn_queue_depth", 1, model="demo")
    server.process.send_signal(15)
    thread.join(30)
    assert "error" not in flight, flight
    assert flight["response"].status_code == 200
    assert flight["response"].json()["prediction"]["label"]
    assert server.process.wait(30) == 0
    assert "Traceback" not in server.log()


def test_torchscript_backend_matches_onnx(repo, tmp_path_factory):
    srv = start(repo, tmp_path_factory, "torchscript", backend="torchscript", device="cpu")
    try:
        model = httpx.get(srv.url + "/v1/models/demo").json()
        body = post_sample(srv.url).json()
    finally:
        assert srv.stop() == 0
    assert model["backend"] == "torchscript" and model["device"] == "cpu"
    manifest = Manifest.read(repo / "demo" / "1")
    recording = events.load(AEDAT4_SAMPLE)
    inp = manifest.input  # the model's framing spec, noise filters included, as the server frames
    spec = events.FramingSpec(manifest.time_steps, inp.width, inp.height, inp.split_by, inp.denoise_us, inp.hot_pixels)
    frames = events.frame_events(recording.events, recording.sensor_size, spec)
    session = ort.InferenceSession(str(repo / "demo" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    scores, spikes, sops = session.run(["scores", "spikes", "sops"], {"frames": frames[None]})
    assert [layer["count"] for layer in body["spikes"]["layers"]] == spikes[0].tolist()
    assert [layer["sops"] for layer in body["energy"]["layers"]] == sops[0].tolist()
    top = body["top_k"][0]
    assert np.isclose(top["score"], scores[0].max(), atol=1e-5)


def test_a_repository_where_nothing_loads_is_never_ready(repo, tmp_path_factory):
    broken = tmp_path_factory.mktemp("broken-repo")
    shutil.copytree(repo / "demo", broken / "demo")
    (broken / "demo" / "1" / "model.onnx").write_bytes(b"not an onnx graph")
    srv = Server(broken, tmp_path_factory.mktemp("broken") / "server.log")
    try:
        models = loaded_models(srv)
        assert models[0]["state"] == "failed" and models[0]["error"].startswith("model.onnx sha256 mismatch")
        ready = httpx.get(srv.url + "/readyz")
        assert ready.status_code == 503 and int(ready.headers["retry-after"]) > 0
        assert ready.json()["models"] == {"demo": "failed"}
        refused = post_sample(srv.url, headers={})
        assert refused.status_code == 503 and "sha256 mismatch" in refused.json()["detail"]
        assert httpx.get(srv.url + "/healthz").status_code == 200
    finally:
        assert srv.stop() == 0


def loaded_models(server: Server) -> list[dict]:
    """``/v1/models`` once the server answers and no model is still loading."""
    for _ in range(300):
        try:
            models = httpx.get(server.url + "/v1/models", timeout=5).json()["models"]
            if models and all(m["state"] != "loading" for m in models):
                return models
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("models never finished loading")


def test_missing_repository_without_torch_exits_with_a_clear_message(tmp_path):
    env = {"STLSNN_MODEL_REPOSITORY": str(tmp_path / "absent"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", WITHOUT_TORCH], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 2
    assert "does not exist" in done.stderr and "python -m export" in done.stderr


def test_sigterm_drains_every_queued_sample_and_refuses_new_connections_meanwhile(repo, tmp_path_factory):
    # three samples wait 8 s for a batch partner: the drain is long enough to watch
    srv = start(repo, tmp_path_factory, "drain", max_batch_size=8, max_queue_delay_ms=8000, batch_wait="fixed")
    try:
        flights = [in_background(post_sample, srv.url, headers={}) for _ in range(3)]
        wait_for_metric(srv.url, "stlsnn_queue_depth", 3, model="demo")
        srv.process.send_signal(15)
        refused = False
        deadline = time.monotonic() + 30
        while not refused and time.monotonic() < deadline:
            try:
                httpx.get(srv.url + "/healthz", timeout=2)
            except httpx.ConnectError:
                refused = True
            time.sleep(0.05)
        assert refused, "a new connection was still accepted while draining"
        assert all(thread.is_alive() for thread, _ in flights), "the drain was over before the refusal was seen"
        for thread, flight in flights:
            thread.join(30)
            assert "error" not in flight, flight
            assert flight["response"].status_code == 200
        assert srv.process.wait(30) == 0
    finally:
        srv.stop()


def test_the_drain_is_bounded_by_the_graceful_shutdown_setting(repo, tmp_path_factory):
    # the sample would wait 120 s for a partner; the drain may last 1 s
    srv = start(
        repo, tmp_path_factory, "bounded", max_queue_delay_ms=120_000, batch_wait="fixed", graceful_shutdown_s=1
    )
    try:
        thread, flight = in_background(post_sample, srv.url, headers={})
        wait_for_metric(srv.url, "stlsnn_queue_depth", 1, model="demo")
        srv.process.send_signal(15)
        assert srv.process.wait(60) is not None  # long before the 120 s the sample would need
        thread.join(30)
        assert "response" not in flight or flight["response"].status_code != 200
        assert "timeout graceful shutdown exceeded" in srv.log()
    finally:
        srv.stop()
