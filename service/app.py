"""``create_app``: the FastAPI application, its middleware, routes and lifespan.

Startup returns at once and loads the models in a worker thread, so ``/healthz`` answers while
``/readyz`` says 503 until every model is loaded and warmed. Shutdown (after uvicorn has let
in-flight requests finish) drains every batcher, then the decode pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from service.dependencies import AppContext
from service.energy import load_profiles
from service.gpu_energy import GpuEnergyMeter
from service.metrics import Metrics
from service.problems import install_problem_handlers
from service.registry import Registry
from service.request_logging import RequestLogMiddleware
from service.routes import classify, examples, health, models, stream, timeline
from service.routes.page import mount_page
from service.schemas import ProblemDetails
from service.settings import Settings
from service.upload_limit import UploadLimitMiddleware

DESCRIPTION = (
    "Classifies event-camera recordings with exported STL-SNNs (spiking networks with learned per-neuron "
    "thresholds) and reports spike counts and an energy estimate per request. Errors are RFC 9457 "
    "application/problem+json."
)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    context: AppContext = app.state.context
    settings, registry = context.settings, context.registry
    if settings.nvml:
        registry.meter = await asyncio.to_thread(GpuEnergyMeter)
    loading = asyncio.create_task(asyncio.to_thread(registry.load_all))
    try:
        yield
    finally:
        await loading
        await asyncio.to_thread(registry.close, settings.graceful_shutdown_s or None)
        context.decode_pool.shutdown(wait=True)
        context.metrics.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()
    app = FastAPI(title="STL-SNN Serve", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.context = AppContext(
        settings=settings,
        registry=Registry(settings, metrics),
        metrics=metrics,
        profiles=load_profiles(),
        decode_pool=ThreadPoolExecutor(settings.decode_workers, thread_name_prefix="decode"),
    )
    install_problem_handlers(app)
    for router in (health.router, models.router, classify.router, timeline.router, stream.router, examples.router):
        app.include_router(router)
    mount_page(app)
    app.add_middleware(UploadLimitMiddleware, max_bytes=settings.max_upload_bytes)
    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    app.add_middleware(RequestLogMiddleware, metrics=metrics)
    _register_problem_schema(app)
    return app


def _register_problem_schema(app: FastAPI) -> None:
    """Make sure ``ProblemDetails`` is in the OpenAPI components the error responses refer to."""
    original = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = original()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.setdefault("ProblemDetails", ProblemDetails.model_json_schema())
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
