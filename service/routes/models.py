"""What the server serves: every model with its state, and one model's manifest."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from service.dependencies import AppContext, get_context
from service.problems import Problem
from service.registry import NAME_PATTERN, Registry, ServedModel
from service.schemas import ModelDetail, ModelList, ModelSummary, problem_responses
from service.security import require_api_key

router = APIRouter(prefix="/v1", tags=["models"], dependencies=[Depends(require_api_key)])

ModelName = Annotated[str, Path(pattern=NAME_PATTERN, description="model name (a folder of the repository)")]


def find_model(registry: Registry, name: str) -> ServedModel:
    """The named model, or the problem that says why there is none to use (404, 503 while loading)."""
    model = registry.get(name)
    if model is None:
        if not registry.loaded.is_set():
            raise Problem(503, "not-ready", "models are still loading")
        raise Problem(404, "unknown-model", f"no model named {name!r}; see /v1/models")
    return model


@router.get(
    "/models",
    response_model=ModelList,
    summary="Every model, its state and runtime facts",
    responses=problem_responses(401),
)
async def list_models(ctx: Annotated[AppContext, Depends(get_context)]) -> ModelList:
    registry = ctx.registry
    default = registry.default()
    return ModelList(
        default=default.name if default else None,
        models=[ModelSummary(**m.summary()) for m in registry.snapshot()],
    )


@router.get(
    "/models/{name}",
    response_model=ModelDetail,
    summary="One model's manifest and runtime facts",
    responses=problem_responses(401, 404, 422, 503),
)
async def get_model(name: ModelName, ctx: Annotated[AppContext, Depends(get_context)]) -> ModelDetail:
    model = find_model(ctx.registry, name)
    manifest = model.manifest.to_dict() if model.manifest is not None else None
    return ModelDetail(**model.summary(), manifest=manifest)
