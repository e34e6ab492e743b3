"""Classify uploaded event files: validate, decode and frame in threads, batch, report.

A request carries one ``file`` (answered with one result) or several ``files`` (answered with
``{"results": [...]}`` in upload order; all its samples join the same batches). Work for a
client that disconnects or times out is cancelled before it reaches the model.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from pathlib import PurePath
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import Response

import events
from service.batcher import Overloaded, SampleResult
from service.dependencies import AppContext, get_context
from service.energy import EnergyProfile, estimate
from service.ingest import IngestLimits, Prepared, framing_spec, prepare
from service.problems import Problem
from service.registry import ServedModel
from service.routes.models import ModelName, find_model
from service.schemas import ClassifyBatchResponse, ClassifyResponse, problem_responses
from service.security import require_api_key

router = APIRouter(prefix="/v1", tags=["classify"], dependencies=[Depends(require_api_key)])

SENSOR_SIZE = re.compile(r"^\s*(\d{1,5})\s*[,xX]\s*(\d{1,5})\s*$")
DEFAULT_TOP_K = 5
MAX_DENOISE_US = 10_000_000  # a 10 s window already keeps every event of a noisy pixel's neighbourhood
DECODE_KINDS = {400: "undecodable-file", 413: "recording-too-large", 415: "unknown-format"}


@dataclass
class ClassifyParams:
    """The multipart form of a classify request."""

    uploads: list[UploadFile]
    many: bool
    format: str | None
    top_k: int | None
    sensor_size: str | None
    energy_profile: str | None
    denoise_us: int | None = None
    hot_pixels: bool | None = None


async def classify_form(
    file: Annotated[UploadFile | None, File(description="one event file")] = None,
    files: Annotated[list[UploadFile] | None, File(description="several event files, classified together")] = None,
    format: Annotated[str | None, Form(description="decoder name (skips detection), e.g. evt3, aedat4")] = None,
    top_k: Annotated[int | None, Form(description="how many classes to list (1..classes, default 5)")] = None,
    sensor_size: Annotated[str | None, Form(description="override the sensor size: 'W,H' or 'WxH'")] = None,
    energy_profile: Annotated[str | None, Form(description="energy profile name (default: the model's)")] = None,
    denoise_us: Annotated[
        int | None, Form(ge=0, le=MAX_DENOISE_US, description="background-activity window, us; 0 = off")
    ] = None,
    hot_pixels: Annotated[bool | None, Form(description="drop hot pixels' events (default: the model's)")] = None,
) -> ClassifyParams:
    if file is not None and files:
        raise Problem(422, "invalid-parameters", "send either 'file' or 'files', not both")
    uploads = [file] if file is not None else list(files or [])
    if not uploads:
        raise Problem(422, "invalid-parameters", "no event file: send multipart field 'file' (or 'files')")
    return ClassifyParams(
        uploads,
        file is None,
        format or None,
        top_k,
        sensor_size or None,
        energy_profile or None,
        denoise_us=denoise_us,
        hot_pixels=hot_pixels,
    )


ROUTE = {
    "response_model": ClassifyResponse | ClassifyBatchResponse,
    "responses": problem_responses(400, 401, 404, 413, 415, 422, 503),
}


@router.post("/models/{name}/classify", summary="Classify event files with the named model", **ROUTE)
async def classify_named(
    request: Request,
    name: ModelName,
    params: Annotated[ClassifyParams, Depends(classify_form)],
    ctx: Annotated[AppContext, Depends(get_context)],
):
    return await classify(request, find_model(ctx.registry, name), params, ctx)


@router.post("/classify", summary="Classify event files with the default model", **ROUTE)
async def classify_default(
    request: Request,
    params: Annotated[ClassifyParams, Depends(classify_form)],
    ctx: Annotated[AppContext, Depends(get_context)],
):
    model = ctx.registry.default()
    if model is None:
        loading = not ctx.registry.loaded.is_set()
        detail = "models are still loading" if loading else "the model repository holds no model; see /v1/models"
        raise Problem(503, "not-ready", detail, retry_after=1 if loading else 60)
    return await classify(request, model, params, ctx)


async def classify(request: Request, model: ServedModel, params: ClassifyParams, ctx: AppContext):
    started = time.perf_counter()
    request.state.log.update(model=model.name, files=len(params.uploads))
    status = 500
    try:
        response = await _classify(request, model, params, ctx, started)
        status = getattr(response, "status_code", 200)
        return response
    except Problem as problem:
        status = problem.status_code
        raise
    finally:
        ctx.metrics.requests.labels(model.name, str(status)).inc()
        ctx.metrics.latency.labels(model.name).observe(time.perf_counter() - started)


async def _classify(request: Request, model: ServedModel, params: ClassifyParams, ctx: AppContext, started: float):
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
    if len(params.uploads) > ctx.settings.max_files:
        raise Problem(413, "too-many-files", f"{len(params.uploads)} files, limit {ctx.settings.max_files}")
    if params.format is not None and params.format not in events.FORMATS:
        raise Problem(415, "unknown-format", f"unknown format {params.format!r}; known: {', '.join(events.FORMATS)}")
    classes = len(manifest.classes)
    top_k = params.top_k if params.top_k is not None else min(DEFAULT_TOP_K, classes)
    if not 1 <= top_k <= classes:
        raise Problem(422, "invalid-parameters", f"top_k must be between 1 and {classes}")
    profile_name = params.energy_profile or ctx.settings.energy_profile or manifest.energy.profile
    profile = ctx.profiles.get(profile_name)
    if profile is None:
        raise Problem(
            422, "invalid-parameters", f"unknown energy_profile {profile_name!r}; known: {', '.join(ctx.profiles)}"
        )
    override = parse_sensor_size(params.sensor_size)

    model.batcher.expect(len(params.uploads))
    try:
        prepared = await _prepare_all(model, params, override, ctx)
    except BaseException:
        model.batcher.forget(len(params.uploads))
        raise
    samples = await _infer(request, model, prepared, ctx)
    if samples is None:
        request.state.log["outcome"] = "client disconnected"
        return Response(status_code=499)
    gpu_note = ctx.registry.gpu_note(model)
    total_ms = (time.perf_counter() - started) * 1000
    results = [
        build_result(model, p, s, top_k, profile, gpu_note, total_ms) for p, s in zip(prepared, samples, strict=True)
    ]
    for result in results:
        ctx.metrics.spikes.labels(model.name).observe(result["spikes"]["total"])
    request.state.log["prediction"] = [r["prediction"]["label"] for r in results]
    return {"results": results} if params.many else results[0]


def parse_sensor_size(value: str | None) -> tuple[int, int] | None:
    """'W,H' or 'WxH' -> (W, H); anything else is a 422."""
    if value is None:
        return None
    match = SENSOR_SIZE.match(value)
    if not match or int(match[1]) < 1 or int(match[2]) < 1:
        raise Problem(422, "invalid-parameters", f"sensor_size must be 'W,H' or 'WxH' (positive), not {value!r}")
    return int(match[1]), int(match[2])


async def _prepare_all(
    model: ServedModel, params: ClassifyParams, override: tuple[int, int] | None, ctx: AppContext
) -> list[Prepared]:
    """Decode and frame every upload in the thread pool, in parallel."""
    s = ctx.settings
    limits = IngestLimits(s.max_events, int(s.max_duration_s * 1e6), s.max_decompressed_bytes)
    loop = asyncio.get_running_loop()
    names = [_safe_name(upload.filename) for upload in params.uploads]
    manifest, pool = model.manifest, ctx.decode_pool
    spec = framing_spec(manifest, params.denoise_us, params.hot_pixels)
    jobs = [
        loop.run_in_executor(pool, prepare, upload.file, name, params.format, override, manifest, limits, spec)
        for upload, name in zip(params.uploads, names, strict=True)
    ]
    outcomes = await asyncio.gather(*jobs, return_exceptions=True)
    for name, outcome in zip(names, outcomes, strict=True):
        if isinstance(outcome, events.EventDecodeError):
            prefix = f"{name}: " if params.many and name else ""
            raise Problem(outcome.status, DECODE_KINDS.get(outcome.status, "undecodable-file"), prefix + str(outcome))
        if isinstance(outcome, BaseException):
            raise outcome
    for prepared in outcomes:
        ctx.metrics.decode.observe(prepared.decode_s)
        ctx.metrics.frame.observe(prepared.frame_s)
    return outcomes


async def _infer(
    request: Request, model: ServedModel, prepared: list[Prepared], ctx: AppContext
) -> list[SampleResult] | None:
    """Queue every sample and wait; None when the client went away first (its samples are dropped)."""
    futures = []
    try:
        try:
            for sample in prepared:
                futures.append(model.batcher.submit(sample.frames))
        except Overloaded as exc:
            model.batcher.forget(len(prepared) - len(futures) - 1)
            raise Problem(503, "overloaded", str(exc), retry_after=ctx.settings.retry_after_s) from None
        waiter = asyncio.gather(*(asyncio.wrap_future(f) for f in futures))
        gone = asyncio.create_task(_client_gone(request))
        timeout = ctx.settings.request_timeout_s
        done, _ = await asyncio.wait({waiter, gone}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        gone.cancel()
        if waiter in done:
            samples = waiter.result()
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


async def _client_gone(request: Request) -> None:
    """Returns when the client disconnects (the body is already read, so only that message remains)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _safe_name(filename: str | None) -> str | None:
    if not filename:
        return None
    return PurePath(filename.replace("\\", "/")).name[:200] or None


def build_result(
    model: ServedModel,
    prepared: Prepared,
    sample: SampleResult,
    top_k: int,
    profile: EnergyProfile,
    gpu_note: str,
    total_ms: float,
) -> dict:
    """One file's result as DESIGN.md section 6 lays it out."""
    manifest = model.manifest
    scores = np.asarray(sample.scores, dtype=np.float64)
    order = np.argsort(-scores, kind="stable")[:top_k]
    ranked = [{"index": int(i), "label": manifest.classes[i], "score": float(scores[i])} for i in order]
    layers = []
    for i, (layer, count) in enumerate(zip(manifest.lif_layers, sample.spikes.tolist(), strict=True)):
        count = round(count)
        entry = {"name": layer.name, "neurons": layer.neurons, "count": count}
        entry["rate"] = count / (layer.neurons * manifest.time_steps)
        if sample.step_spikes is not None:
            entry["steps"] = [round(c) for c in sample.step_spikes[:, i].tolist()]
        layers.append(entry)
    return {
        "model": {"name": model.name, "version": model.version},
        "prediction": ranked[0],
        "top_k": ranked,
        "input": prepared.input,
        "spikes": {"total": sum(layer["count"] for layer in layers), "layers": layers},
        "energy": estimate(manifest, np.rint(sample.sops).astype(np.int64), profile, sample.gpu_joules, gpu_note),
        "timing_ms": {
            "decode": prepared.decode_s * 1000,
            "frame": prepared.frame_s * 1000,
            "queue": sample.queue_s * 1000,
            "infer": sample.infer_s * 1000,
            "total": total_ms,
        },
    }
