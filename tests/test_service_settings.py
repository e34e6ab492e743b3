"""What the README promises of each setting, checked in-process (``create_app`` + ``TestClient``).

The repository holds the exported demo twice (versions 1 and 2 of ``demo``) and a copy named
``second``; each test group starts an app with the settings it is about. Expected values come
from the README's tables and DESIGN.md section 6, not from the service's code.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from fastapi.testclient import TestClient
from service_harness import copy_model, demo_repository, edit_manifest, write_npz

from service.app import create_app
from service.settings import Settings

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    shared = demo_repository(tmp_path_factory.getbasetemp() / "service-demo")
    repo = tmp_path_factory.mktemp("settings-repo")
    shutil.copytree(shared / "demo" / "1", repo / "demo" / "1")
    shutil.copytree(shared / "demo" / "1", repo / "demo" / "2")
    edit_manifest(repo / "demo" / "2", version=2)
    copy_model(repo, "demo", "second")
    return repo


@pytest.fixture(scope="module")
def upload(tmp_path_factory) -> Path:
    return write_npz(tmp_path_factory.mktemp("settings-upload") / "r.npz", 3000)  # inflates to 39 000 bytes


@contextmanager
def serving(repo: Path, **settings) -> Iterator[TestClient]:
    """A client of an app over ``repo`` with ``settings``, once its models are loaded."""
    app = create_app(Settings(model_repository=repo, nvml=False, **settings))
    with TestClient(app, raise_server_exceptions=False) as client:
        assert app.state.context.registry.loaded.wait(120)
        yield client


def classify(client: TestClient, content: bytes, url: str = "/v1/classify", headers=None, **form):
    files = {"file": ("r.npz", io.BytesIO(content))}
    return client.post(url, files=files, data={k: str(v) for k, v in form.items()}, headers=headers or {})


def assert_problem(response, status: int, kind: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["type"] == f"urn:stlsnn:problem:{kind}"
    return body


@pytest.fixture(scope="module")
def keyed(repo) -> Iterator[TestClient]:
    """API keys on, a server-wide energy profile, a small inflation cap; ``second`` is the default."""
    with serving(
        repo, api_keys="k1,k2", energy_profile="45nm-int8", max_decompressed_bytes=100_000, default_model="second"
    ) as client:
        yield client


AUTH = {"Authorization": "Bearer k2"}


def test_api_keys_guard_v1_only_and_leave_docs_health_and_metrics_open(keyed):
    for path in ("/docs", "/openapi.json", "/healthz", "/readyz", "/metrics"):
        assert keyed.get(path).status_code == 200, path
    assert_problem(keyed.get("/v1/models"), 401, "unauthorized")
    assert_problem(keyed.get("/v1/models", headers={"Authorization": "Bearer k3"}), 401, "unauthorized")
    assert keyed.get("/v1/models", headers=AUTH).status_code == 200


def test_the_newest_version_is_served_and_the_default_model_is_the_configured_one(keyed, upload):
    versions = {m["name"]: m["version"] for m in keyed.get("/v1/models", headers=AUTH).json()["models"]}
    assert versions == {"demo": 2, "second": 2}
    assert classify(keyed, upload.read_bytes(), headers=AUTH).json()["model"] == {"name": "second", "version": 2}


def test_the_server_energy_profile_is_the_default_and_a_request_may_name_another(keyed, upload):
    assert classify(keyed, upload.read_bytes(), headers=AUTH).json()["energy"]["profile"] == "45nm-int8"
    chosen = classify(keyed, upload.read_bytes(), headers=AUTH, energy_profile="45nm-fp16")
    assert chosen.json()["energy"]["profile"] == "45nm-fp16"


def test_the_inflation_cap_applies_to_uploads(keyed, tmp_path):
    big = write_npz(tmp_path / "big.npz", 20_000)  # t alone inflates to 160 000 bytes, over the 100 000 cap
    assert big.stat().st_size < 100_000
    assert_problem(classify(keyed, big.read_bytes(), headers=AUTH), 413, "recording-too-large")


class Planted:
    """Unpickling this creates ``path``: proof that a loader ran pickle."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_object_arrays_are_refused_and_never_unpickled(keyed, tmp_path):
    marker = tmp_path / "unpickled"
    planted = np.array([Planted(marker)] * 4, dtype=object)
    npy, npz = io.BytesIO(), io.BytesIO()
    np.save(npy, planted, allow_pickle=True)
    small = np.zeros(4, dtype=np.uint16)
    np.savez(npz, t=planted, x=small, y=small, p=small.astype(np.uint8))
    for content in (npy.getvalue(), npz.getvalue()):
        assert_problem(classify(keyed, content, headers=AUTH), 400, "undecodable-file")
    assert not marker.exists()


def test_request_ids_up_to_128_plain_characters_are_kept_others_replaced(keyed):
    kept = "a1._:-" + "x" * 122
    assert keyed.get("/healthz", headers={"X-Request-ID": kept}).headers["x-request-id"] == kept
    for refused in ("x" * 129, "has space", "semi;colon", "slash/"):
        echoed = keyed.get("/healthz", headers={"X-Request-ID": refused}).headers["x-request-id"]
        assert echoed != refused and 1 <= len(echoed) <= 128


README_SERIES = (
    "stlsnn_requests_total",
    "stlsnn_request_seconds",
    "stlsnn_batch_size",
    "stlsnn_queue_depth",
    "stlsnn_decode_seconds",
    "stlsnn_frame_seconds",
    "stlsnn_inference_seconds",
    "stlsnn_queue_seconds",
    "stlsnn_spikes_per_request",
    "stlsnn_cancelled_samples_total",
    "stlsnn_model_ready",
    "stlsnn_http_requests_total",
)


def test_metrics_has_every_series_the_readme_lists(keyed, upload):
    assert classify(keyed, upload.read_bytes(), headers=AUTH).status_code == 200
    text = keyed.get("/metrics").text
    names = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    missing = [s for s in README_SERIES if s not in names and s.removesuffix("_total") not in names]
    assert not missing, missing
    assert 'stlsnn_requests_total{model="second",status="200"}' in text
    assert 'stlsnn_model_ready{model="demo"} 1.0' in text


def test_a_pinned_version_is_served_and_an_unknown_one_fails_that_model_only(repo, upload):
    with serving(repo, model_versions="demo=1,second=9", default_model="second") as client:
        models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
        assert (models["demo"]["version"], models["demo"]["state"]) == (1, "ready")
        assert models["second"]["state"] == "failed" and "version 9 not found" in models["second"]["error"]
        # the configured default does not serve: the first model that does (by name) answers
        assert classify(client, upload.read_bytes()).json()["model"] == {"name": "demo", "version": 1}
        assert_problem(
            classify(client, upload.read_bytes(), url="/v1/models/second/classify"), 503, "model-unavailable"
        )


def test_a_request_not_answered_in_time_is_503_with_retry_after(repo, upload):
    # every sample waits up to 60 s for company, far past the 0.2 s request timeout
    settings = {"max_queue_delay_ms": 60_000, "batch_wait": "fixed", "request_timeout_s": 0.2, "retry_after_s": 7}
    with serving(repo, **settings) as client:
        response = classify(client, upload.read_bytes())
    assert_problem(response, 503, "timeout")
    assert response.headers["retry-after"] == "7"


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="this machine has CUDA")
def test_device_cuda_without_cuda_fails_the_models_with_a_clear_message(repo):
    with serving(repo, device="cuda") as client:
        assert client.get("/readyz").status_code == 503
        models = client.get("/v1/models").json()["models"]
    assert {m["state"] for m in models} == {"failed"}
    assert all("device 'cuda' requested" in m["error"] for m in models)
