"""A FastAPI route whose small, plain multipart requests skip FastAPI's form machinery.

``fast_form_route(handler)`` makes an ``APIRoute`` class: the route is declared as usual (its
OpenAPI document, parameters and response model unchanged) and FastAPI's handler stays in place,
but each request is first offered to ``handler(request)``. The handler takes only a form whose
declared ``Content-Length`` is at most ``FAST_MAX_BYTES`` (``small_form_boundary``, from the
headers) and that parses as a plain form (``read_plain_form``, ``service.multipart_form``), and
answers it (a ``Response``, or the plain JSON content the route's response model describes); for
anything it does not accept exactly as FastAPI's validation would, it returns ``FALLBACK`` and
FastAPI's handler runs on the same request (the body is cached), so every refusal and its wording
stay FastAPI's.

The content is serialised by orjson as the handler built it, not validated into the response model
and dumped again (36 us against 2 us for one classify result): the handler builds exactly the
model's fields from values it has already checked, and ``tests/test_classify_fast_path.py`` holds
every answer equal to what FastAPI's validated path gives for the same request.

Why: FastAPI resolves each declared form field through its dependency solver per request, and
Starlette spools every upload into an ``UploadFile``; for the classify form that was the largest
share of the event loop's CPU per request (BENCHMARKS.md, "Serving overhead"). Above
``FAST_MAX_BYTES`` the standard path's spooling to disk is what bounds memory, so it keeps them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import Request
from fastapi.routing import APIRoute
from starlette.responses import Response

from service.multipart_form import FormPart, boundary_of, parse_form

FAST_MAX_BYTES = 1 << 20  # Starlette's in-memory spool size: above it the standard path writes to disk
FALLBACK = object()

FastHandler = Callable[[Request], Awaitable[Any]]


def fast_form_route(handler: FastHandler) -> type[APIRoute]:
    """An ``APIRoute`` class that offers small plain forms to ``handler`` first (see the module)."""

    class FastFormRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
            standard = super().get_route_handler()

            async def route_handler(request: Request) -> Response:
                content = await handler(request)
                if isinstance(content, Response):
                    return content
                if content is FALLBACK:
                    return await standard(request)
                return Response(orjson.dumps(content), media_type="application/json")

            return route_handler

    return FastFormRoute


def small_form_boundary(request: Request) -> bytes | None:
    """The boundary of a multipart form whose declared length is at most ``FAST_MAX_BYTES``, else None
    (from the headers alone: the body may still be on its way)."""
    length = request.headers.get("content-length")
    if length is None or not length.isdigit() or int(length) > FAST_MAX_BYTES:
        return None
    return boundary_of(request.headers.get("content-type", ""))


async def read_plain_form(request: Request, boundary: bytes) -> list[FormPart] | None:
    """The parts of the request's body, or None when it is not a plain form (``service.multipart_form``)."""
    return parse_form(await request.body(), boundary)
