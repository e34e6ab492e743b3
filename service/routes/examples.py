"""The example recordings the web page offers: a listing, and each listed file's bytes.

Guarded by the API key like every ``/v1`` route. A name that is not in the listing (a typo, a
path, ``generate.py``) is a 404 problem, so nothing outside the examples folder is reachable.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse

from service.dependencies import AppContext, get_context
from service.examples import find_example, list_examples
from service.problems import Problem
from service.schemas import ExampleList, ExampleSummary, problem_responses
from service.security import require_api_key

router = APIRouter(prefix="/v1", tags=["examples"], dependencies=[Depends(require_api_key)])


@router.get(
    "/examples",
    response_model=ExampleList,
    summary="The bundled example recordings, each with its format and gesture label",
    responses=problem_responses(401),
)
async def examples(ctx: Annotated[AppContext, Depends(get_context)]) -> ExampleList:
    found = await asyncio.to_thread(list_examples, ctx.settings.examples_dir)
    return ExampleList(
        examples=[ExampleSummary(name=e.name, format=e.format, size=e.size, label=e.label) for e in found]
    )


@router.get(
    "/examples/{name}",
    summary="One example recording's bytes",
    response_class=FileResponse,
    responses={
        200: {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
        **problem_responses(401, 404),
    },
)
async def example_file(name: str, ctx: Annotated[AppContext, Depends(get_context)]) -> FileResponse:
    example = await asyncio.to_thread(find_example, ctx.settings.examples_dir, name)
    if example is None:
        raise Problem(404, "unknown-example", f"no example named {name!r}; see /v1/examples")
    return FileResponse(example.path, media_type="application/octet-stream", filename=example.name)
