"""The classify routes' fast path answers exactly as FastAPI's own form handling does.

A small upload with a ``Content-Length`` takes the fast path (``service.routes.fast_form``); the
same bytes sent chunked (no length) take FastAPI's standard path, which is the reference here:
every form below is posted both ways to one in-process app and the answers must be equal (status,
headers that matter, body; only ``timing_ms`` and the request id differ by nature). Plain forms
must really take the fast path: Starlette's form parser is made to fail while they are posted.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from service_harness import demo_repository
from starlette.requests import Request

import events
from events.evt3 import write_evt3
from service.app import create_app
from service.multipart_form import FormPart, boundary_of, parse_form
from service.settings import Settings

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EVT3 = ("rotate_clockwise.evt3.raw", (EXAMPLES / "rotate_clockwise.evt3.raw").read_bytes())
EVT2 = ("swipe_up.evt2.raw", (EXAMPLES / "swipe_up.evt2.raw").read_bytes())
AEDAT4 = ("swipe_left.aedat4", (EXAMPLES / "swipe_left.aedat4").read_bytes())
BOUNDARY = "fastpathtest"


def over_the_loops_budget() -> tuple[str, bytes]:
    """EVT 3.0 of 70,016 events in vector words (~30 KB): small enough for the loop, over its 65,536-event
    budget, so the loop refuses it and a worker thread decodes it again (``service.ingest``)."""
    n = 70_016
    buffer = io.BytesIO()
    write_evt3(buffer, events.make_events(np.arange(n) // 32, np.arange(n) % 32, np.arange(n) // 600, 1), (128, 128))
    return "dense.evt3.raw", buffer.getvalue()


def form(*fields: tuple[str, str | tuple[str, bytes]]) -> bytes:
    """A multipart body: ``(name, text)`` fields and ``(name, (filename, data))`` files, in order."""
    body = b""
    for name, value in fields:
        if isinstance(value, tuple):
            head = f'Content-Disposition: form-data; name="{name}"; filename="{value[0]}"\r\n'
            head += "Content-Type: application/octet-stream\r\n"
            data = value[1]
        else:
            head = f'Content-Disposition: form-data; name="{name}"\r\n'
            data = value.encode()
        body += f"--{BOUNDARY}\r\n{head}\r\n".encode() + data + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode()


CONTENT_TYPE = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator[TestClient]:
    repo = demo_repository(tmp_path_factory.getbasetemp() / "service-demo")
    app = create_app(Settings(model_repository=repo, nvml=False, max_files=3))
    with TestClient(app, raise_server_exceptions=False) as client:
        assert app.state.context.registry.loaded.wait(120)
        yield client


def post_both(client: TestClient, url: str, body: bytes):
    """(answer with Content-Length, answer chunked): the fast path's and FastAPI's."""
    sized = client.post(url, content=body, headers=CONTENT_TYPE)
    chunked = client.post(url, content=iter([body]), headers=CONTENT_TYPE)
    return sized, chunked


def comparable(response) -> tuple:
    body = response.json()
    for result in body.get("results", [body]):
        result.pop("timing_ms", None)
    body.pop("request_id", None)
    headers = {k: v for k, v in response.headers.items() if k in ("content-type", "retry-after", "www-authenticate")}
    return response.status_code, headers, body


PLAIN = {
    "one file": form(("file", EVT3)),
    "every parameter": form(
        ("file", EVT2),
        ("format", "evt2"),
        ("top_k", "3"),
        ("sensor_size", "640x480"),
        ("energy_profile", "45nm-int8"),
        ("early_exit", "0.25"),
        ("include", "frames"),
        ("denoise_us", "5000"),
        ("hot_pixels", "false"),
    ),
    "several files": form(("files", EVT3), ("files", AEDAT4), ("top_k", "1")),
    "an AEDAT 4 file": form(("file", AEDAT4), ("hot_pixels", "1")),
    "a file over the loop's budget (decoded again in the pool)": form(("file", over_the_loops_budget())),
}


@pytest.mark.parametrize("url", ["/v1/classify", "/v1/models/demo/classify"])
@pytest.mark.parametrize("case", list(PLAIN))
def test_plain_forms_take_the_fast_path_and_get_fastapis_answer(client, monkeypatch, url, case):
    def no_form_parsing(self, *args, **kwargs):
        raise AssertionError("the standard form parser ran")

    with monkeypatch.context() as patch:
        patch.setattr(Request, "form", no_form_parsing)
        sized = client.post(url, content=PLAIN[case], headers=CONTENT_TYPE)
    chunked = client.post(url, content=iter([PLAIN[case]]), headers=CONTENT_TYPE)
    assert sized.status_code == 200, sized.text
    assert comparable(sized) == comparable(chunked)


REFUSED = {  # form -> the status FastAPI's path answers (written by hand from DESIGN.md section 6)
    "no file": (form(("top_k", "3")), 422),
    "file and files": (form(("file", EVT3), ("files", EVT3)), 422),
    "a file field without a file name": (form(("file", "not a file")), 422),
    "a text field sent as a file": (form(("file", EVT3), ("top_k", ("k.txt", b"3"))), 422),
    "top_k not a number": (form(("file", EVT3), ("top_k", "three")), 422),
    "top_k out of range": (form(("file", EVT3), ("top_k", "0")), 422),
    "top_k with a sign": (form(("file", EVT3), ("top_k", "+2")), 200),
    "top_k with leading zeros": (form(("file", EVT3), ("top_k", "02")), 200),
    "top_k empty": (form(("file", EVT3), ("top_k", "")), 200),
    "early_exit in exponent notation": (form(("file", EVT3), ("early_exit", "5e-1")), 200),
    "early_exit over 1": (form(("file", EVT3), ("early_exit", "1.5")), 422),
    "denoise_us negative": (form(("file", EVT3), ("denoise_us", "-1")), 422),
    "denoise_us over its limit": (form(("file", EVT3), ("denoise_us", "10000001")), 422),
    "hot_pixels in capitals": (form(("file", EVT3), ("hot_pixels", "TRUE")), 200),
    "hot_pixels not a boolean": (form(("file", EVT3), ("hot_pixels", "maybe")), 422),
    "include something else": (form(("file", EVT3), ("include", "everything")), 422),
    "an unknown format": (form(("file", EVT3), ("format", "mp4")), 415),
    "a field twice": (form(("file", EVT3), ("top_k", "2"), ("top_k", "4")), 200),
    "an unknown field": (form(("file", EVT3), ("colour", "red")), 200),
    "too many files": (form(*[("files", EVT3)] * 4), 413),
    "not an event file": (form(("file", ("notes.txt", b"hello"))), 415),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_every_other_form_gets_the_same_answer_either_way(client, case):
    body, status = REFUSED[case]
    sized, chunked = post_both(client, "/v1/classify", body)
    assert chunked.status_code == status, chunked.text
    assert comparable(sized) == comparable(chunked)


def test_no_request_leaves_a_sample_announced_to_the_batcher(client):
    """The fast path announces a sample before reading the body; whatever the answer (refused,
    handed to FastAPI's path, answered), nothing stays announced, or the batcher would keep waiting
    for samples that never come."""
    batcher = client.app.state.context.registry.get("demo").batcher
    for body, _ in REFUSED.values():
        client.post("/v1/models/demo/classify", content=body, headers=CONTENT_TYPE)
        assert batcher.pending == 0
    for body in PLAIN.values():
        assert client.post("/v1/classify", content=body, headers=CONTENT_TYPE).status_code == 200
        assert batcher.pending == 0


def test_a_bad_model_name_and_a_truncated_body_get_the_same_answer_either_way(client):
    for url, body, status in (
        ("/v1/models/no_such_model/classify", form(("file", EVT3)), 404),
        ("/v1/models/bad%20name/classify", form(("file", EVT3)), 422),
        ("/v1/classify", form(("file", EVT3))[:-40], 422),  # python-multipart drops the unfinished part
    ):
        sized, chunked = post_both(client, url, body)
        assert chunked.status_code == status, chunked.text
        assert comparable(sized) == comparable(chunked)


def test_parse_form_keeps_plain_parts_and_refuses_the_rest():
    boundary = boundary_of(CONTENT_TYPE["content-type"])
    assert boundary == BOUNDARY.encode()
    assert boundary_of("application/x-www-form-urlencoded") is None
    assert parse_form(form(("file", ("a.raw", b"\x00\r\n--x")), ("top_k", "3")), boundary) == [
        FormPart("file", "a.raw", b"\x00\r\n--x"),
        FormPart("top_k", None, b"3"),
    ]
    plain = form(("top_k", "3"))
    assert parse_form(plain[:-4], boundary) is None  # no closing boundary
    assert parse_form(b"preamble\r\n" + plain, boundary) is None
    assert parse_form(plain.replace(b"form-data", b"attachment"), boundary) is None
    assert parse_form(plain.replace(b'name="top_k"', b'name=""'), boundary) is None
    assert parse_form(form(*[("top_k", "1")] * 101), boundary) is None  # over MAX_PARTS


def test_api_keys_guard_the_fast_path_too(tmp_path_factory):
    repo = demo_repository(tmp_path_factory.getbasetemp() / "service-demo")
    app = create_app(Settings(model_repository=repo, nvml=False, api_keys="k1,k2"))
    with TestClient(app, raise_server_exceptions=False) as keyed:
        assert app.state.context.registry.loaded.wait(120)
        body = form(("file", EVT3))
        for key, status in ((None, 401), ("k3", 401), ("k2", 200)):
            headers = {"authorization": f"Bearer {key}"} if key else {}
            sized = keyed.post("/v1/classify", content=body, headers=CONTENT_TYPE | headers)
            chunked = keyed.post("/v1/classify", content=iter([body]), headers=CONTENT_TYPE | headers)
            assert chunked.status_code == status
            assert comparable(sized) == comparable(chunked)
