"""One uploaded file -> the model's input frames: detect, decode, check limits, frame.

Every problem with the content is an ``events.EventDecodeError`` whose ``status`` the API maps to HTTP.

Where it runs: an upload of at most ``INLINE_MAX_BYTES`` that is neither text nor an NPZ is
decoded and framed on the event loop (``inline_format``) under a budget (``inline_limits``): at
most ``INLINE_MAX_EVENTS`` events and ``INLINE_MAX_INFLATED_BYTES`` after decompression, the
request's own limits where they are tighter. An upload that meets the budget stops there and is
decoded again in a worker thread under the request's limits (``over_inline_budget``); so do larger
uploads, NPZ and CSV (``THREAD_ONLY_FORMATS``: 43 ms measured for an NPZ inflating within its
ratio, 3 ms for a 128 KiB CSV).

Why: the hop to a thread and back (executor work item, waking a worker, the GIL handed back and
forth, ``call_soon_threadsafe`` back to the loop) costs more server CPU than decoding and framing a
bundled example: leaving the one AEDAT 4 example (187 KB) on the loop cut 0.3 ms of server CPU per
request over the mix (BENCHMARKS.md, serving overhead). The budget bounds what one upload can hold
the loop for: a recording that states a Gen4 1280x720 sensor costs about 6 ms whatever its events
(the noise filters' per-pixel state), and the events the budget admits add up to about 3 ms (9.3 ms
for 50,000 events of ZSTD AEDAT 4, 8.1 ms for 65,536 of EVT 2.1 vector words in the recorded run of
``bench.inline_budget``, BENCHMARKS.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

import events
from events.load import SNIFF_BYTES
from export.manifest import Manifest


@dataclass(frozen=True)
class IngestLimits:
    """Caps on one recording: decoded events, duration, inflated bytes."""

    max_events: int
    max_duration_us: int
    max_decompressed_bytes: int

    @classmethod
    def of(cls, settings) -> IngestLimits:
        """The server's limits (``service.settings.Settings``: max_events, max_duration_s, max_decompressed_bytes)."""
        return cls(settings.max_events, int(settings.max_duration_s * 1e6), settings.max_decompressed_bytes)

    def decode_limits(self) -> events.DecodeLimits:
        return events.DecodeLimits(max_events=self.max_events, max_decompressed_bytes=self.max_decompressed_bytes)


@dataclass
class Prepared:
    """A framed sample ``float32 [T, 2, h, w]`` and what the response says about its input."""

    frames: np.ndarray
    input: dict
    decode_s: float
    frame_s: float


INLINE_MAX_BYTES = 256 * 1024
INLINE_MAX_EVENTS = 65_536
INLINE_MAX_INFLATED_BYTES = 1 << 20
THREAD_ONLY_FORMATS = frozenset({"npz", "csv"})
MAX_DENOISE_US = 10_000_000  # a 10 s window already keeps every event of a noisy pixel's neighbourhood


def framing_spec(
    manifest: Manifest, denoise_us: int | None = None, hot_pixels: bool | None = None
) -> events.FramingSpec:
    """The model's framing spec, its noise filters replaced by a request's where it gives them."""
    inp = manifest.input
    return events.FramingSpec(
        manifest.time_steps,
        inp.width,
        inp.height,
        inp.split_by,
        inp.denoise_us if denoise_us is None else denoise_us,
        inp.hot_pixels if hot_pixels is None else hot_pixels,
    )


def warm_up_framing(manifest: Manifest) -> None:
    """Frame a tiny synthetic recording once, so the first request does not pay framing's JIT start-up.

    One event is out of time order, so a split by time also compiles its path for those. Both noise
    filters run too, whatever the model's spec, since any request may turn them on.
    """
    n = 4 * manifest.time_steps
    ramp = np.arange(n)
    times = ramp.copy()
    times[1] = n
    inp = manifest.input
    sample = events.make_events(times, ramp % inp.sensor_width, ramp % inp.sensor_height, ramp % 2)
    events.frame_events(sample, (inp.sensor_width, inp.sensor_height), framing_spec(manifest))
    events.remove_noise(sample, (inp.sensor_width, inp.sensor_height), 1, True)


def inline_format(stream: BinaryIO, size: int | None, filename: str | None, format: str | None) -> str | None:
    """The upload's format when it is small and cheap enough to decode on the event loop (see the
    module docstring), else None: the upload goes to a worker thread, which also reports any
    detection error."""
    if size is None or size > INLINE_MAX_BYTES:
        return None
    if format is None:
        stream.seek(0)
        head = stream.read(SNIFF_BYTES)
        stream.seek(0)
        try:
            format = events.detect_format(head, filename).name if head else None
        except events.EventDecodeError:
            return None
    return None if format is None or format in THREAD_ONLY_FORMATS else format


def inline_limits(limits: IngestLimits) -> IngestLimits:
    """The budget of a decode on the event loop: ``limits`` tightened to ``INLINE_MAX_EVENTS`` events
    and ``INLINE_MAX_INFLATED_BYTES`` inflated."""
    return IngestLimits(
        min(limits.max_events, INLINE_MAX_EVENTS),
        limits.max_duration_us,
        min(limits.max_decompressed_bytes, INLINE_MAX_INFLATED_BYTES),
    )


def over_inline_budget(outcome: object, limits: IngestLimits) -> bool:
    """Whether an inline decode's outcome may be the budget's refusal rather than the request's:
    then the upload is decoded again in a thread, under ``limits`` (which refuse it there if it is
    over them too)."""
    return isinstance(outcome, events.LimitExceededError) and inline_limits(limits) != limits


def decode(stream: BinaryIO, filename: str | None, format: str | None, limits: IngestLimits) -> events.Recording:
    """Decode ``stream`` (format from content, the client's file name breaking ties) within ``limits``."""
    stream.seek(0)
    if format is None:
        head = stream.read(SNIFF_BYTES)
        stream.seek(0)
        if head:
            format = events.detect_format(head, filename).name
    recording = events.load(stream, format, limits=limits.decode_limits())
    if recording.duration_us > limits.max_duration_us:
        raise events.LimitExceededError(
            recording.format,
            f"recording lasts {recording.duration_us / 1e6:.3f} s, over the {limits.max_duration_us / 1e6:g} s limit",
        )
    return recording


def input_info(
    recording: events.Recording,
    filename: str | None,
    sensor: tuple[int, int],
    sensor_override: tuple[int, int] | None,
    manifest: Manifest,
) -> dict:
    """The response's ``input`` object: what was decoded and how it was framed."""
    return {
        "filename": filename,
        "format": recording.format,
        "events": len(recording),
        "duration_us": recording.duration_us,
        "sensor_size": [int(sensor[0]), int(sensor[1])],
        "sensor_from_header": bool(recording.sensor_from_header and sensor_override is None),
        "time_steps": manifest.time_steps,
    }


def prepare(
    stream: BinaryIO,
    filename: str | None,
    format: str | None,
    sensor_override: tuple[int, int] | None,
    manifest: Manifest,
    limits: IngestLimits,
    spec: events.FramingSpec | None = None,
) -> Prepared:
    """Decode ``stream``, filter its noise and frame the whole recording as one sample, per ``spec``
    (default: the manifest's)."""
    started = time.perf_counter()
    recording, sensor, info = _decode_for_model(stream, filename, format, sensor_override, manifest, limits)
    decoded = time.perf_counter()
    frames, noise = events.frame_and_report(recording.events, sensor, spec or framing_spec(manifest))
    info["noise"] = noise.to_dict()
    return Prepared(frames=frames, input=info, decode_s=decoded - started, frame_s=time.perf_counter() - decoded)


def _decode_for_model(
    stream: BinaryIO,
    filename: str | None,
    format: str | None,
    sensor_override: tuple[int, int] | None,
    manifest: Manifest,
    limits: IngestLimits,
) -> tuple[events.Recording, tuple[int, int], dict]:
    """The decoded recording, the sensor size to frame it with, and the response's ``input``."""
    recording = decode(stream, filename, format, limits)
    sensor = events.resolve_sensor_size(recording, model_sensor(manifest), sensor_override)
    return recording, sensor, input_info(recording, filename, sensor, sensor_override, manifest)


@dataclass(frozen=True)
class WindowParams:
    """How a timeline cuts a recording (DESIGN.md section 10), in microseconds and events."""

    window_us: int
    stride_us: int
    min_events: int
    max_windows: int


@dataclass
class PreparedWindows:
    """A recording cut into windows, the busy ones framed, and what the response says about its input."""

    windows: events.Windows
    input: dict
    decode_s: float
    frame_s: float


def prepare_windows(
    stream: BinaryIO,
    filename: str | None,
    format: str | None,
    sensor_override: tuple[int, int] | None,
    manifest: Manifest,
    limits: IngestLimits,
    params: WindowParams,
    spec: events.FramingSpec | None = None,
) -> PreparedWindows:
    """Decode ``stream`` and frame each busy window of it as one sample (each window's noise filtered on its own)."""
    started = time.perf_counter()
    recording, sensor, info = _decode_for_model(stream, filename, format, sensor_override, manifest, limits)
    decoded = time.perf_counter()
    spec = spec or framing_spec(manifest)
    windows = events.frame_windows(
        recording.events,
        sensor,
        spec,
        window_us=params.window_us,
        stride_us=params.stride_us,
        min_events=params.min_events,
        max_windows=params.max_windows,
    )
    framed = time.perf_counter()
    info.update(window_us=params.window_us, stride_us=params.stride_us, min_events=params.min_events)
    info["noise"] = {"denoise_us": spec.denoise_us, "hot_pixels": spec.hot_pixels}
    return PreparedWindows(windows=windows, input=info, decode_s=decoded - started, frame_s=framed - decoded)


def model_sensor(manifest: Manifest) -> tuple[int, int]:
    return manifest.input.sensor_width, manifest.input.sensor_height
