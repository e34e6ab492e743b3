"""Classify requests in-process (``service.routes.classify``): the checks a request passes, the form
fields reaching decoding and framing, where decoding runs, and what an overloaded model answers.

The demo model has 10 classes, 8 time steps and noise filters on (2000 us, hot pixels); the server
here takes at most 2 files per request and asks overloaded clients to retry after 2 s. Requests with
a Content-Length take the fast path (announced to the batcher on arrival), chunked ones FastAPI's
handler.
"""

from __future__ import annotations

import io
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from service_harness import demo_repository, legacy_copy
from test_classify_fast_path import CONTENT_TYPE, EVT3, form, over_the_loops_budget

from service.app import create_app
from service.routes.classify import _safe_name
from service.settings import Settings

PROBLEM = "urn:stlsnn:problem:"
NO_FILTERS = (("denoise_us", "0"), ("hot_pixels", "false"))


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[TestClient, object]]:
    shared = demo_repository(tmp_path_factory.getbasetemp() / "service-demo")
    repo = tmp_path_factory.mktemp("classify-requests")
    shutil.copytree(shared / "demo", repo / "demo")
    legacy_copy(repo, "demo", "legacy")
    app = create_app(Settings(model_repository=repo, nvml=False, max_files=2, retry_after_s=2))
    with TestClient(app, raise_server_exceptions=False) as client:
        assert app.state.context.registry.loaded.wait(120)
        yield client, app.state.context


def post(client: TestClient, *fields, url: str = "/v1/classify", chunked: bool = False):
    body = form(*fields)
    return client.post(url, content=iter([body]) if chunked else body, headers=CONTENT_TYPE)


def problem(response, status: int, kind: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == PROBLEM + kind
    return body["detail"]


def npz(times: list[int]) -> bytes:
    buffer, n = io.BytesIO(), len(times)
    coordinates = (np.arange(n) * 7 % 128).astype(np.uint16)
    np.savez(buffer, t=np.array(times, np.int64), x=coordinates, y=coordinates, p=(np.arange(n) % 2).astype(np.uint8))
    return buffer.getvalue()


def test_up_to_max_files_are_classified_and_more_is_413_naming_both_counts(served):
    client, _ = served
    assert len(post(client, ("files", EVT3), ("files", EVT3)).json()["results"]) == 2
    detail = problem(post(client, ("files", EVT3), ("files", EVT3), ("files", EVT3)), 413, "too-many-files")
    assert detail == "3 files, limit 2"


def test_top_k_runs_from_one_to_the_number_of_classes(served):
    client, _ = served
    assert len(post(client, ("file", EVT3), ("top_k", "10")).json()["top_k"]) == 10
    assert len(post(client, ("file", EVT3), ("top_k", "1")).json()["top_k"]) == 1
    for top_k in ("0", "11"):
        detail = problem(post(client, ("file", EVT3), ("top_k", top_k)), 422, "invalid-parameters")
        assert detail == "top_k must be between 1 and 10"


@pytest.mark.parametrize("chunked", [False, True])
def test_a_named_format_is_checked_and_used_as_is(served, chunked):
    client, _ = served
    assert problem(post(client, ("file", EVT3), ("format", "nope"), chunked=chunked), 415, "unknown-format")
    problem(post(client, ("file", EVT3), ("format", "evt2"), chunked=chunked), 400, "undecodable-file")
    assert post(client, ("file", EVT3), ("format", "evt3"), chunked=chunked).json()["input"]["format"] == "evt3"


def test_the_sensor_size_override_and_noise_filters_reach_the_framing(served):
    client, _ = served
    default = post(client, ("file", EVT3)).json()["input"]
    assert default["noise"]["denoise_us"] == 2000 and default["noise"]["hot_pixels"] is True  # the model's
    chosen = post(client, ("file", EVT3), ("sensor_size", "1280x720"), *NO_FILTERS).json()["input"]
    assert chosen["sensor_size"] == [1280, 720] and chosen["sensor_from_header"] is False
    assert chosen["noise"]["denoise_us"] == 0 and chosen["noise"]["hot_pixels"] is False
    only_hot = post(client, ("file", EVT3), ("hot_pixels", "false")).json()["input"]["noise"]
    assert only_hot["denoise_us"] == 2000 and only_hot["hot_pixels"] is False


def test_an_early_exit_needs_a_model_with_per_step_outputs(served):
    client, _ = served
    decision = post(client, ("file", EVT3), ("early_exit", "0.5")).json()["decision"]
    assert set(decision) == {"step", "margin", "reached", "index", "label"}
    assert post(client, ("file", EVT3)).json()["decision"] is None
    detail = problem(
        post(client, ("file", EVT3), ("early_exit", "0.5"), url="/v1/models/legacy/classify"),
        422,
        "model-lacks-step-outputs",
    )
    assert detail.startswith("early_exit needs per-step outputs, and model 'legacy' version 1")


def test_a_file_that_fails_to_decode_is_named_when_the_request_has_several(served):
    client, _ = served
    garbage = b"\x00\x01 matches no format" * 10
    several = post(client, ("files", EVT3), ("files", ("C:\\uploads\\dir/bad.raw", garbage)))
    assert problem(several, 415, "unknown-format").startswith("bad.raw: ")
    one = problem(post(client, ("file", ("bad.raw", garbage))), 415, "unknown-format")
    assert one.startswith("unknown: content matches none of")  # no file name before it


def test_the_duration_limit_is_max_duration_s_to_the_microsecond(served):
    client, _ = served  # 600 s by default
    times = [*range(0, 19_000, 1000), 600_000_000]
    assert post(client, ("file", ("at.npz", npz(times))), *NO_FILTERS).status_code == 200
    over = problem(
        post(client, ("file", ("over.npz", npz([*times[:-1], 600_000_001]))), *NO_FILTERS), 413, "recording-too-large"
    )
    assert "recording lasts 600.000 s, over the 600 s limit" in over


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        (None, None),
        ("", None),
        ("r.evt3.raw", "r.evt3.raw"),
        ("/home/me/r.npz", "r.npz"),
        ("C:\\Users\\me\\r.npz", "r.npz"),
        ("a/b\\c.aedat4", "c.aedat4"),
        ("/", None),
        ("x" * 300, "x" * 200),
    ],
)
def test_a_file_name_is_reported_without_its_folders_and_at_most_200_characters(name, safe):
    assert _safe_name(name) == safe


class CountingPool:
    """The decode thread pool, counting the uploads handed to it."""

    def __init__(self, pool) -> None:
        self.pool, self.handed = pool, 0

    def submit(self, fn, *args):
        self.handed += 1
        return self.pool.submit(fn, *args)


@pytest.fixture
def pool(served, monkeypatch) -> CountingPool:
    _, context = served
    counting = CountingPool(context.decode_pool)
    monkeypatch.setattr(context, "decode_pool", counting)
    return counting


SWIPE_UP = (
    "swipe_up.evt2.raw",
    (Path(__file__).resolve().parent.parent / "examples" / "swipe_up.evt2.raw").read_bytes(),
)
SWIPE_LEFT = (
    "swipe_left.aedat4",
    (Path(__file__).resolve().parent.parent / "examples" / "swipe_left.aedat4").read_bytes(),
)


@pytest.mark.parametrize(
    ("files", "busy", "chunked", "handed", "model"),
    [
        ([EVT3], False, False, 0, "demo"),  # small record format, announced on arrival
        ([EVT3], False, True, 0, "demo"),  # not announced on arrival, but nothing else is pending
        ([EVT3], True, False, 0, "demo"),  # others pending, but announced on arrival: the batcher waits for it
        ([EVT3], True, False, 0, "legacy"),  # ... announced to the model the request names
        ([EVT3], True, True, 1, "demo"),  # others pending and not announced: a thread, so batches stay full
        ([EVT3, SWIPE_UP], False, False, 0, "demo"),  # 93 + 111 KB: under 256 KiB together
        ([SWIPE_LEFT, SWIPE_UP], False, False, 2, "demo"),  # 187 + 111 KB: over 256 KiB together
        ([over_the_loops_budget()], False, False, 1, "demo"),  # small, but over the loop's 65,536 events: again
        ([("r.npz", npz(list(range(0, 20_000, 1000))))], False, False, 1, "demo"),  # a zip archive inflates
    ],
)
def test_small_cheap_uploads_decode_on_the_loop_unless_the_batcher_would_starve(
    served, pool, files, busy, chunked, handed, model
):
    client, context = served
    batcher = context.registry.get(model).batcher
    if busy:
        batcher.expect(5)  # samples another request announced
    try:
        fields = [("files", f) for f in files] if len(files) > 1 else [("file", files[0])]
        url = "/v1/classify" if model == "demo" else f"/v1/models/{model}/classify"
        response = post(client, *fields, *NO_FILTERS, url=url, chunked=chunked)
    finally:
        if busy:
            batcher.forget(5)
    assert response.status_code == 200, response.text
    assert pool.handed == handed
    assert batcher.pending == 0


def test_an_overloaded_model_answers_503_with_retry_after_and_withdraws_only_its_own_samples(served, monkeypatch):
    client, context = served
    batcher = context.registry.get("demo").batcher
    gate, running = threading.Event(), threading.Event()
    run = batcher._run

    def blocked(frames):
        running.set()
        gate.wait(30)
        return run(frames)

    monkeypatch.setattr(batcher, "_run", blocked)
    monkeypatch.setattr(batcher, "max_queue", 1)
    first = batcher.submit(np.zeros((8, 2, 64, 64), np.float32))  # the worker takes it and blocks
    assert running.wait(10)
    batcher.expect(1)  # another request's sample, still decoding
    try:
        response = post(client, ("files", EVT3), ("files", EVT3))  # one fits the queue, the second not
        detail = problem(response, 503, "overloaded")
        assert detail == "model 'demo' has 1 samples queued (limit 1)"
        assert response.headers["retry-after"] == "2"  # the setting, not the default of 1
        assert batcher.pending - batcher.depth == 1  # the other request's announcement is left alone
    finally:
        batcher.forget(1)
        gate.set()
    first.result(30)


def test_the_request_log_line_names_the_model_the_file_count_and_the_predictions(served, caplog):
    client, _ = served
    with caplog.at_level("INFO", logger="stlsnn.access"):
        labels = [r["prediction"]["label"] for r in post(client, ("files", EVT3), ("files", EVT3)).json()["results"]]
    line = [r for r in caplog.records if r.name == "stlsnn.access" and r.path == "/v1/classify"][-1]
    assert (line.model, line.files, line.prediction) == ("demo", 2, labels)


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        ((("top_k", "3"),), "no event file: send multipart field 'file' (or 'files')"),
        ((("file", EVT3), ("files", EVT3)), "send either 'file' or 'files', not both"),
        ((("file", EVT3), ("include", "everything")), "include must be 'frames', not 'everything'"),
        ((("file", EVT3), ("early_exit", "1.5")), "early_exit is a margin in (0, 1], not 1.5"),
    ],
    ids=["no-file", "file-and-files", "include", "early-exit"],
)
@pytest.mark.parametrize("chunked", [False, True])
def test_a_form_that_cannot_be_classified_is_422_saying_why(served, fields, detail, chunked):
    client, _ = served
    assert problem(post(client, *fields, chunked=chunked), 422, "invalid-parameters") == detail


@pytest.mark.parametrize("chunked", [False, True])
def test_empty_text_fields_mean_the_defaults_and_files_always_answer_a_list(served, chunked):
    client, context = served
    empty = [(name, "") for name in ("format", "sensor_size", "energy_profile", "include")]
    result = post(client, ("file", EVT3), *empty, chunked=chunked).json()
    assert result["input"]["format"] == "evt3" and "frames" not in result["input"]
    assert result["energy"]["profile"] == context.registry.get("demo").manifest.energy.profile
    framed = post(client, ("file", EVT3), ("include", "frames"), chunked=chunked).json()["input"]
    assert framed["frames"]["shape"] == [8, 2, 64, 64] and framed["frames"]["dtype"] == "uint16"
    one_of_several = post(client, ("files", EVT3), chunked=chunked).json()
    assert len(one_of_several["results"]) == 1


def test_the_total_time_covers_every_stage_and_lies_within_the_call(served):
    client, _ = served
    started = time.perf_counter()
    timing = post(client, ("file", EVT3)).json()["timing_ms"]
    elapsed_ms = (time.perf_counter() - started) * 1000
    stages = timing["decode"] + timing["frame"] + timing["queue"] + timing["infer"]
    assert 0 < stages <= timing["total"] <= elapsed_ms


def test_a_client_gone_before_its_result_gets_499_and_the_log_says_why(served, monkeypatch, caplog):
    """The request is driven as raw ASGI messages, so that the client can leave while its sample waits
    behind a blocked model."""
    client, context = served
    batcher = context.registry.get("demo").batcher
    gate = threading.Event()
    run = batcher._run
    monkeypatch.setattr(batcher, "_run", lambda frames: gate.wait(30) and run(frames))
    body = form(("file", EVT3))
    headers = [(b"content-type", CONTENT_TYPE["content-type"].encode()), (b"content-length", str(len(body)).encode())]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/classify",
        "raw_path": b"/v1/classify",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }
    sent = []

    async def exchange() -> None:
        messages = iter([{"type": "http.request", "body": body, "more_body": False}])

        async def receive() -> dict:
            return next(messages, {"type": "http.disconnect"})

        async def send(message: dict) -> None:
            sent.append(message)

        await client.app(scope, receive, send)

    try:
        with caplog.at_level("INFO", logger="stlsnn.access"):
            client.portal.call(exchange)
    finally:
        gate.set()
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 499
    line = [r for r in caplog.records if r.name == "stlsnn.access" and r.path == "/v1/classify"][-1]
    assert line.status == 499 and line.outcome == "client disconnected"


@pytest.mark.parametrize(
    ("upload", "wrong"),
    [(EVT3, "evt2"), (over_the_loops_budget(), "npz")],
    ids=["on the loop", "in a thread (over the loop's budget; NPZ only in a thread)"],
)
def test_the_file_name_format_and_sensor_override_reach_the_decoder_wherever_it_runs(served, upload, wrong):
    client, _ = served
    name, data = upload
    known = post(client, ("file", (f"C:\\uploads/{name}", data)), ("sensor_size", "1280x720"), *NO_FILTERS).json()
    assert known["input"]["filename"] == name and known["input"]["sensor_size"] == [1280, 720]
    assert problem(post(client, ("file", (name, data)), ("format", wrong)), 400, "undecodable-file")


def test_an_unknown_format_is_415_listing_the_known_ones(served):
    client, _ = served
    detail = problem(post(client, ("file", EVT3), ("format", "nope")), 415, "unknown-format")
    assert detail.startswith("unknown format 'nope'; known: ") and "evt3" in detail


def test_the_spikes_histogram_counts_each_result_under_its_model(served):
    client, _ = served

    def observed() -> float:
        text = client.get("/metrics").text
        line = [row for row in text.splitlines() if row.startswith('stlsnn_spikes_per_request_count{model="demo"}')]
        return float(line[0].split()[-1]) if line else 0.0

    before = observed()
    post(client, ("files", EVT3), ("files", EVT3))
    assert observed() == before + 2
