"""A FastAPI route whose small, plain multipart requests skip FastAPI's form machinery.

``fast_form_route(handler)`` makes an ``APIRoute`` class: the route is declared as usual (its
OpenAPI document, parameters and response model unchanged) and FastAPI's handler stays in place,
but a request whose body is at most ``FAST_MAX_BYTES`` (declared ``Content-Length``) and parses as
a plain form (``service.multipart_form``) is first offered to ``handler(request, parts)``. The
handler either answers (a ``Response``, or content serialised with the route's response model as
FastAPI would) or returns ``FALLBACK`` for anything it does not accept exactly as FastAPI's
validation would, and FastAPI's handler then runs on the same request (the body is cached), so
every refusal and its wording stay FastAPI's.

Why: FastAPI resolves each declared form field through its dependency solver per request, and
Starlette spools every upload into an ``UploadFile``; for the classify form that was the largest
share of the event loop's CPU per request (BENCHMARKS.md, "Serving overhead"). Above
``FAST_MAX_BYTES`` the standard path's spooling to disk is what bounds memory, so it keeps them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute
from pydantic import TypeAdapter
from starlette.responses import Response

from service.multipart_form import FormPart, boundary_of, parse_form

FAST_MAX_BYTES = 1 << 20  # Starlette's in-memory spool size: above it the standard path writes to disk
FALLBACK = object()

FastHandler = Callable[[Request, list[FormPart]], Awaitable[Any]]


def fast_form_route(handler: FastHandler) -> type[APIRoute]:
    """An ``APIRoute`` class that offers small plain forms to ``handler`` first (see the module)."""

    class FastFormRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
            standard = super().get_route_handler()
            adapter = TypeAdapter(self.response_model)
            exclude_unset = self.response_model_exclude_unset

            async def route_handler(request: Request) -> Response:
                parts = await small_plain_form(request)
                if parts is not None:
                    content = await handler(request, parts)
                    if isinstance(content, Response):
                        return content
                    if content is not FALLBACK:
                        body = adapter.dump_json(adapter.validate_python(content), exclude_unset=exclude_unset)
                        return Response(body, media_type="application/json")
                return await standard(request)

            return route_handler

    return FastFormRoute


async def small_plain_form(request: Request) -> list[FormPart] | None:
    """The parts of a request's body when it declares at most ``FAST_MAX_BYTES`` and is a plain form, else None."""
    length = request.headers.get("content-length")
    if length is None or not length.isdigit() or int(length) > FAST_MAX_BYTES:
        return None
    boundary = boundary_of(request.headers.get("content-type", ""))
    if boundary is None:
        return None
    return parse_form(await request.body(), boundary)
