"""The service as a Ray Serve application: the FastAPI app of ``create_app`` as a Serve ingress deployment.

One replica is one Ray actor process holding its own models and dynamic batchers, built by the same
``create_app`` as ``python -m service`` (no second copy of routes, schemas or error handling) and
configured the same way, by ``STLSNN_*`` variables (``runtime_env.env_vars`` in ``deploy/ray/serve.yaml``).
What the Ray app adds, and only there:

- a replica reports itself started only once its models are loaded and warmed, and fails to start when
  ``/readyz`` would say 503 after loading, so Serve restarts it instead of sending it traffic;
- Serve's periodic health check runs the ``/readyz`` handler itself;
- every response carries ``X-Serve-Replica`` (the replica's id), the one visible change to the HTTP
  contract, so clients and tests can tell replicas apart; ``X-Request-ID`` is written once, by Serve's proxy;
- in Serve's proxy, a request whose replica died mid-way, or that timed out there, is answered with the
  service's 503 problem and ``Retry-After`` (retryable) instead of a bare 500 or a plain-text 408.

Replicas ask for one GPU when the cluster has GPUs and ``accelerator`` is ``auto`` (or ``gpu``), else
only CPU (``replica_cpus``, fractional so two replicas fit on a small machine). ``python -m service``
never imports this module, so the plain serve image needs no Ray.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import ray
from fastapi import FastAPI
from pydantic import BaseModel, Field
from ray import serve
from ray.serve import Application
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.app import create_app
from service.dependencies import AppContext
from service.problems import TYPE_PREFIX, ProblemResponse
from service.routes.health import readyz
from service.settings import Settings

log = logging.getLogger("stlsnn.service")

REPLICA_HEADER = "x-serve-replica"
DEPLOYMENT_NAME = "stlsnn"


class RayAppArgs(BaseModel):
    """The ``args`` of the application in ``deploy/ray/serve.yaml``, checked by ``build``."""

    accelerator: Literal["auto", "cpu", "gpu"] = Field(
        "auto", description="auto: one GPU per replica when the cluster has any GPU, else CPU only"
    )
    replica_cpus: float = Field(1.0, gt=0, description="CPUs reserved per replica (fractions allowed)")


class ServeResponseHeaders:
    """Pure ASGI middleware: adds ``X-Serve-Replica: <replica id>`` to every HTTP response and drops the app's
    ``X-Request-ID``, because Serve's proxy adds that header itself, with the same id (the one it passed in)."""

    def __init__(self, app: ASGIApp, replica: str):
        self.app = app
        self.header = (REPLICA_HEADER.encode(), replica.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_replica(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(key, value) for key, value in message.get("headers", []) if key.lower() != b"x-request-id"]
                message["headers"] = [*kept, self.header]
            await send(message)

        await self.app(scope, receive, send_with_replica)


class ProxyFailuresAs503:
    """Serve proxy middleware: the two ways Serve's proxy itself fails a request become the service's 503
    problem document with ``Retry-After`` (its answer for "try again"), as the plain service would answer:

    - the replica died before answering (the proxy alone ends in a bare 500): ``replica-unavailable``;
    - no answer within ``http_options.request_timeout_s`` (the proxy's plain-text 408; the app never sends
      408): ``timeout``, as the plain service answers its own request timeout.

    Installed in the proxy by ``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH=service.ray_app:proxy_middlewares``
    in each node's environment (the proxy is Ray's, not the application's). Any other response passes as is.
    """

    def __init__(self, app: ASGIApp, retry_after_s: int = 1):
        self.app = app
        self.retry_after_s = retry_after_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = timed_out = False

        async def tracking_send(message: Message) -> None:
            nonlocal started, timed_out
            if message["type"] == "http.response.start" and message["status"] == 408:
                timed_out = True
            elif not timed_out:
                started = started or message["type"] == "http.response.start"
                await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            if started:
                raise
            log.warning("request lost its replica", exc_info=True)
        if started:
            return
        if timed_out:
            await self._problem(scope, receive, send, "timeout", "no answer within the request timeout; retry")
        else:
            detail = "the replica serving this request stopped before it answered; retry"
            await self._problem(scope, receive, send, "replica-unavailable", detail)

    async def _problem(self, scope: Scope, receive: Receive, send: Send, kind: str, detail: str) -> None:
        request_id = next((v.decode() for k, v in scope.get("headers", []) if k == b"x-request-id"), None)
        body = {"type": TYPE_PREFIX + kind, "title": "Service Unavailable", "status": 503, "detail": detail}
        headers = {"Retry-After": str(self.retry_after_s)}
        if request_id:
            body["request_id"] = request_id
            headers["X-Request-ID"] = request_id
        await ProblemResponse(body, status_code=503, headers=headers)(scope, receive, send)


def proxy_middlewares() -> list[Middleware]:
    """The middlewares Serve's HTTP proxy adds (``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH`` names this)."""
    return [Middleware(ProxyFailuresAs503)]


class ModelsFailedToLoad(RuntimeError):
    """Raised during replica startup when no model serves, so Serve replaces the replica."""


def gate_startup_on_models(app: FastAPI) -> None:
    """Make the app's lifespan startup end only once the models are loaded, and fail if none serves.

    ``create_app``'s lifespan loads models in the background so a plain server answers ``/healthz`` at
    once; under Serve a replica takes traffic as soon as its startup ends, so the wait moves there.
    """
    original = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with original(app):
            context: AppContext = app.state.context
            await asyncio.to_thread(context.registry.loaded.wait)
            if not context.registry.ready:
                states = {model.name: model.error for model in context.registry.snapshot()}
                raise ModelsFailedToLoad(context.registry.startup_error or f"no model could be loaded: {states}")
            yield

    app.router.lifespan_context = lifespan


@serve.deployment(name=DEPLOYMENT_NAME)
@serve.ingress()
class StlsnnIngress:
    """One replica: the service's FastAPI app, built in the replica from its ``STLSNN_*`` environment."""

    def __init__(self) -> None:
        self.context: AppContext | None = None

    async def __serve_build_asgi_app__(self) -> FastAPI:
        app = create_app(Settings())
        gate_startup_on_models(app)
        app.add_middleware(ServeResponseHeaders, replica=serve.get_replica_context().replica_tag)
        self.context = app.state.context
        return app

    async def check_health(self) -> None:
        """Serve's health check: the ``/readyz`` handler, whose 503 (a ``Problem``) marks the replica unhealthy."""
        if self.context is None:
            raise RuntimeError("the app is not built yet")
        await readyz(self.context)


def replica_actor_options(args: RayAppArgs, cluster_gpus: float) -> dict[str, float]:
    """``ray_actor_options`` for a replica: one GPU when asked or (``auto``) when the cluster has one."""
    options = {"num_cpus": args.replica_cpus}
    if args.accelerator == "gpu" or (args.accelerator == "auto" and cluster_gpus > 0):
        options["num_gpus"] = 1
    return options


def build(raw_args: dict) -> Application:
    """The application builder ``deploy/ray/serve.yaml`` names (``import_path: service.ray_app:build``)."""
    args = RayAppArgs.model_validate(raw_args)
    gpus = ray.cluster_resources().get("GPU", 0) if args.accelerator == "auto" else 0
    return StlsnnIngress.options(ray_actor_options=replica_actor_options(args, gpus)).bind()
