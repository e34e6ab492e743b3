"""Reject request bodies over ``max_bytes`` without reading them.

A declared ``Content-Length`` over the limit is answered 413 before the app runs; otherwise the
bytes are counted as they arrive (chunked uploads too) and the first message that crosses the
limit raises a 413 ``Problem`` inside the body parser.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.problems import TYPE_PREFIX, Problem, problem_response


def _too_large(max_bytes: int) -> Problem:
    return Problem(413, "upload-too-large", f"request body over the {max_bytes}-byte limit")


class UploadLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            problem = _too_large(self.max_bytes)
            response = problem_response(
                Request(scope), 413, TYPE_PREFIX + problem.kind, problem.title, problem.detail, {"Connection": "close"}
            )
            await response(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _too_large(self.max_bytes)
            return message

        await self.app(scope, counting_receive, send)


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", []):
        if key.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
