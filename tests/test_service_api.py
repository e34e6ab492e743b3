"""The HTTP contract (DESIGN.md section 6) against a real ``python -m service`` without PyTorch.

One server for the module, serving the exported demo, a tampered copy (one byte of its ONNX
flipped) and a copy whose manifest says rate-coded input. Results are checked against running
the exported ONNX directly on the same frames.
"""

from __future__ import annotations

import json
import shutil
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from service_harness import (
    AEDAT4_SAMPLE,
    ROOT,
    Server,
    copy_model,
    demo_repository,
    edit_manifest,
    legacy_copy,
    metric,
    write_npz,
)

import events
from export.manifest import Manifest

PROBLEM = "application/problem+json"
MAX_UPLOAD = 2_000_000
MAX_EVENTS = 500_000
MAX_FILES = 4
PROFILES = ROOT / "models" / "energy_profiles"


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    shared = demo_repository(tmp_path_factory.getbasetemp() / "service-demo")
    repo = tmp_path_factory.mktemp("api-repo")
    shutil.copytree(shared / "demo", repo / "demo")
    tampered = copy_model(repo, "demo", "tampered") / "model.onnx"
    data = bytearray(tampered.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tampered.write_bytes(bytes(data))
    edit_manifest(copy_model(repo, "demo", "ratecoded"), input__encoding="rate-coded")
    legacy_copy(repo, "demo", "legacy")
    edit_manifest(copy_model(repo, "demo", "denoised"), input__denoise_us=2000, input__hot_pixels=True)
    return repo


@pytest.fixture(scope="module")
def server(repo, tmp_path_factory):
    srv = Server(
        repo,
        tmp_path_factory.mktemp("api-log") / "server.log",
        without_torch=True,
        max_queue_delay_ms=50,
        batch_wait="fixed",  # every sample waits 50 ms for company: concurrent requests surely share passes
        max_upload_bytes=MAX_UPLOAD,
        max_events=MAX_EVENTS,
        max_duration_s=5,
        max_files=MAX_FILES,
    )
    try:
        srv.wait_ready()
        yield srv
    finally:
        code = srv.stop()
    assert code == 0, srv.log()[-3000:]
    assert "Traceback" not in srv.log()


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def manifest(repo) -> Manifest:
    return Manifest.read(repo / "demo" / "1")


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("recordings")
    found = {"aedat4": AEDAT4_SAMPLE, "npz": write_npz(folder / "synthetic.npz", 20_000)}
    for path in sorted((ROOT / "examples").glob("*")):
        long = path.name.startswith("long_sequence.")  # ten gestures and their truth: timeline material
        if path.is_file() and path.suffix.lower() not in (".md", ".txt", ".json", ".py") and not long:
            found[path.name] = path
    return found


def classify(client, path: Path, url: str = "/v1/models/demo/classify", **form) -> httpx.Response:
    with path.open("rb") as fh:
        return client.post(url, files={"file": (path.name, fh)}, data={k: str(v) for k, v in form.items()})


def reference(repo: Path, manifest: Manifest, path: Path):
    """Decode, filter and frame as the service must, then run the exported ONNX directly."""
    recording = events.load(path)
    sensor = events.resolve_sensor_size(recording, (manifest.input.sensor_width, manifest.input.sensor_height))
    inp = manifest.input
    spec = events.FramingSpec(manifest.time_steps, inp.width, inp.height, inp.split_by, inp.denoise_us, inp.hot_pixels)
    frames, noise = events.frame_and_report(recording.events, sensor, spec)
    scores, spikes, sops, step_spikes = run_onnx(repo, frames)
    return recording, sensor, noise, scores, spikes, sops, step_spikes


def run_onnx(repo: Path, frames: np.ndarray) -> list[np.ndarray]:
    """The demo's exported graph run directly on one sample's frames."""
    session = ort.InferenceSession(str(repo / "demo" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    outputs = session.run(["scores", "spikes", "sops", "step_spikes"], {"frames": frames[None]})
    return [output[0] for output in outputs]


def assert_problem(response: httpx.Response, status: int, kind: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"] and body["type"]
    if kind:
        assert body["type"] == f"urn:stlsnn:problem:{kind}"
    assert "Traceback" not in response.text and "/tmp" not in response.text and str(ROOT) not in response.text
    assert response.headers["x-request-id"] == body["request_id"]
    return body


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    models = {"demo": "ready", "ratecoded": "ready", "tampered": "failed", "legacy": "ready", "denoised": "ready"}
    assert ready.json()["models"] == models


def test_models_list_reports_runtime_facts_and_the_tampered_model(client, manifest):
    body = client.get("/v1/models").json()
    assert body["default"] == "demo"
    models = {m["name"]: m for m in body["models"]}
    demo = models["demo"]
    assert demo["state"] == "ready" and demo["version"] == 1 and demo["classes"] == manifest.classes
    assert demo["backend"] == "onnx" and demo["device"] == "cpu" and demo["provider"] == "CPUExecutionProvider"
    assert models["tampered"]["state"] == "failed"
    assert "model.onnx sha256 mismatch" in models["tampered"]["error"]


def test_model_detail_is_the_manifest_plus_runtime_facts(client, repo):
    body = client.get("/v1/models/demo").json()
    assert body["manifest"] == json.loads((repo / "demo" / "1" / "manifest.json").read_text())
    assert body["provider"] == "CPUExecutionProvider"
    assert_problem(client.get("/v1/models/nope"), 404, "unknown-model")
    assert_problem(client.get("/v1/models/bad name"), 422)


def test_classify_matches_onnx_run_directly(client, repo, manifest, recordings):
    for name, path in recordings.items():
        response = classify(client, path, top_k=3)
        assert response.status_code == 200, (name, response.text)
        body = response.json()
        recording, sensor, noise, scores, spikes, sops, step_spikes = reference(repo, manifest, path)
        assert body["model"] == {"name": "demo", "version": 1}
        expected_top = np.argsort(-scores, kind="stable")[:3]
        assert [c["index"] for c in body["top_k"]] == expected_top.tolist()
        assert [c["label"] for c in body["top_k"]] == [manifest.classes[i] for i in expected_top]
        assert np.allclose([c["score"] for c in body["top_k"]], scores[expected_top], atol=1e-6)
        assert body["prediction"] == body["top_k"][0]
        assert body["input"] == {
            "filename": path.name,
            "format": recording.format,
            "events": len(recording),
            "duration_us": recording.duration_us,
            "sensor_size": list(sensor),
            "sensor_from_header": recording.sensor_from_header,
            "time_steps": manifest.time_steps,
            "noise": noise.to_dict(),
        }
        layers = body["spikes"]["layers"]
        assert [layer["count"] for layer in layers] == spikes.tolist()
        assert body["spikes"]["total"] == int(spikes.sum())
        for i, (layer, spec) in enumerate(zip(layers, manifest.lif_layers, strict=True)):
            assert layer["name"] == spec.name and layer["neurons"] == spec.neurons
            assert layer["steps"] == step_spikes[:, i].tolist() and sum(layer["steps"]) == layer["count"]
            assert layer["rate"] == pytest.approx(layer["count"] / (spec.neurons * manifest.time_steps))
        assert [layer["sops"] for layer in body["energy"]["layers"]] == sops.tolist()
        assert set(body["timing_ms"]) == {"decode", "frame", "queue", "infer", "total"}
        assert all(v >= 0 for v in body["timing_ms"].values())


def test_a_repository_exported_before_per_step_outputs_still_classifies(client, recordings):
    path = next(iter(recordings.values()))
    # the legacy manifest predates the noise filters, so it frames without them: the same as demo with them off
    legacy = classify(client, path, url="/v1/models/legacy/classify").json()
    current = classify(client, path, denoise_us=0, hot_pixels="false").json()
    assert legacy["prediction"] == current["prediction"] and legacy["energy"]["sops"] == current["energy"]["sops"]
    assert [layer["count"] for layer in legacy["spikes"]["layers"]] == [
        layer["count"] for layer in current["spikes"]["layers"]
    ]
    assert all(layer["steps"] is None for layer in legacy["spikes"]["layers"])
    assert legacy["input"]["noise"]["denoise_us"] == 0 and legacy["input"]["noise"]["hot_pixels"] is False
    assert all(len(layer["steps"]) == 8 for layer in current["spikes"]["layers"])


def test_early_exit_reports_the_decision_step_and_the_energy_up_to_it(client, repo, manifest, recordings):
    path = next(iter(recordings.values()))
    recording = events.load(path)
    sensor = events.resolve_sensor_size(recording, (manifest.input.sensor_width, manifest.input.sensor_height))
    inp = manifest.input
    spec = events.FramingSpec(
        manifest.time_steps, inp.width, inp.height, inp.split_by, inp.denoise_us, inp.hot_pixels
    )  # the model's noise filters too, as the server frames
    frames = events.frame_events(recording.events, sensor, spec)
    session = ort.InferenceSession(str(repo / "demo" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    step_scores, step_sops = (out[0] for out in session.run(["step_scores", "step_sops"], {"frames": frames[None]}))
    for margin in (0.05, 0.3, 1.0):
        body = classify(client, path, early_exit=margin).json()
        for k in range(1, manifest.time_steps + 1):  # the rule, step by step
            top2 = sorted(step_scores[:k].astype(np.float64).mean(axis=0))[-2:]
            if top2[1] - top2[0] >= margin - 1e-12:
                expected_step, reached = k, True
                break
        else:
            expected_step, reached = manifest.time_steps, False
        decision = body["decision"]
        assert (decision["step"], decision["reached"]) == (expected_step, reached)
        assert decision["label"] == manifest.classes[int(np.argmax(step_scores[:expected_step].mean(axis=0)))]
        assert body["energy"]["snn_pj_decided"] == pytest.approx(0.9 * int(step_sops[:expected_step].sum()))
        assert body["energy"]["snn_pj_decided"] <= body["energy"]["snn_pj"] + 1e-6
        assert any("still computed all time steps" in a for a in body["energy"]["assumptions"])
    assert classify(client, path).json()["decision"] is None


def test_early_exit_is_validated_and_needs_a_model_with_per_step_outputs(client, recordings):
    path = next(iter(recordings.values()))
    for bad in (0, -0.1, 1.5):
        assert (
            "early_exit is a margin in (0, 1]" in assert_problem(classify(client, path, early_exit=bad), 422)["detail"]
        )
    body = assert_problem(
        classify(client, path, url="/v1/models/legacy/classify", early_exit=0.5), 422, "model-lacks-step-outputs"
    )
    assert "re-export" in body["detail"] and "'legacy'" in body["detail"]


@pytest.mark.parametrize("profile_name", ["45nm-fp32", "45nm-int8", "45nm-fp32-mac-input"])
def test_energy_follows_the_manifest_and_the_profile(client, manifest, recordings, profile_name):
    profile = json.loads((PROFILES / f"{profile_name}.json").read_text())
    body = classify(client, recordings["aedat4"], energy_profile=profile_name).json()["energy"]
    sops = [layer["sops"] for layer in body["layers"]]
    snn = 0.0
    for count, layer in zip(sops, manifest.synaptic_layers, strict=True):
        if profile["nonbinary_input"] == "mac" and not layer.binary_input:
            snn += profile["e_mac_pj"] * layer.macs * manifest.time_steps
        else:
            snn += profile["e_ac_pj"] * count
    dense = sum(layer.macs for layer in manifest.synaptic_layers)
    assert body["profile"] == profile_name
    assert body["sops"] == sum(sops)
    assert body["dense_macs"] == dense
    assert body["snn_pj"] == pytest.approx(snn)
    assert body["ann_pj"] == pytest.approx(profile["e_mac_pj"] * dense)
    assert body["ratio"] == pytest.approx(body["ann_pj"] / body["snn_pj"])
    assert body["assumptions"] == profile["assumptions"]
    assert any("excludes memory" in line for line in body["assumptions"])
    assert body["measured_gpu_j"] is None and body["measured_gpu"].startswith("unavailable")


def test_default_profile_is_45nm_fp32_as_in_design(client, recordings):
    energy = classify(client, recordings["npz"]).json()["energy"]
    assert (energy["profile"], energy["e_ac_pj"], energy["e_mac_pj"]) == ("45nm-fp32", 0.9, 4.6)
    assert energy["snn_pj"] == pytest.approx(0.9 * energy["sops"])


def test_default_route_uses_the_default_model(client, recordings):
    named = classify(client, recordings["aedat4"]).json()
    default = classify(client, recordings["aedat4"], url="/v1/classify").json()
    assert default["model"] == named["model"] and default["top_k"] == named["top_k"]
    assert default["spikes"] == named["spikes"]


def test_several_files_give_one_result_each_in_order(client, recordings, tmp_path):
    paths = [recordings["aedat4"], recordings["npz"], write_npz(tmp_path / "other.npz", 5_000, seed=3)]
    handles = [p.open("rb") for p in paths]
    try:
        uploads = [("files", (p.name, h)) for p, h in zip(paths, handles, strict=True)]
        response = client.post("/v1/classify", files=uploads)
    finally:
        for handle in handles:
            handle.close()
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["input"]["filename"] for r in results] == [p.name for p in paths]
    singles = [classify(client, p).json() for p in paths]
    assert [r["spikes"] for r in results] == [s["spikes"] for s in singles]


def test_concurrent_requests_share_forward_passes(server, client, recordings):
    before = client.get("/metrics").text
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda _: classify(client, recordings["npz"]).status_code, range(16)))
    assert statuses == [200] * 16
    after = client.get("/metrics").text

    def delta(name, **labels):
        return metric(after, name, model="demo", **labels) - metric(before, name, model="demo", **labels)

    assert delta("stlsnn_batch_size_sum") == 16
    batches, single = delta("stlsnn_batch_size_count"), delta("stlsnn_batch_size_bucket", le="1.0")
    assert batches < 16 and single < batches, "some forward pass must have carried more than one request"
    assert metric(after, "stlsnn_requests_total", model="demo", status="200") >= 16


def test_parameter_errors_are_422_problems(client, recordings):
    path = recordings["aedat4"]
    for form in ({"top_k": 0}, {"top_k": 11}, {"top_k": "many"}, {"sensor_size": "12"}, {"energy_profile": "7nm"}):
        assert_problem(classify(client, path, **form), 422)
    assert_problem(client.post("/v1/classify", data={"top_k": "1"}), 422)
    with path.open("rb") as a, path.open("rb") as b:
        both = client.post("/v1/classify", files=[("file", ("a", a)), ("files", ("b", b))])
    assert_problem(both, 422)


def noisy_recording(path: Path) -> tuple[Path, np.ndarray, int]:
    """An npz of uniform background activity (about 12 Hz a pixel) plus one hot pixel at (40, 50):
    the path, the events and how many of them the hot pixel fired."""
    rng = np.random.default_rng(16)
    n, hot = 20_000, 1_500
    t = np.sort(rng.integers(1_000_000, 1_100_000, n + hot))
    x = np.concatenate([rng.integers(0, 128, n), np.full(hot, 40)])
    y = np.concatenate([rng.integers(0, 128, n), np.full(hot, 50)])
    order = rng.permutation(n + hot)  # the hot pixel's events spread over the whole recording
    recording = events.make_events(t, x[order], y[order], rng.integers(0, 2, n + hot))
    np.savez(path, t=recording["t"], x=recording["x"], y=recording["y"], p=recording["p"])
    at_hot = int(((recording["x"] == 40) & (recording["y"] == 50)).sum())
    return path, recording, at_hot


def dv_background_activity(recording: np.ndarray, window_us: int) -> np.ndarray:
    """dv-processing's BackgroundActivityNoiseFilter (the convention ours matches past the first window)."""
    import datetime

    import dv_processing as dv

    store = dv.EventStore()
    for t, x, y, p in recording.tolist():
        store.push_back(t, x, y, bool(p))
    noise_filter = dv.noise.BackgroundActivityNoiseFilter((128, 128), datetime.timedelta(microseconds=window_us))
    noise_filter.accept(store)
    out = noise_filter.generateEvents().numpy()
    return events.make_events(out["timestamp"], out["x"], out["y"], out["polarity"])


def test_noise_filters_are_the_models_and_a_request_overrides_them(client, repo, manifest, tmp_path):
    path, recording, at_hot = noisy_recording(tmp_path / "noisy.npz")
    without_hot = recording[(recording["x"] != 40) | (recording["y"] != 50)]
    survivors = dv_background_activity(without_hot, 2000)
    plain = events.FramingSpec(manifest.time_steps, manifest.input.width, manifest.input.height)
    expected_scores = run_onnx(repo, events.frame_events(survivors, (128, 128), plain))[0]
    filtered = {
        "denoise_us": 2000,
        "hot_pixels": True,
        "hot_pixels_found": 1,
        "removed": {"hot_pixels": at_hot, "background_activity": len(without_hot) - len(survivors)},
    }
    unfiltered = {
        "denoise_us": 0,
        "hot_pixels": False,
        "hot_pixels_found": 0,
        "removed": {"hot_pixels": 0, "background_activity": 0},
    }
    by_default = classify(client, path, url="/v1/models/denoised/classify", top_k=10).json()
    overridden = classify(client, path, top_k=10, denoise_us=2000, hot_pixels="true").json()
    turned_off = classify(client, path, url="/v1/models/denoised/classify", denoise_us=0, hot_pixels="false")
    for body in (by_default, overridden):
        assert body["input"]["noise"] == filtered
        scores = {c["index"]: c["score"] for c in body["top_k"]}
        assert np.allclose([scores[i] for i in range(10)], expected_scores, atol=1e-6)
    assert turned_off.json()["input"]["noise"] == unfiltered
    assert turned_off.json()["input"]["events"] == len(recording)
    unfiltered_scores = run_onnx(repo, events.frame_events(recording, (128, 128), plain))[0]
    assert turned_off.json()["prediction"]["score"] == pytest.approx(unfiltered_scores.max(), abs=1e-6)


def test_noise_parameters_out_of_range_are_422_problems(client, recordings):
    path = recordings["aedat4"]
    for form in ({"denoise_us": -1}, {"denoise_us": 10**8}, {"denoise_us": "2ms"}, {"hot_pixels": "maybe"}):
        assert_problem(classify(client, path, **form), 422)


def test_undecodable_files_are_400_and_unknown_formats_415(client, recordings, tmp_path):
    sample = AEDAT4_SAMPLE.read_bytes()
    (tmp_path / "truncated.aedat4").write_bytes(sample[: len(sample) // 2])
    (tmp_path / "empty.aedat4").write_bytes(b"")
    (tmp_path / "garbage.bin").write_bytes(np.random.default_rng(1).bytes(5000))
    few = write_npz(tmp_path / "few.npz", 3)
    assert_problem(classify(client, tmp_path / "truncated.aedat4"), 400, "undecodable-file")
    assert_problem(classify(client, tmp_path / "empty.aedat4"), 400)
    assert_problem(classify(client, tmp_path / "garbage.bin", format="aedat4"), 400)
    assert_problem(classify(client, tmp_path / "garbage.bin", format="aedat2"), 400)  # decoded on the loop
    assert_problem(classify(client, few), 400)
    assert_problem(classify(client, recordings["aedat4"], sensor_size="10x10"), 400)
    assert_problem(classify(client, tmp_path / "garbage.bin"), 415, "unknown-format")
    assert_problem(classify(client, recordings["aedat4"], format="mp4"), 415, "unknown-format")
    assert_problem(classify(client, recordings["aedat4"], url="/v1/models/ratecoded/classify"), 415)


def test_limits_are_413_without_reading_the_whole_body(client, recordings, tmp_path):
    big = tmp_path / "big.aedat4"
    big.write_bytes(AEDAT4_SAMPLE.read_bytes() * (MAX_UPLOAD // AEDAT4_SAMPLE.stat().st_size + 1))
    assert_problem(classify(client, big), 413, "upload-too-large")

    def chunks():  # a well-formed multipart upload sent chunked, so no Content-Length tells the size
        yield b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.aedat4"\r\n\r\n'
        for _ in range(64):
            yield b"\0" * 65536

    streamed = client.post(
        "/v1/classify", content=chunks(), headers={"content-type": "multipart/form-data; boundary=xyz"}
    )
    assert_problem(streamed, 413, "upload-too-large")
    n = MAX_EVENTS + 1  # a small upload that decodes to too many events: zeros compress well
    zeros = np.zeros(n, dtype=np.uint16)
    np.savez_compressed(tmp_path / "many.npz", t=np.arange(n), x=zeros, y=zeros, p=zeros.astype(np.uint8))
    assert_problem(classify(client, tmp_path / "many.npz"), 413, "recording-too-large")
    long = write_npz(tmp_path / "long.npz", 1000, duration_us=60_000_000)
    assert_problem(classify(client, long), 413, "recording-too-large")
    handles = [recordings["npz"].open("rb") for _ in range(MAX_FILES + 1)]
    try:
        many = client.post("/v1/classify", files=[("files", ("r.npz", h)) for h in handles])
    finally:
        for handle in handles:
            handle.close()
    assert_problem(many, 413, "too-many-files")


def raw_request(server, head: bytes, body_parts: list[bytes]) -> bytes:
    """Send ``head`` then ``body_parts`` and read the reply without ever finishing the body.

    A server that read the whole body before answering would wait for the rest and the read
    would time out (30 s) instead of returning the 413.
    """
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head)
        for part in body_parts:
            sock.sendall(part)
        reply = b""
        while b"\r\n\r\n" not in reply:
            data = sock.recv(65536)
            if not data:
                break
            reply += data
    return reply


def test_a_declared_length_over_the_limit_is_answered_with_no_body_sent(server):
    head = (
        b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=xyz\r\n"
        b"Content-Length: %d\r\n\r\n" % (MAX_UPLOAD + 1)
    )
    reply = raw_request(server, head, [])
    assert reply.startswith(b"HTTP/1.1 413 "), reply[:200]
    assert b"connection: close" in reply.lower()


def test_a_chunked_upload_is_answered_once_it_crosses_the_limit_though_it_never_ends(server):
    head = (
        b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=xyz\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    part = b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.aedat4"\r\n\r\n'
    chunk = b"\0" * 65536
    parts = [b"%x\r\n%s\r\n" % (len(part), part)] + [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * (
        MAX_UPLOAD // len(chunk) + 2
    )
    reply = raw_request(server, head, parts)  # no terminating 0-length chunk
    assert reply.startswith(b"HTTP/1.1 413 "), reply[:200]


def test_server_still_healthy_after_bad_input(client, recordings):
    assert client.get("/healthz").status_code == 200
    assert classify(client, recordings["aedat4"]).status_code == 200


def test_unknown_routes_and_broken_models_are_problems(client, recordings):
    assert_problem(client.get("/v2/nothing"), 404)
    body = assert_problem(classify(client, recordings["aedat4"], url="/v1/models/tampered/classify"), 503)
    assert "sha256 mismatch" in body["detail"]
    assert_problem(classify(client, recordings["aedat4"], url="/v1/models/ghost/classify"), 404, "unknown-model")


def test_request_ids_are_echoed_and_logged(server, client, recordings):
    assert client.get("/healthz", headers={"X-Request-ID": "trace-42"}).headers["x-request-id"] == "trace-42"
    replaced = client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"}).headers["x-request-id"]
    assert replaced != "bad id\twith spaces" and len(replaced) == 32
    response = classify(client, recordings["aedat4"])
    rid = response.headers["x-request-id"]
    lines = server.wait_for_log(lambda line: line.get("request_id") == rid and line["msg"] == "request")
    assert len(lines) == 1
    assert lines[0]["status"] == 200 and lines[0]["model"] == "demo" and lines[0]["path"] == "/v1/models/demo/classify"


def test_cors_is_off_by_default(client):
    response = client.options(
        "/v1/classify", headers={"Origin": "http://elsewhere.test", "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in response.headers


def test_openapi_documents_problem_responses(client):
    spec = client.get("/openapi.json").json()
    classify_op = spec["paths"]["/v1/models/{name}/classify"]["post"]
    for status in ("400", "404", "413", "415", "422", "503"):
        assert PROBLEM in classify_op["responses"][status]["content"], status
    assert "ProblemDetails" in spec["components"]["schemas"]
    assert client.get("/docs").status_code == 200


@pytest.fixture(scope="module")
def healthy_server(repo, tmp_path_factory):
    """A server of the repository without the tampered model, whose 503s are the contract, not a fault."""
    healthy = tmp_path_factory.mktemp("healthy-repo")
    for name in ("demo", "legacy"):
        shutil.copytree(repo / name, healthy / name)
    srv = Server(healthy, tmp_path_factory.mktemp("healthy-log") / "server.log", without_torch=True, max_duration_s=5)
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


def test_schemathesis_finds_no_server_error(healthy_server):
    import subprocess

    server = healthy_server

    cli = Path(sys.executable).with_name("schemathesis")  # installed beside the interpreter running the tests
    done = subprocess.run(
        [str(cli), "run", f"{server.url}/openapi.json", "--checks", "not_a_server_error", "--max-examples", "15"],
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
