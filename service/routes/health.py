"""Liveness, readiness and Prometheus metrics (always open, no API key)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from service.dependencies import AppContext, get_context
from service.problems import Problem
from service.schemas import Health, Readiness, problem_responses

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="Liveness")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Readiness: 200 once every model is loaded and warmed (and one serves)",
    responses=problem_responses(503),
)
async def readyz(ctx: Annotated[AppContext, Depends(get_context)]) -> Readiness:
    registry = ctx.registry
    states = {model.name: model.state for model in registry.snapshot()}
    if not registry.loaded.is_set():
        raise Problem(503, "not-ready", "models are still loading", models=states)
    if not registry.ready:
        detail = registry.startup_error or "no model could be loaded; see /v1/models for each error"
        raise Problem(503, "not-ready", detail, retry_after=30, models=states)
    return Readiness(status="ready", models=states)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "text exposition"}},
)
async def metrics(ctx: Annotated[AppContext, Depends(get_context)]) -> Response:
    body, content_type = ctx.metrics.render()
    return Response(body, media_type=content_type)
