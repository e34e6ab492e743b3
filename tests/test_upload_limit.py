"""The upload limit, driven at the ASGI level: what is read, and when the 413 comes.

A declared ``Content-Length`` over the limit is answered without reading a byte or running the
app; a body without one is counted as it arrives and cut off by the first message that crosses
the limit, so the server holds at most the limit plus one chunk.
"""

from __future__ import annotations

import asyncio
import json
from http import HTTPStatus

import pytest

from service.problems import Problem
from service.upload_limit import UploadLimitMiddleware

LIMIT = 2500
CHUNK = 1000


class Client:
    """A scripted ASGI client: sends ``chunks`` one ``receive`` at a time and records the reply."""

    def __init__(self, chunks: list[bytes], content_length: int | None = None):
        self.chunks = list(chunks)
        self.headers = [] if content_length is None else [(b"content-length", str(content_length).encode())]
        self.receives = 0
        self.sent: list[dict] = []

    async def receive(self) -> dict:
        self.receives += 1
        body = self.chunks.pop(0) if self.chunks else b""
        return {"type": "http.request", "body": body, "more_body": bool(self.chunks)}

    async def send(self, message: dict) -> None:
        self.sent.append(message)

    def scope(self) -> dict:
        return {"type": "http", "method": "POST", "path": "/v1/classify", "headers": self.headers, "query_string": b""}


class ReadingApp:
    """An app that reads the whole body, as the multipart parser does."""

    def __init__(self):
        self.calls = 0
        self.body = b""
        self.path = None

    async def __call__(self, scope, receive, send) -> None:
        self.calls += 1
        self.path = scope["path"]
        while True:
            message = await receive()
            self.body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def serve(client: Client, app: ReadingApp | None = None) -> ReadingApp:
    app = app or ReadingApp()
    asyncio.run(UploadLimitMiddleware(app, max_bytes=LIMIT)(client.scope(), client.receive, client.send))
    return app


def test_a_declared_length_over_the_limit_is_answered_before_reading_or_running_the_app():
    client = Client([b"x" * CHUNK] * 3, content_length=LIMIT + 1)
    app = serve(client)
    assert app.calls == 0 and client.receives == 0
    start, body = client.sent
    assert start["status"] == 413
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    assert headers["connection"] == "close" and headers["content-type"].startswith("application/problem+json")
    problem = json.loads(body["body"])
    assert problem["type"] == "urn:stlsnn:problem:upload-too-large" and problem["status"] == 413
    assert problem["title"] == HTTPStatus(413).phrase
    assert "2500-byte limit" in problem["detail"]


def test_a_body_of_exactly_the_limit_reaches_the_app_whole():
    body = b"a" * CHUNK + b"b" * CHUNK + b"c" * (LIMIT - 2 * CHUNK)
    client = Client([body[:CHUNK], body[CHUNK : 2 * CHUNK], body[2 * CHUNK :]], content_length=LIMIT)
    app = serve(client)
    assert app.calls == 1 and app.body == body and app.path == "/v1/classify" and client.sent[0]["status"] == 200


def test_an_undeclared_body_is_cut_off_by_the_chunk_that_crosses_the_limit():
    client = Client([b"x" * CHUNK] * 10)  # chunked: no Content-Length
    with pytest.raises(Problem) as raised:
        serve(client)
    assert raised.value.status_code == 413 and raised.value.kind == "upload-too-large"
    assert raised.value.detail == "request body over the 2500-byte limit"
    assert client.receives == 3  # 1000, 2000, 3000 > 2500: nothing after the third chunk is read
    assert client.sent == []


def test_a_lying_content_length_does_not_lift_the_limit():
    client = Client([b"x" * CHUNK] * 10, content_length=10)
    with pytest.raises(Problem):
        serve(client)
    assert client.receives == 3


def test_an_unreadable_content_length_is_counted_like_a_chunked_body():
    client = Client([b"x" * CHUNK] * 10)
    client.headers = [(b"Content-Length", b"lots")]
    with pytest.raises(Problem):
        serve(client)
    assert client.receives == 3
    small = Client([b"x" * 10])
    small.headers = [(b"Content-Length", b"lots")]
    assert serve(small).body == b"x" * 10


def test_non_http_traffic_passes_untouched():
    seen = []

    async def receive():
        return {"type": "lifespan.startup"}

    async def send(message):
        return None

    async def app(scope, app_receive, app_send):
        seen.append((scope["type"], app_receive, app_send))

    asyncio.run(UploadLimitMiddleware(app, max_bytes=1)({"type": "lifespan"}, receive, send))
    assert seen == [("lifespan", receive, send)]
