"""One pass over a small ``multipart/form-data`` body held in memory: the parts, or None to say "not plain".

Used by the classify fast path (``service.routes.classify``). FastAPI's form handling spools each
file into an ``UploadFile``, builds a ``FormData``, then checks every declared field against it
through its dependency machinery; on the examples that is about a third of the event loop's time
per request (BENCHMARKS.md, "Serving overhead"). Here the same parser (python-multipart, which
Starlette uses) is driven directly and the parts are kept as bytes.

Policy: strict and partial on purpose. Only the plain shape that browsers, curl and our client send
is accepted: a ``multipart/form-data`` content type with a boundary, every part a ``form-data``
disposition with a non-empty name, at most ``MAX_PARTS`` parts. Anything else, or anything the
parser refuses, gives None, and the caller hands the request to FastAPI's own parser, so that
every other input is answered (and refused) exactly as before.
"""

from __future__ import annotations

from dataclasses import dataclass

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

MAX_PARTS = 100  # more is unusual for a classify form; FastAPI's path applies its own limits then


@dataclass(frozen=True)
class FormPart:
    """One part: its field name, file name (None for a plain field) and content."""

    name: str
    filename: str | None
    data: bytes


def boundary_of(content_type: str) -> bytes | None:
    """The boundary of a ``multipart/form-data`` content type, else None."""
    kind, options = parse_options_header(content_type)
    if kind != b"multipart/form-data":
        return None
    return options.get(b"boundary") or None


def parse_form(body: bytes, boundary: bytes) -> list[FormPart] | None:
    """The parts of ``body`` in order, or None when it is not plain (see the module's policy)."""
    parts: list[FormPart] = []
    headers: dict[bytes, bytes] = {}
    field: list[bytes] = []
    value: list[bytes] = []
    data: list[bytes] = []
    refused = False

    def on_part_begin() -> None:
        headers.clear()
        data.clear()

    def on_header_field(buffer: bytes, start: int, end: int) -> None:
        field.append(buffer[start:end])

    def on_header_value(buffer: bytes, start: int, end: int) -> None:
        value.append(buffer[start:end])

    def on_header_end() -> None:
        headers[b"".join(field).lower()] = b"".join(value)
        field.clear()
        value.clear()

    def on_part_data(buffer: bytes, start: int, end: int) -> None:
        data.append(buffer[start:end])

    def on_part_end() -> None:
        nonlocal refused
        part = _part(headers, b"".join(data))
        if part is None or len(parts) >= MAX_PARTS:
            refused = True
        else:
            parts.append(part)

    callbacks = {
        "on_part_begin": on_part_begin,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_part_data": on_part_data,
        "on_part_end": on_part_end,
    }
    parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError:
        return None
    if refused or parser.state != MultipartState.END:
        return None
    return parts


def _part(headers: dict[bytes, bytes], data: bytes) -> FormPart | None:
    disposition, options = parse_options_header(headers.get(b"content-disposition", b""))
    name = options.get(b"name")
    if disposition != b"form-data" or not name:
        return None
    filename = options.get(b"filename")
    try:
        return FormPart(name.decode(), None if filename is None else filename.decode(), data)
    except UnicodeDecodeError:
        return None
