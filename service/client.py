"""A synchronous Python client for the service's HTTP API (httpx).

Policy: every answer that is not a 2xx raises ``ProblemError`` carrying the RFC 9457 fields
(``status``, ``type``, ``title``, ``detail``); an answer that is not problem+json (a proxy's HTML
page) counts as ``about:blank`` with its status and the start of its text as the detail, as RFC
9457 section 4.2.1 reads it. Transport failures stay httpx's own exceptions. Uploads are streamed
from files, never read whole into memory by the client.

    with Client("http://127.0.0.1:8000") as client:
        result = client.classify("examples/swipe_left.aedat4", top_k=3)
        print(result["prediction"]["label"])
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import httpx

Source = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO
DEFAULT_URL = "http://127.0.0.1:8000"


@dataclass
class ProblemError(Exception):
    """A problem answer from the server: ``status``, ``type`` and ``detail`` as RFC 9457 names them."""

    status: int
    type: str
    detail: str
    title: str = ""
    body: dict = field(default_factory=dict, repr=False)

    def __str__(self) -> str:
        return f"{self.status} {self.title or self.type}: {self.detail}"

    @property
    def no_such_route(self) -> bool:
        """The server has no such endpoint (a plain 404, not a named problem such as an unknown model)."""
        return self.status == 404 and self.type == "about:blank"


class Client:
    """The service at ``url``; ``api_key`` is sent as a Bearer token. Use as a context manager or call ``close``."""

    def __init__(self, url: str = DEFAULT_URL, api_key: str | None = None, timeout: float = 60.0):
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def models(self) -> list[dict]:
        """The served models (``GET /v1/models``)."""
        return self._answer(self._http.get("/v1/models"))["models"]

    def classify(self, source: Source, model: str | None = None, **params: Any) -> dict:
        """Classify one event file with ``model`` (default: the server's default model).

        ``params`` are the form fields of the classify route (``format``, ``top_k``, ``sensor_size``
        as ``(W, H)`` or ``"W,H"``, ``energy_profile``, ...); ``None`` values are left out.
        """
        return self._upload("classify", source, model, params)

    def timeline(self, source: Source, model: str | None = None, **params: Any) -> dict:
        """Classify a long recording window by window (``window_ms``, ``stride_ms``, ``min_events``, ...).

        A server without the timeline endpoint answers 404: ``ProblemError`` with ``no_such_route``.
        """
        return self._upload("timeline", source, model, params)

    def _upload(self, route: str, source: Source, model: str | None, params: dict[str, Any]) -> dict:
        path = f"/v1/models/{model}/{route}" if model else f"/v1/{route}"
        data = {key: _form_value(value) for key, value in params.items() if value is not None}
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as stream:
                return self._answer(self._http.post(path, files={"file": (Path(source).name, stream)}, data=data))
        if isinstance(source, (bytes, bytearray, memoryview)):
            upload = ("recording", bytes(source))
        else:
            upload = (Path(getattr(source, "name", "recording") or "recording").name, source)
        return self._answer(self._http.post(path, files={"file": upload}, data=data))

    @staticmethod
    def _answer(response: httpx.Response) -> dict:
        if response.is_success:
            return response.json()
        body: dict = {}
        if response.headers.get("content-type", "").split(";")[0].strip().endswith("json"):
            try:
                parsed = response.json()
            except ValueError:
                parsed = None
            body = parsed if isinstance(parsed, dict) else {}
        raise ProblemError(
            status=response.status_code,
            type=str(body.get("type", "about:blank")),
            detail=str(body.get("detail") or response.text[:300] or response.reason_phrase),
            title=str(body.get("title", response.reason_phrase)),
            body=body,
        )


def _form_value(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
