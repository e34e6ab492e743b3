"""``POST /v1/models/{name}/timeline``: what happens when in a long recording (DESIGN.md section 10).

The recording is decoded under the same limits as classify, cut into windows (default: the
manifest's ``window_us``, stride half of it), each busy window framed as one sample, and all of
them queued to the dynamic batcher together. More windows than ``STLSNN_MAX_TIMELINE_WINDOWS``
is a 413 that names the limit. Needs a model exported with per-step outputs.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import Response

import events
from service.batcher import Overloaded
from service.dependencies import AppContext, get_context
from service.ingest import MAX_DENOISE_US, IngestLimits, WindowParams, framing_spec, prepare_windows
from service.problems import Problem
from service.registry import ServedModel
from service.routes.inference_steps import (
    check_early_exit,
    check_format,
    check_serves_events,
    count_request,
    decode_problem,
    default_model,
    energy_profile,
    parse_sensor_size,
    require_step_outputs,
    wait_for_results,
    window_defaults,
)
from service.routes.models import ModelName, find_model
from service.schemas import TimelineResponse, problem_responses
from service.security import require_api_key
from service.timeline_report import merge_segments, timeline_energy, window_report

router = APIRouter(prefix="/v1", tags=["timeline"], dependencies=[Depends(require_api_key)])


@dataclass
class TimelineParams:
    """The multipart form of a timeline request."""

    upload: UploadFile
    window_ms: float | None
    stride_ms: float | None
    min_events: int | None
    format: str | None
    sensor_size: str | None
    energy_profile: str | None
    early_exit: float | None
    denoise_us: int | None = None
    hot_pixels: bool | None = None


async def timeline_form(
    file: Annotated[UploadFile, File(description="one event file, typically a long recording")],
    window_ms: Annotated[float | None, Form(description="window length (default: the model's window_us)")] = None,
    stride_ms: Annotated[
        float | None, Form(description="step between window starts (default: half the window)")
    ] = None,
    min_events: Annotated[
        int | None, Form(description="fewer events make a window idle (default: max(T, 1 % of a training sample's))")
    ] = None,
    format: Annotated[str | None, Form(description="decoder name (skips detection), e.g. evt3, aedat4")] = None,
    sensor_size: Annotated[str | None, Form(description="override the sensor size: 'W,H' or 'WxH'")] = None,
    energy_profile: Annotated[str | None, Form(description="energy profile name (default: the model's)")] = None,
    early_exit: Annotated[float | None, Form(description="early decision margin in (0, 1], per window")] = None,
    denoise_us: Annotated[
        int | None, Form(ge=0, le=MAX_DENOISE_US, description="background-activity window, us; 0 = off")
    ] = None,
    hot_pixels: Annotated[bool | None, Form(description="drop hot pixels' events (default: the model's)")] = None,
) -> TimelineParams:
    for name, value in (("window_ms", window_ms), ("stride_ms", stride_ms)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise Problem(422, "invalid-parameters", f"{name} must be a positive number of milliseconds")
    if min_events is not None and min_events < 1:
        raise Problem(422, "invalid-parameters", "min_events must be at least 1")
    check_early_exit(early_exit)
    return TimelineParams(
        file,
        window_ms,
        stride_ms,
        min_events,
        format or None,
        sensor_size or None,
        energy_profile or None,
        early_exit,
        denoise_us,
        hot_pixels,
    )


ROUTE = {"response_model": TimelineResponse, "responses": problem_responses(400, 401, 404, 413, 415, 422, 503)}


@router.post("/models/{name}/timeline", summary="Windows, segments and energy over a long recording", **ROUTE)
async def timeline_named(
    request: Request,
    name: ModelName,
    params: Annotated[TimelineParams, Depends(timeline_form)],
    ctx: Annotated[AppContext, Depends(get_context)],
):
    return await timeline(request, find_model(ctx.registry, name), params, ctx)


@router.post("/timeline", summary="Windows, segments and energy over a long recording (default model)", **ROUTE)
async def timeline_default(
    request: Request,
    params: Annotated[TimelineParams, Depends(timeline_form)],
    ctx: Annotated[AppContext, Depends(get_context)],
):
    return await timeline(request, default_model(ctx), params, ctx)


def window_params(model: ServedModel, params: TimelineParams, max_windows: int) -> WindowParams:
    """The request's windowing, defaults from the manifest (DESIGN.md section 10)."""
    window_us = round(params.window_ms * 1000) if params.window_ms is not None else None
    stride_us = round(params.stride_ms * 1000) if params.stride_ms is not None else None
    return WindowParams(*window_defaults(model, window_us, stride_us, params.min_events), max_windows)


async def timeline(request: Request, model: ServedModel, params: TimelineParams, ctx: AppContext):
    request.state.log.update(model=model.name, files=1, route="timeline")
    return await count_request(ctx, model, lambda started: _timeline(request, model, params, ctx, started))


async def _timeline(request: Request, model: ServedModel, params: TimelineParams, ctx: AppContext, started: float):
    check_serves_events(model)
    require_step_outputs(model, "timeline")
    check_format(params.format)
    profile = energy_profile(ctx, model, params.energy_profile)
    override = parse_sensor_size(params.sensor_size)
    windowing = window_params(model, params, ctx.settings.max_timeline_windows)
    limits = IngestLimits.of(ctx.settings)
    filename = params.upload.filename

    model.batcher.expect(1)
    try:
        prepared = await asyncio.get_running_loop().run_in_executor(
            ctx.decode_pool,
            prepare_windows,
            params.upload.file,
            filename,
            params.format,
            override,
            model.manifest,
            limits,
            windowing,
            framing_spec(model.manifest, params.denoise_us, params.hot_pixels),
        )
    except BaseException as error:
        model.batcher.forget(1)
        if isinstance(error, events.EventDecodeError):
            raise decode_problem(error) from None
        raise
    ctx.metrics.decode.observe(prepared.decode_s)
    ctx.metrics.frame.observe(prepared.frame_s)
    windows = prepared.windows
    samples = []
    if len(windows.frames):
        try:
            futures = model.batcher.submit_group(list(windows.frames))
        except Overloaded as exc:
            raise Problem(503, "overloaded", str(exc), retry_after=ctx.settings.retry_after_s) from None
        samples = await wait_for_results(request, futures, ctx, model)
        if samples is None:
            request.state.log["outcome"] = "client disconnected"
            return Response(status_code=499)
    else:
        model.batcher.forget(1)
    ctx.metrics.windows.labels(model.name, "timeline").inc(len(samples))
    by_window = dict(zip(windows.classified.tolist(), samples, strict=True))
    reports = [
        window_report(
            model.manifest,
            windows.start_us[i],
            windows.end_us[i],
            windows.events[i],
            by_window.get(i),
            profile,
            params.early_exit,
        )
        for i in range(len(windows))
    ]
    segments = merge_segments(reports)
    request.state.log["segments"] = [segment["label"] for segment in segments]
    return {
        "model": {"name": model.name, "version": model.version},
        "input": prepared.input,
        "windows": reports,
        "segments": segments,
        "energy": timeline_energy(model.manifest, reports, profile),
        "timing_ms": {
            "decode": prepared.decode_s * 1000,
            "frame": prepared.frame_s * 1000,
            "queue": max((sample.queue_s for sample in samples), default=0.0) * 1000,
            "infer": max((sample.infer_s for sample in samples), default=0.0) * 1000,
            "total": (time.perf_counter() - started) * 1000,
        },
    }
