"""Classify uploaded event files: validate, decode and frame (small files on the event loop, others
in threads; ``service.ingest`` says where the line is and why), batch, report.

A request carries one ``file`` (answered with one result) or several ``files`` (answered with
``{"results": [...]}`` in upload order; all its samples join the same batches). Work for a
client that disconnects or times out is cancelled before it reaches the model.
"""

from __future__ import annotations

import asyncio
import io
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePath
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import Response

import events
from service.batcher import Announcement, Overloaded, SampleResult
from service.dependencies import AppContext, get_context
from service.early_decision import NOTE as EARLY_DECISION_NOTE
from service.early_decision import decide, decided_energy_pj
from service.energy import EnergyProfile, estimate
from service.frame_payload import encode_frames
from service.ingest import (
    INLINE_MAX_BYTES,
    MAX_DENOISE_US,
    IngestLimits,
    Prepared,
    framing_spec,
    inline_format,
    inline_limits,
    over_inline_budget,
    prepare,
)
from service.multipart_form import FormPart
from service.problems import Problem
from service.registry import NAME_PATTERN, ServedModel
from service.routes.fast_form import FALLBACK, fast_form_route, read_plain_form, small_form_boundary
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
)
from service.routes.models import ModelName, find_model
from service.schemas import ClassifyBatchResponse, ClassifyResponse, problem_responses
from service.security import bearer, require_api_key

router = APIRouter(prefix="/v1", tags=["classify"], dependencies=[Depends(require_api_key)])

DEFAULT_TOP_K = 5
NAME = re.compile(NAME_PATTERN)


@dataclass
class ClassifyParams:
    """The multipart form of a classify request."""

    uploads: list[UploadFile]
    many: bool
    format: str | None
    top_k: int | None
    sensor_size: str | None
    energy_profile: str | None
    early_exit: float | None = None
    include_frames: bool = False
    denoise_us: int | None = None
    hot_pixels: bool | None = None


async def classify_form(
    file: Annotated[UploadFile | None, File(description="one event file")] = None,
    files: Annotated[list[UploadFile] | None, File(description="several event files, classified together")] = None,
    format: Annotated[str | None, Form(description="decoder name (skips detection), e.g. evt3, aedat4")] = None,
    top_k: Annotated[int | None, Form(description="how many classes to list (1..classes, default 5)")] = None,
    sensor_size: Annotated[str | None, Form(description="override the sensor size: 'W,H' or 'WxH'")] = None,
    energy_profile: Annotated[str | None, Form(description="energy profile name (default: the model's)")] = None,
    early_exit: Annotated[
        float | None,
        Form(
            description="early decision margin in (0, 1]: report the first step whose running top-1 minus top-2 "
            "score reaches it, and the energy of the steps up to it"
        ),
    ] = None,
    include: Annotated[str | None, Form(description="'frames': add input.frames, the frames the model saw")] = None,
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
    check_early_exit(early_exit)
    if include not in (None, "", "frames"):
        raise Problem(422, "invalid-parameters", f"include must be 'frames', not {include!r}")
    return ClassifyParams(
        uploads,
        file is None,
        format or None,
        top_k,
        sensor_size or None,
        energy_profile or None,
        early_exit,
        include == "frames",
        denoise_us=denoise_us,
        hot_pixels=hot_pixels,
    )


TEXT_FIELDS = ("format", "sensor_size", "energy_profile", "include")
WHOLE = re.compile(r"0|[1-9][0-9]{0,8}")
SIGNED_WHOLE = re.compile(r"0|-?[1-9][0-9]{0,8}")
DECIMAL = re.compile(r"[0-9]{1,9}(\.[0-9]{1,17})?|\.[0-9]{1,17}")
BOOLEANS = {"true": True, "false": False, "1": True, "0": False}


def form_values(parts: list[FormPart]) -> dict | None:
    """``classify_form``'s arguments from a plain form's parts, or None unless each field is present at most
    once (``files`` any number of times), of its kind (file or text), and written the way FastAPI's
    validation reads it unchanged; None sends the request through FastAPI's own parsing and errors."""
    values: dict = {}
    uploads: list[UploadFile] = []
    for part in parts:
        name, filename = part.name, part.filename
        if name in ("file", "files"):
            if not filename or (name == "file" and name in values):
                return None
            upload = UploadFile(io.BytesIO(part.data), size=len(part.data), filename=filename)
            if name == "file":
                values["file"] = upload
            else:
                uploads.append(upload)
            continue
        if filename is not None or name in values:
            return None
        try:
            text = part.data.decode()
        except UnicodeDecodeError:
            return None
        value = _field_value(name, text)
        if value is None:
            return None
        values[name] = value
    if uploads:
        values["files"] = uploads
    return values


def _field_value(name: str, text: str) -> object | None:
    """A text field's value as FastAPI's validation gives it, for the spellings it takes unchanged; else None."""
    if name in TEXT_FIELDS:
        return text or None
    if name == "top_k" and SIGNED_WHOLE.fullmatch(text):
        return int(text)
    if name == "denoise_us" and WHOLE.fullmatch(text) and int(text) <= MAX_DENOISE_US:
        return int(text)
    if name == "early_exit" and DECIMAL.fullmatch(text):
        return float(text)
    if name == "hot_pixels":
        return BOOLEANS.get(text)
    return None


ROUTE = {
    "response_model": ClassifyResponse | ClassifyBatchResponse,
    "responses": problem_responses(400, 401, 404, 413, 415, 422, 503),
    "response_model_exclude_unset": True,  # input.frames only when asked for
}


async def classify_named(
    request: Request,
    name: ModelName,
    params: Annotated[ClassifyParams, Depends(classify_form)],
    ctx: Annotated[AppContext, Depends(get_context)],
):
    return await classify(request, find_model(ctx.registry, name), params, ctx)


async def classify_default(
    request: Request,
    params: Annotated[ClassifyParams, Depends(classify_form)],
    ctx: Annotated[AppContext, Depends(get_context)],
):
    return await classify(request, default_model(ctx), params, ctx)


async def classify_fast(request: Request):
    """Either route for a small plain form: the same dependencies and checks, called directly
    (``service.routes.fast_form``); ``FALLBACK`` unless every field is one FastAPI would accept as is.

    The sample is announced to the model's batcher as soon as the headers are in, and the handler
    yields once before reading the body, so requests that arrive together are all announced before
    the first is decoded: the batcher then waits for them instead of running a batch of one."""
    boundary = small_form_boundary(request)
    name = request.path_params.get("name")
    if boundary is None or (name is not None and not NAME.fullmatch(name)):
        return FALLBACK
    announcement = _announce(request.app.state.context, name)
    try:
        if announcement is not None:
            await asyncio.sleep(0)
        parts = await read_plain_form(request, boundary)
        values = None if parts is None else form_values(parts)
        if values is None:
            return FALLBACK
        await require_api_key(request, await bearer(request))
        params = await classify_form(**values)
        ctx = await get_context(request)
        model = default_model(ctx) if name is None else find_model(ctx.registry, name)
        return await classify(request, model, params, ctx, announcement)
    finally:
        if announcement is not None:
            announcement.withdraw()


def _announce(ctx: AppContext, name: str | None) -> Announcement | None:
    """One sample announced to the batcher of the model a request names (or the default), if it is ready."""
    model = ctx.registry.default() if name is None else ctx.registry.get(name)
    return model.batcher.announce(1) if model is not None and model.ready else None


_fast_route = fast_form_route(classify_fast)
for _path, _endpoint, _summary in (
    ("/models/{name}/classify", classify_named, "Classify event files with the named model"),
    ("/classify", classify_default, "Classify event files with the default model"),
):
    router.add_api_route(
        _path, _endpoint, methods=["POST"], summary=_summary, route_class_override=_fast_route, **ROUTE
    )


async def classify(
    request: Request,
    model: ServedModel,
    params: ClassifyParams,
    ctx: AppContext,
    announcement: Announcement | None = None,
):
    request.state.log.update(model=model.name, files=len(params.uploads))
    return await count_request(
        ctx, model, lambda started: _classify(request, model, params, ctx, started, announcement)
    )


async def _classify(
    request: Request,
    model: ServedModel,
    params: ClassifyParams,
    ctx: AppContext,
    started: float,
    announcement: Announcement | None,
):
    check_serves_events(model)
    manifest = model.manifest
    if len(params.uploads) > ctx.settings.max_files:
        raise Problem(413, "too-many-files", f"{len(params.uploads)} files, limit {ctx.settings.max_files}")
    check_format(params.format)
    classes = len(manifest.classes)
    top_k = params.top_k if params.top_k is not None else min(DEFAULT_TOP_K, classes)
    if not 1 <= top_k <= classes:
        raise Problem(422, "invalid-parameters", f"top_k must be between 1 and {classes}")
    profile = energy_profile(ctx, model, params.energy_profile)
    override = parse_sensor_size(params.sensor_size)
    if params.early_exit is not None:
        require_step_outputs(model, "early_exit")

    announced = announcement.take(model.batcher) if announcement is not None else 0
    model.batcher.expect(len(params.uploads) - announced)
    try:
        prepared = await _prepare_all(model, params, override, ctx, announced > 0)
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
        build_result(model, p, s, top_k, profile, gpu_note, total_ms, params.early_exit)
        for p, s in zip(prepared, samples, strict=True)
    ]
    if params.include_frames:
        for result, sample in zip(results, prepared, strict=True):
            result["input"]["frames"] = encode_frames(sample.frames)
    for result in results:
        ctx.metrics.spikes.labels(model.name).observe(result["spikes"]["total"])
    request.state.log["prediction"] = [r["prediction"]["label"] for r in results]
    return {"results": results} if params.many else results[0]


async def _prepare_all(
    model: ServedModel,
    params: ClassifyParams,
    override: tuple[int, int] | None,
    ctx: AppContext,
    announced_on_arrival: bool,
) -> list[Prepared]:
    """Decode and frame every upload: on the loop, one after the other and within the loop's budget
    (``service.ingest``), when all of them are small and cheap and either the request was announced on
    arrival (``classify_fast``) or the model has no other sample queued or announced; else, and for
    any upload the budget stopped, in the thread pool, in parallel.

    The batcher waits for more samples only while some are announced. A request decoded on the loop
    that was not announced on arrival is announced and submitted in one step, so under load its
    batches would shrink (12 to 4 samples at concurrency 32 in BENCHMARKS.md) and cost more model CPU
    than the hop to a thread saves; announced on arrival, it keeps the batcher collecting."""
    limits = IngestLimits.of(ctx.settings)
    names = [_safe_name(upload.filename) for upload in params.uploads]
    manifest = model.manifest
    spec = framing_spec(manifest, params.denoise_us, params.hot_pixels)
    quiet = model.batcher.pending <= len(params.uploads)
    inline = _inline_formats(params) if announced_on_arrival or quiet else None
    outcomes: list[Prepared | BaseException | None] = [None] * len(names)
    if inline is not None:
        budget = inline_limits(limits)
        outcomes = [
            _outcome(prepare, upload.file, name, format, override, manifest, budget, spec)
            for upload, name, format in zip(params.uploads, names, inline, strict=True)
        ]
    threaded = [i for i, outcome in enumerate(outcomes) if outcome is None or over_inline_budget(outcome, limits)]
    if threaded:
        loop = asyncio.get_running_loop()
        args = (params.format, override, manifest, limits, spec)
        jobs = [
            loop.run_in_executor(ctx.decode_pool, prepare, params.uploads[i].file, names[i], *args) for i in threaded
        ]
        for i, outcome in zip(threaded, await asyncio.gather(*jobs, return_exceptions=True), strict=True):
            outcomes[i] = outcome
    for name, outcome in zip(names, outcomes, strict=True):
        if isinstance(outcome, events.EventDecodeError):
            raise decode_problem(outcome, f"{name}: " if params.many and name else "")
        if isinstance(outcome, BaseException):
            raise outcome
    for prepared in outcomes:
        ctx.metrics.decode.observe(prepared.decode_s)
        ctx.metrics.frame.observe(prepared.frame_s)
    return outcomes


def _inline_formats(params: ClassifyParams) -> list[str] | None:
    """Each upload's format when all of them fit on the loop together (``INLINE_MAX_BYTES`` in all), else None."""
    if sum(upload.size or 0 for upload in params.uploads) > INLINE_MAX_BYTES:
        return None
    formats = []
    for upload in params.uploads:
        format = inline_format(upload.file, upload.size, upload.filename, params.format)
        if format is None:
            return None
        formats.append(format)
    return formats


def _outcome(work: Callable[..., Prepared], *args) -> Prepared | Exception:
    """``work(*args)``'s result or the exception it raised, as ``asyncio.gather(return_exceptions=True)`` gives."""
    try:
        return work(*args)
    except Exception as exc:
        return exc


async def _infer(
    request: Request, model: ServedModel, prepared: list[Prepared], ctx: AppContext
) -> list[SampleResult] | None:
    """Queue every sample and wait; None when the client went away first (its samples are dropped)."""
    futures = []
    try:
        for sample in prepared:
            futures.append(model.batcher.submit(sample.frames))
    except Overloaded as exc:
        model.batcher.forget(len(prepared) - len(futures) - 1)
        for future in futures:
            future.cancel()
        raise Problem(503, "overloaded", str(exc), retry_after=ctx.settings.retry_after_s) from None
    return await wait_for_results(request, futures, ctx, model)


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
    early_exit: float | None = None,
) -> dict:
    """One file's result as DESIGN.md section 6 lays it out (plus ``decision`` for an early-exit margin)."""
    manifest = model.manifest
    scores = np.asarray(sample.scores, dtype=np.float64)
    order = np.argsort(-scores, kind="stable")[:top_k]
    ranked = [{"index": int(i), "label": manifest.classes[i], "score": float(scores[i])} for i in order]
    layers = []
    for i, (layer, count) in enumerate(zip(manifest.lif_layers, sample.spikes.tolist(), strict=True)):
        count = round(count)
        entry = {"name": layer.name, "neurons": layer.neurons, "count": count}
        entry["rate"] = count / (layer.neurons * manifest.time_steps)
        steps = sample.step_spikes
        entry["steps"] = None if steps is None else [round(c) for c in steps[:, i].tolist()]
        layers.append(entry)
    energy = estimate(manifest, np.rint(sample.sops).astype(np.int64), profile, sample.gpu_joules, gpu_note)
    decision = None
    if early_exit is not None:
        decided = decide(sample.step_scores, early_exit)
        decision = {
            "step": decided.step,
            "margin": decided.margin,
            "reached": decided.reached,
            "index": decided.index,
            "label": manifest.classes[decided.index],
        }
        energy["snn_pj_decided"] = decided_energy_pj(manifest, sample.step_sops, decided.step, profile)
        energy["assumptions"].append(EARLY_DECISION_NOTE)
    return {
        "model": {"name": model.name, "version": model.version},
        "prediction": ranked[0],
        "top_k": ranked,
        "input": prepared.input,
        "spikes": {"total": sum(layer["count"] for layer in layers), "layers": layers},
        "energy": energy,
        "decision": decision,
        "timing_ms": {
            "decode": prepared.decode_s * 1000,
            "frame": prepared.frame_s * 1000,
            "queue": sample.queue_s * 1000,
            "infer": sample.infer_s * 1000,
            "total": total_ms,
        },
    }
