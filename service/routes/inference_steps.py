"""The steps every inference route shares (classify, timeline, stream): pick and check the model,
check the common parameters, map decode errors to problems, and wait for the batcher.

Each check raises the ``Problem`` the HTTP contract names (DESIGN.md section 6), so the routes
answer the same input with the same status whichever endpoint it reaches.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future

import events
from service.batcher import SampleResult
from service.dependencies import AppContext
from service.energy import EnergyProfile
from service.problems import Problem
from service.registry import ServedModel

SENSOR_SIZE = re.compile(r"^\s*(\d{1,5})\s*[,xX]\s*(\d{1,5})\s*$")
DECODE_KINDS = {400: "undecodable-file", 413: "recording-too-large", 415: "unknown-format"}


def default_model(ctx: AppContext) -> ServedModel:
    """The default model, or 503 while loading / when the repository holds none."""
    model = ctx.registry.default()
    if model is None:
        loading = not ctx.registry.loaded.is_set()
        detail = "models are still loading" if loading else "the model repository holds no model; see /v1/models"
        raise Problem(503, "not-ready", detail, retry_after=1 if loading else 60)
    return model


def check_serves_events(model: ServedModel) -> None:
    """503 unless the model is loaded; 415 unless it takes event frames."""
    if not model.ready:
        detail = f"model {model.name!r} is {model.state}" + (f": {model.error}" if model.error else "")
        raise Problem(503, "model-unavailable", detail, retry_after=1 if model.state == "loading" else 60)
    manifest = model.manifest
    if manifest.input.encoding != "event-frames" or manifest.input.channels != 2:
        raise Problem(
            415,
            "model-takes-no-events",
            f"model {model.name!r} takes {manifest.input.encoding} input, not event files; use an event-camera model",
        )


def require_step_outputs(model: ServedModel, feature: str) -> None:
    """A 422 naming the fix when ``model`` was exported before the per-step outputs ``feature`` needs."""
    if not model.manifest.has_step_outputs:
        raise Problem(
            422,
            "model-lacks-step-outputs",
            f"{feature} needs per-step outputs, and model {model.name!r} version {model.version} was exported before "
            f"they existed: re-export it (python -m export CHECKPOINT --out REPOSITORY --force)",
        )


def check_format(format: str | None) -> None:
    if format is not None and format not in events.FORMATS:
        raise Problem(415, "unknown-format", f"unknown format {format!r}; known: {', '.join(events.FORMATS)}")


def check_early_exit(margin: float | None) -> None:
    if margin is not None and not 0 < margin <= 1:
        raise Problem(422, "invalid-parameters", f"early_exit is a margin in (0, 1], not {margin:g}")


def energy_profile(ctx: AppContext, model: ServedModel, name: str | None) -> EnergyProfile:
    """The request's profile, else the server's default, else the manifest's; 422 when unknown."""
    profile_name = name or ctx.settings.energy_profile or model.manifest.energy.profile
    profile = ctx.profiles.get(profile_name)
    if profile is None:
        raise Problem(
            422, "invalid-parameters", f"unknown energy_profile {profile_name!r}; known: {', '.join(ctx.profiles)}"
        )
    return profile


def window_defaults(
    model: ServedModel, window_us: int | None, stride_us: int | None, min_events: int | None
) -> tuple[int, int, int]:
    """``(window_us, stride_us, min_events)`` of a timeline or stream, the manifest's where the request
    gives none (DESIGN.md section 10): its window, half of it as stride, max(T, 1 % of a training
    recording's events) as the idle threshold."""
    spec = model.manifest.input
    window_us = window_us if window_us is not None else spec.window_us
    if not window_us:
        raise Problem(422, "invalid-parameters", f"model {model.name!r} records no window length: send window_ms")
    stride_us = stride_us if stride_us is not None else window_us // 2
    if window_us < 1 or stride_us < 1:
        raise Problem(422, "invalid-parameters", "window and stride must be at least 1 microsecond")
    steps = model.manifest.time_steps
    if min_events is None:
        min_events = max(steps, math.ceil(0.01 * spec.window_events)) if spec.window_events else steps
    return int(window_us), int(stride_us), min_events


def parse_sensor_size(value: str | None) -> tuple[int, int] | None:
    """'W,H' or 'WxH' -> (W, H); anything else is a 422."""
    if value is None:
        return None
    match = SENSOR_SIZE.match(value)
    if not match or int(match[1]) < 1 or int(match[2]) < 1:
        raise Problem(422, "invalid-parameters", f"sensor_size must be 'W,H' or 'WxH' (positive), not {value!r}")
    return int(match[1]), int(match[2])


def decode_problem(error: events.EventDecodeError, prefix: str = "") -> Problem:
    """The problem for a file that could not be decoded, framed or windowed (400, 413 or 415)."""
    return Problem(error.status, DECODE_KINDS.get(error.status, "undecodable-file"), prefix + str(error))


async def count_request(ctx: AppContext, model: ServedModel, work: Callable[[float], Awaitable]):
    """Run ``work(started)`` and count the request by its status and latency in the metrics, however it ends."""
    started = time.perf_counter()
    status = 500
    try:
        response = await work(started)
        status = getattr(response, "status_code", 200)
        return response
    except Problem as problem:
        status = problem.status_code
        raise
    finally:
        ctx.metrics.requests.labels(model.name, str(status)).inc()
        ctx.metrics.latency.labels(model.name).observe(time.perf_counter() - started)


async def wait_for_results(request, futures: list[Future], ctx: AppContext, model: ServedModel):
    """Every queued sample's result, or None when the client went away first (its samples are dropped).

    Past ``request_timeout_s`` the request is a 503 with ``Retry-After``; the samples still queued
    are cancelled either way before the batcher reaches them.
    """
    try:
        waiter = asyncio.gather(*(asyncio.wrap_future(f) for f in futures))
        gone = asyncio.create_task(_client_gone(request))
        timeout = ctx.settings.request_timeout_s
        done, _ = await asyncio.wait({waiter, gone}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        gone.cancel()
        if waiter in done:
            samples: list[SampleResult] = waiter.result()
            for sample in samples:
                ctx.metrics.queue_wait.labels(model.name).observe(sample.queue_s)
            return samples
        waiter.cancel()
        if gone in done:
            return None
        raise Problem(
            503,
            "timeout",
            f"no result within {ctx.settings.request_timeout_s:g} s; the server is overloaded",
            retry_after=ctx.settings.retry_after_s,
        )
    finally:
        for future in futures:
            future.cancel()


async def _client_gone(request) -> None:
    """Returns when the client disconnects (the body is already read, so only that message remains)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
