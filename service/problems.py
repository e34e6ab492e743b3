"""RFC 9457 problem details: the one shape every error response takes.

``Problem`` is an ``HTTPException`` so FastAPI passes it through untouched even when it is
raised while the body is parsed (the upload limit). The handlers here turn it, FastAPI's own
validation errors, plain HTTP errors and any unexpected exception into
``application/problem+json``; the catch-all logs the trace and answers a generic 500.
"""

from __future__ import annotations

import http
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

log = logging.getLogger("stlsnn.service")

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:stlsnn:problem:"


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_MEDIA_TYPE


class Problem(HTTPException):
    """An error answered as problem+json: ``kind`` names the problem type (``urn:stlsnn:problem:<kind>``)."""

    def __init__(
        self,
        status: int,
        kind: str,
        detail: str,
        *,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        retry_after: int | None = None,
        **extensions,
    ):
        headers = dict(headers or {})
        if status == 503 and retry_after is None:
            retry_after = 1
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        super().__init__(status_code=status, detail=detail, headers=headers)
        self.kind = kind
        self.title = title or http.HTTPStatus(status).phrase
        self.extensions = extensions


def problem_response(
    request: Request,
    status: int,
    type_: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    extensions: dict | None = None,
) -> ProblemResponse:
    """The problem+json response itself, echoing the request id in body and header."""
    body = {"type": type_, "title": title, "status": status, "detail": detail, **(extensions or {})}
    headers = dict(headers or {})
    request_id = getattr(request.state, "request_id", None)
    if request_id:
        body["request_id"] = request_id
        headers["X-Request-ID"] = request_id
    return ProblemResponse(body, status_code=status, headers=headers)


async def _problem(request: Request, exc: Problem) -> ProblemResponse:
    return problem_response(
        request, exc.status_code, TYPE_PREFIX + exc.kind, exc.title, exc.detail, exc.headers, exc.extensions
    )


async def _http_error(request: Request, exc: HTTPException) -> ProblemResponse:
    phrase = http.HTTPStatus(exc.status_code).phrase
    detail = exc.detail if isinstance(exc.detail, str) else phrase
    return problem_response(request, exc.status_code, "about:blank", phrase, detail, exc.headers)


async def _validation_error(request: Request, exc: RequestValidationError) -> ProblemResponse:
    errors = [
        {"loc": [str(part) for part in err.get("loc", ())], "msg": str(err.get("msg", "")), "type": err.get("type", "")}
        for err in exc.errors()
    ]
    summary = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors) or "invalid request"
    return problem_response(
        request, 422, TYPE_PREFIX + "invalid-parameters", "Invalid parameters", summary, extensions={"errors": errors}
    )


async def _unexpected(request: Request, exc: Exception) -> ProblemResponse:
    log.error(
        "unhandled error",
        exc_info=(type(exc), exc, exc.__traceback__),
        extra={"request_id": getattr(request.state, "request_id", None), "path": request.url.path},
    )
    return problem_response(
        request, 500, "about:blank", "Internal Server Error", "The server failed to handle this request; it is logged."
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Route every error the app can raise to a problem+json response."""
    app.add_exception_handler(Problem, _problem)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
