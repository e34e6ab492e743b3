"""``WebSocket /v1/models/{name}/stream``: classify a live event stream window by window (DESIGN.md section 10).

Protocol: the first message is the JSON configuration (``format``, optional ``sensor_size``,
``window_ms``, ``stride_ms``, ``min_events``, ``early_exit``, ``api_key``); binary messages then
carry the byte stream, split anywhere; a text ``{"flush": true}`` closes the open windows and is
acknowledged by ``{"flushed": true, "dropped_windows": n}`` after their messages. Every
window that closes is answered by one JSON message shaped like a timeline window, plus
``latency_ms`` (last byte of the window received -> message sent), ``dropped_windows`` and
``skipped_windows`` (empty windows a time jump passed over), both counted since the start.

Noise filters (the model's, or ``denoise_us`` / ``hot_pixels`` of the configuration): the
background-activity filter runs once per event as the events arrive, with each pixel's last time
kept across messages (as a camera's on-chip filter runs), and windows are cut from the events it
keeps; the hot-pixel rule runs per window on those, as the timeline runs it. This differs from
the timeline, which filters each window on its own (hot pixels first), in three documented ways:
an event near a window's start may be kept here on the strength of a neighbour that fired just
before the window (the timeline's filter has no history there); a window's ``events`` counts
the events the background filter kept, and the windows' grid starts at the first kept event; a
hot pixel's events reach the background filter before the hot-pixel rule removes them (in noise
they seldom pass it: a hot pixel's neighbours are quiet). The same stream's answers equal the
timeline of the recording first filtered whole by ``events.denoise.background_activity`` with
``denoise_us=0``. Why: windows overlap (stride half a window), so per-window filtering filtered
every event twice on the receiving path, and the receive loop could not keep up at 5 Mev/s.

Memory per connection is bounded whatever the client sends: at most 4 received messages wait to
be decoded (``RECEIVED_AHEAD``, each at most ``STLSNN_STREAM_MAX_MESSAGE_BYTES``; reading goes on
while an earlier message is decoded, filtered and cut in the decode pool, then waits, slowing the
client through TCP), the decoder holds at most one packet, the background filter one int64 per
sensor pixel (7.4 MB for 1280x720), the window assembler at most
``STLSNN_STREAM_MAX_BUFFERED_EVENTS`` events (after the background filter), and at most
``STLSNN_STREAM_MAX_PENDING_WINDOWS`` windows wait for the model; a window that closes while
that many wait is dropped and counted, never queued. Idle windows cost the model nothing and are
not dropped for that, only when 64 times as many messages of any kind wait for a client that
does not read them. Close codes: 1003 undecodable data or a bad
configuration, 1008 missing or wrong API key, 1009 over a limit, 1013 too many open streams or
the model not ready, 4404 unknown model; 1011 only for a fault of the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from dataclasses import dataclass, replace

import numpy as np
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

import events
from events.denoise import BackgroundActivityFilter
from events.stream_windows import WindowAssembler, WindowCut
from events.windows import frame_window
from service.batcher import Overloaded
from service.dependencies import AppContext
from service.ingest import MAX_DENOISE_US, framing_spec, model_sensor
from service.problems import Problem
from service.registry import ServedModel
from service.routes.inference_steps import (
    check_early_exit,
    check_serves_events,
    energy_profile,
    parse_sensor_size,
    require_step_outputs,
    window_defaults,
)
from service.security import key_is_valid
from service.timeline_report import window_report

router = APIRouter(prefix="/v1", tags=["stream"])
log = logging.getLogger("stlsnn.stream")

UNSUPPORTED, POLICY, TOO_BIG, INTERNAL, TRY_LATER, UNKNOWN_MODEL = 1003, 1008, 1009, 1011, 1013, 4404
IDLE_PER_BUSY = 64  # queued windows of any kind per window that may wait for the model
RECEIVED_AHEAD = 4  # messages received while an earlier one is still being cut
CONFIG_KEYS = {
    "format",
    "sensor_size",
    "window_ms",
    "stride_ms",
    "min_events",
    "early_exit",
    "denoise_us",
    "hot_pixels",
    "api_key",
}


class StreamClosed(Exception):
    """End the connection with this close code and reason."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code, self.reason = code, reason


@dataclass
class StreamConfig:
    format: str
    sensor_size: tuple[int, int] | None
    window_us: int
    stride_us: int
    min_events: int
    early_exit: float | None
    denoise_us: int | None = None
    hot_pixels: bool | None = None


@dataclass
class WindowJob:
    """A closed window on its way to the model: its frames (None when idle) and when it closed."""

    cut: WindowCut
    frames: np.ndarray | None
    closed_at: float


@router.websocket("/models/{name}/stream")
async def stream(websocket: WebSocket, name: str) -> None:
    ctx: AppContext = websocket.app.state.context
    settings = ctx.settings
    await websocket.accept()
    if ctx.open_streams >= settings.max_streams:
        await _close(websocket, TRY_LATER, f"too many open streams (limit {settings.max_streams}); try again later")
        return
    ctx.open_streams += 1
    ctx.metrics.open_streams.inc()
    try:
        await _serve(websocket, name, ctx)
    except StreamClosed as closed:
        await _close(websocket, closed.code, closed.reason)
    except WebSocketDisconnect:
        pass
    except Exception:
        log.exception("stream failed", extra={"model": name})
        await _close(websocket, INTERNAL, "internal error")
    finally:
        ctx.open_streams -= 1
        ctx.metrics.open_streams.dec()


async def _serve(websocket: WebSocket, name: str, ctx: AppContext) -> None:
    header_key = _bearer(websocket.headers.get("authorization"))
    model = ctx.registry.get(name)
    first = await websocket.receive()
    if first.get("type") == "websocket.disconnect":
        raise WebSocketDisconnect(first.get("code", 1000))
    config_message = _json_message(first, "the first message must be the JSON configuration")
    keys = ctx.settings.api_key_list
    if keys and not (key_is_valid(keys, header_key) or key_is_valid(keys, config_message.get("api_key"))):
        raise StreamClosed(POLICY, "a valid API key is required (Authorization: Bearer <key>, or api_key)")
    if model is None:
        raise StreamClosed(UNKNOWN_MODEL, f"no model named {name!r}; see /v1/models")
    try:
        check_serves_events(model)
        require_step_outputs(model, "stream")
        config = _config(config_message, model, ctx)
        profile = energy_profile(ctx, model, None)
    except Problem as problem:
        code = TRY_LATER if problem.status_code == 503 else UNSUPPORTED
        raise StreamClosed(code, problem.detail) from None
    session = StreamSession(websocket, model, ctx, config, profile)
    await session.run()


class StreamSession:
    """One connection: a receiving loop that decodes and cuts windows, a sending loop that classifies them."""

    def __init__(self, websocket: WebSocket, model: ServedModel, ctx: AppContext, config: StreamConfig, profile):
        self.websocket, self.model, self.ctx, self.config, self.profile = websocket, model, ctx, config, profile
        settings = ctx.settings
        limits = events.DecodeLimits(max_events=2**62, max_decompressed_bytes=settings.max_decompressed_bytes)
        self.decoder = events.StreamDecoder(config.format, config.sensor_size, limits=limits)
        self.assembler = WindowAssembler(config.window_us, config.stride_us, settings.stream_max_buffered_events)
        spec = framing_spec(model.manifest, config.denoise_us, config.hot_pixels)
        self.denoise_us = spec.denoise_us  # run on arrival (module docstring), not per window
        self.background: BackgroundActivityFilter | None = None  # made once the sensor is known
        self.spec = replace(spec, denoise_us=0)
        self.received: asyncio.Queue[tuple] = asyncio.Queue(RECEIVED_AHEAD)  # messages not yet cut
        self.pending: asyncio.Queue[WindowJob | None] = asyncio.Queue()
        self.busy_pending = 0  # queued windows that need the model
        self.max_busy = settings.stream_max_pending_windows
        self.dropped = 0

    async def run(self) -> None:
        """Receive, cut and send until one of them ends; the first end (or error) ends the others."""
        loops = (self._receive_loop(), self._cut_loop(), self._send_loop())
        tasks = {asyncio.create_task(loop) for loop in loops}
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            task.result()

    async def _receive_loop(self) -> None:
        """Read messages while the previous ones are decoded, filtered and cut (``_cut_loop``): at most
        ``RECEIVED_AHEAD`` wait, then reading waits too, so the client is slowed through TCP."""
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(message.get("code", 1000))
            if message.get("bytes") is not None:
                await self.received.put((self._cut, message["bytes"]))
                continue
            request = _json_message(message, 'text messages must be JSON, e.g. {"flush": true}')
            if request.get("flush") is not True:
                raise StreamClosed(UNSUPPORTED, 'the only text message after the configuration is {"flush": true}')
            await self.received.put((self._flush, None))

    async def _cut_loop(self) -> None:
        """Decode, filter and cut each received message in turn, in the decode pool; queue the windows."""
        loop = asyncio.get_running_loop()
        while True:
            work = await self.received.get()
            try:
                jobs = await loop.run_in_executor(self.ctx.decode_pool, *work)
            except events.EventDecodeError as error:
                raise StreamClosed(TOO_BIG if error.status == 413 else UNSUPPORTED, str(error)) from None
            for job in jobs:
                self._enqueue(job)
            if work[0] == self._flush:
                await self.pending.put(None)  # the flush's acknowledgement, after its windows

    def _cut(self, chunk: bytes) -> list[WindowJob]:
        decoded = self.decoder.feed(chunk)
        if self.denoise_us and len(decoded):
            decoded = self._denoise(decoded)
        return self._jobs(self.assembler.push(decoded))

    def _denoise(self, decoded: np.ndarray) -> np.ndarray:
        """The events the background-activity filter keeps, its state carried from message to message."""
        if self.background is None:
            self.background = BackgroundActivityFilter(self._sensor(), self.denoise_us)
        kept, bad = self.background.filter(decoded)
        if bad >= 0:
            x, y = int(decoded["x"][bad]), int(decoded["y"][bad])
            size = f"{self.background.width}x{self.background.height}"
            raise events.EventDecodeError("stream", f"event at ({x}, {y}) lies outside the {size} sensor")
        return kept

    def _flush(self, _unused: None) -> list[WindowJob]:
        return self._jobs(self.assembler.flush())

    def _jobs(self, cuts: list[WindowCut]) -> list[WindowJob]:
        """Frame each busy window (in the decode pool), stamped with when it closed."""
        closed_at = time.perf_counter()
        jobs = []
        for cut in cuts:
            frames = frame_window(cut.events, self._sensor(), self.spec, self.config.min_events)
            jobs.append(WindowJob(cut, frames, closed_at))
        return jobs

    def _sensor(self) -> tuple[int, int]:
        return self.config.sensor_size or self.decoder.sensor_size or model_sensor(self.model.manifest)

    def _enqueue(self, job: WindowJob) -> None:
        """Queue a closed window, or drop and count it when the model (or the client reading) is behind."""
        busy = job.frames is not None
        if (busy and self.busy_pending >= self.max_busy) or self.pending.qsize() >= self.max_busy * IDLE_PER_BUSY:
            self.dropped += 1
            self.ctx.metrics.stream_dropped.labels(self.model.name).inc()
            return
        self.busy_pending += busy
        self.pending.put_nowait(job)

    async def _send_loop(self) -> None:
        name = self.model.name
        while True:
            job = await self.pending.get()
            if job is None:
                await self.websocket.send_text(json.dumps({"flushed": True, "dropped_windows": self.dropped}))
                continue
            sample = None
            if job.frames is not None:
                self.busy_pending -= 1
                try:
                    future = self.model.batcher.submit(job.frames)
                except Overloaded:
                    self.dropped += 1
                    self.ctx.metrics.stream_dropped.labels(name).inc()
                    continue
                try:
                    sample = await asyncio.wrap_future(future)
                finally:
                    future.cancel()
                self.ctx.metrics.windows.labels(name, "stream").inc()
            cut = job.cut
            report = window_report(
                self.model.manifest,
                cut.start_us,
                cut.end_us,
                len(cut.events),
                sample,
                self.profile,
                self.config.early_exit,
            )
            latency = time.perf_counter() - job.closed_at
            report |= {
                "latency_ms": latency * 1000,
                "dropped_windows": self.dropped,
                "skipped_windows": self.assembler.skipped_windows,
            }
            self.ctx.metrics.stream_latency.labels(name).observe(latency)
            await self.websocket.send_text(json.dumps(report))


def _config(message: dict, model: ServedModel, ctx: AppContext) -> StreamConfig:
    """The first message, checked; defaults as for the timeline (the manifest's window, half stride)."""
    unknown = sorted(set(message) - CONFIG_KEYS)
    if unknown:
        raise Problem(422, "invalid-parameters", f"unknown configuration keys {unknown}; known: {sorted(CONFIG_KEYS)}")
    format = message.get("format")
    if format not in events.STREAM_FORMATS:
        raise Problem(422, "invalid-parameters", f"format must be one of {', '.join(events.STREAM_FORMATS)}")
    size = message.get("sensor_size")
    if isinstance(size, list) and len(size) == 2:
        size = f"{size[0]},{size[1]}"
    sensor = parse_sensor_size(size if size is None or isinstance(size, str) else "invalid")
    min_events = message.get("min_events")
    if min_events is not None and (not isinstance(min_events, int) or isinstance(min_events, bool) or min_events < 1):
        raise Problem(422, "invalid-parameters", "min_events must be a whole number >= 1")
    window_us, stride_us, min_events = window_defaults(
        model,
        _positive_us(message.get("window_ms"), "window_ms"),
        _positive_us(message.get("stride_ms"), "stride_ms"),
        min_events,
    )
    early_exit = message.get("early_exit")
    if early_exit is not None and (isinstance(early_exit, bool) or not isinstance(early_exit, int | float)):
        raise Problem(422, "invalid-parameters", "early_exit must be a number in (0, 1]")
    check_early_exit(early_exit)
    denoise_us, hot_pixels = message.get("denoise_us"), message.get("hot_pixels")
    if denoise_us is not None and (
        isinstance(denoise_us, bool) or not isinstance(denoise_us, int) or not 0 <= denoise_us <= MAX_DENOISE_US
    ):
        raise Problem(422, "invalid-parameters", f"denoise_us must be a whole number of us in 0..{MAX_DENOISE_US}")
    if hot_pixels is not None and not isinstance(hot_pixels, bool):
        raise Problem(422, "invalid-parameters", "hot_pixels must be true or false")
    return StreamConfig(format, sensor, window_us, stride_us, min_events, early_exit, denoise_us, hot_pixels)


def _positive_us(value, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise Problem(422, "invalid-parameters", f"{name} must be a positive number of milliseconds")
    return max(1, round(value * 1000))


def _json_message(message: dict, what: str) -> dict:
    text = message.get("text")
    try:
        data = json.loads(text) if text is not None else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise StreamClosed(UNSUPPORTED, what)
    return data


def _bearer(header: str | None) -> str | None:
    if header and header[:7].lower() == "bearer ":
        return header[7:].strip()
    return None


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    """Close with ``code``; the reason is cut to the 123 bytes a close frame can carry."""
    encoded = reason.encode()[:123]
    with contextlib.suppress(RuntimeError):  # the client already went away
        await websocket.close(code, encoded.decode(errors="ignore"))
