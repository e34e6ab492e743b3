"""A simulated event camera watching ten gestures, for training the demo model without downloads.

The simulator works like ESIM/v2e, on a 128x128 sensor: it renders a moving bright or dark shape
on a uniform background at 1 ms steps, takes each pixel's log intensity and emits an ON (OFF)
event whenever the log change since the pixel's reference level crosses its own ON (OFF)
contrast threshold (per-pixel mismatch). One step may cross several thresholds (several events,
timestamps interpolated within the step); a pixel stays silent for a refractory period after an
event (the unreported change fires later); background-activity noise adds Poisson events at
every pixel. The ten classes differ only in how the shape moves, so telling them apart needs
temporal order (swipe left vs right, rotate clockwise vs counter-clockwise, approach vs recede).

Every recording is a pure function of ``(label, seed, index)``. The dataset opener ``synthetic``
generates a split in parallel, frames it, and caches the frames under ``runs/cache/``.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from events import EVENT_DTYPE, FramingSpec, frame_events, make_events
from models.datasets.event_dataset import EventDataset, Sample
from models.datasets.sensor_noise import SensorNoise, add_noise

GESTURES = (
    "swipe_left",
    "swipe_right",
    "swipe_up",
    "swipe_down",
    "rotate_clockwise",
    "rotate_counterclockwise",
    "approach",
    "recede",
    "wave_horizontal",
    "wave_vertical",
)
SENSOR_SIZE = (128, 128)
GENERATOR_VERSION = 2  # bump when the output for a given (label, seed, index, params) changes
NOISE_STREAM = 0x6E6F6973  # a recording's added noise is drawn apart from its simulation
CACHE_DIR = Path(__file__).resolve().parents[2] / "runs" / "cache"


@dataclass(frozen=True)
class CameraParams:
    """Ranges the simulator draws from; each recording picks its own values inside them.

    ``dark_objects`` is the share of shapes darker than the background. It is 0 by default (a lit
    hand before a darker scene), so an edge's polarity says which way it moves; with dark shapes
    mixed in, a bright shape going left makes the same ON/OFF pattern as a dark one going right
    and only the order of the time bins separates them, which the small demo net learns far slower.
    """

    step_us: int = 1000
    duration_s: tuple[float, float] = (0.3, 1.0)
    threshold_mean: tuple[float, float] = (0.17, 0.25)
    threshold_sigma: float = 0.03
    threshold_min: float = 0.05
    refractory_us: tuple[int, int] = (100, 500)
    noise_hz: tuple[float, float] = (0.05, 0.5)
    contrast: tuple[float, float] = (0.8, 1.6)
    background: tuple[float, float] = (0.2, 0.6)
    dark_objects: float = 0.0


@dataclass(frozen=True)
class Motion:
    """Per-step shape pose: centre (pixels), orientation (radians) and half sizes (pixels)."""

    cx: np.ndarray
    cy: np.ndarray
    angle: np.ndarray
    half_a: np.ndarray
    half_b: np.ndarray
    ellipse: bool


def _ease(rng: np.random.Generator, tau: np.ndarray) -> np.ndarray:
    """Monotonic progress 0 -> 1 with a random mix of constant speed and slow-fast-slow."""
    mix = rng.uniform(0.0, 1.0)
    smooth = tau * tau * (3 - 2 * tau)
    return (1 - mix) * tau + mix * smooth


def _motion(label: str, rng: np.random.Generator, steps: int) -> Motion:
    """The pose of the shape at every step for one gesture, randomised in position, size and speed."""
    tau = np.linspace(0.0, 1.0, steps)
    progress = _ease(rng, tau)
    size = rng.uniform(8.0, 18.0)
    aspect = rng.uniform(1.0, 1.8)
    ellipse = bool(rng.integers(2))
    angle0 = rng.uniform(0, np.pi)
    cx0, cy0 = rng.uniform(44, 84, size=2)
    drift = rng.normal(0, 4, size=2)
    cx = cx0 + drift[0] * tau
    cy = cy0 + drift[1] * tau
    angle = np.full(steps, angle0)
    half_a = np.full(steps, size * aspect)
    half_b = np.full(steps, size)

    if label.startswith("swipe"):
        travel = rng.uniform(45, 90)
        along = (progress - 0.5) * travel
        direction = {"swipe_left": (-1, 0), "swipe_right": (1, 0), "swipe_up": (0, -1), "swipe_down": (0, 1)}[label]
        cx = cx + direction[0] * along
        cy = cy + direction[1] * along
    elif label.startswith("rotate"):
        ellipse = False
        half_a[:] = rng.uniform(16, 28)
        half_b[:] = rng.uniform(4, 8)
        turn = rng.uniform(0.6, 1.2) * np.pi
        sign = 1.0 if label == "rotate_clockwise" else -1.0  # y grows downwards: +angle turns clockwise on screen
        angle = angle0 + sign * turn * progress
    elif label in ("approach", "recede"):
        ratio = rng.uniform(2.0, 3.5)
        small = rng.uniform(5, 9)
        scale = small * ratio**progress if label == "approach" else small * ratio ** (1 - progress)
        half_a = scale * aspect
        half_b = scale
    elif label.startswith("wave"):
        amplitude = rng.uniform(15, 32)
        cycles = rng.uniform(1.5, 3.0)
        phase = rng.uniform(0, 2 * np.pi)
        offset = amplitude * np.sin(2 * np.pi * cycles * progress + phase)
        if label == "wave_horizontal":
            cx = cx + offset
        else:
            cy = cy + offset
    else:
        raise ValueError(f"unknown gesture {label!r}; classes: {', '.join(GESTURES)}")
    return Motion(cx, cy, angle, np.asarray(half_a, float), np.asarray(half_b, float), ellipse)


def _coverage(motion: Motion, steps: slice, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Fraction of each pixel the shape covers, ``[S, h, w]``, with a one-pixel soft edge."""
    cx = motion.cx[steps, None, None]
    cy = motion.cy[steps, None, None]
    cos = np.cos(motion.angle[steps])[:, None, None]
    sin = np.sin(motion.angle[steps])[:, None, None]
    a = motion.half_a[steps, None, None]
    b = motion.half_b[steps, None, None]
    dx = xs[None, None, :] - cx
    dy = ys[None, :, None] - cy
    u = dx * cos + dy * sin
    v = dy * cos - dx * sin
    if motion.ellipse:
        distance = (np.sqrt((u / a) ** 2 + (v / b) ** 2) - 1.0) * np.sqrt(a * b)
    else:
        distance = np.maximum(np.abs(u) - a, np.abs(v) - b)
    return np.clip(0.5 - distance, 0.0, 1.0)


def _box(motion: Motion, sensor: tuple[int, int]) -> tuple[int, int, int, int]:
    """The sensor window ``x0, x1, y0, y1`` the shape ever touches; pixels outside it stay dark."""
    reach = np.hypot(motion.half_a, motion.half_b) + 2
    x0 = int(np.clip(np.floor((motion.cx - reach).min()), 0, sensor[0]))
    x1 = int(np.clip(np.ceil((motion.cx + reach).max()) + 1, 0, sensor[0]))
    y0 = int(np.clip(np.floor((motion.cy - reach).min()), 0, sensor[1]))
    y1 = int(np.clip(np.ceil((motion.cy + reach).max()) + 1, 0, sensor[1]))
    return x0, x1, y0, y1


def _dvs_events(log_frames, rng, params: CameraParams, refractory_us: int, t_start: int = 0):
    """Run the DVS pixel model over ``log_frames`` (an iterator of ``[h, w]`` log images, one per step).

    Returns columns ``t, flat_pixel, p`` of the emitted events in the window's pixel order.
    """
    first = next(log_frames)
    shape = first.shape
    mean = rng.uniform(*params.threshold_mean)
    c_on = np.maximum(rng.normal(mean, params.threshold_sigma, shape), params.threshold_min).ravel()
    c_off = np.maximum(rng.normal(mean, params.threshold_sigma, shape), params.threshold_min).ravel()
    c_min = min(c_on.min(), c_off.min())
    reference = first.ravel().copy()
    previous = reference.copy()
    last_fired = np.full(reference.size, -(10**12), dtype=np.int64)
    out_t, out_i, out_p = [], [], []
    step_us = params.step_us
    for k, frame in enumerate(log_frames, start=1):
        current = frame.ravel()
        diff = current - reference
        active = np.flatnonzero(np.abs(diff) >= c_min)
        if active.size:
            d = diff[active]
            on = d > 0
            c = np.where(on, c_on[active], c_off[active])
            crossings = np.floor(np.abs(d) / c).astype(np.int64)
            keep = crossings > 0
            active, on, c, crossings = active[keep], on[keep], c[keep], crossings[keep]
            sign = np.where(on, 1.0, -1.0)
            ref = reference[active]
            prev = previous[active]
            change = current[active] - prev
            change[change == 0] = 1e-12
            t0 = t_start + (k - 1) * step_us
            fired = np.zeros(active.size, dtype=np.int64)
            alive = np.ones(active.size, dtype=bool)
            for i in range(1, int(crossings.max(initial=0)) + 1):
                level = ref + sign * c * i
                frac = np.clip((level - prev) / change, 0.0, 1.0)
                t = t0 + np.rint(frac * step_us).astype(np.int64)
                alive &= (crossings >= i) & (t - last_fired[active] >= refractory_us)
                if not alive.any():
                    break
                out_t.append(t[alive])
                out_i.append(active[alive])
                out_p.append(on[alive].astype(np.uint8))
                last_fired[active[alive]] = t[alive]
                fired += alive
            reference[active] = ref + sign * c * fired
        previous = current
    if not out_t:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.uint8)
    return np.concatenate(out_t), np.concatenate(out_i), np.concatenate(out_p)


def generate_recording(
    label: int | str, seed: int, index: int, params: CameraParams = CameraParams(), chunk: int = 64
) -> np.ndarray:
    """One simulated recording of gesture ``label`` (index or name): ``EVENT_DTYPE`` sorted by ``t``.

    Deterministic: the same ``(label, seed, index, params)`` always gives the same events.
    """
    name = GESTURES[label] if isinstance(label, (int, np.integer)) else label
    rng = np.random.default_rng([int(seed), int(index), GESTURES.index(name)])
    duration_us = int(rng.uniform(*params.duration_s) * 1e6)
    steps = duration_us // params.step_us + 1
    motion = _motion(name, rng, steps)
    x0, x1, y0, y1 = _box(motion, SENSOR_SIZE)
    xs = np.arange(x0, x1, dtype=np.float64)
    ys = np.arange(y0, y1, dtype=np.float64)
    background = rng.uniform(*params.background)
    sign = -1.0 if rng.uniform() < params.dark_objects else 1.0
    foreground = background * np.exp(sign * rng.uniform(*params.contrast))
    refractory = int(rng.integers(*params.refractory_us))

    def log_frames():
        for start in range(0, steps, chunk):
            cover = _coverage(motion, slice(start, min(start + chunk, steps)), xs, ys)
            yield from np.log(background + (foreground - background) * cover)

    t, pixel, p = _dvs_events(log_frames(), rng, params, refractory)
    width = x1 - x0
    x = x0 + pixel % width
    y = y0 + pixel // width

    rate = rng.uniform(*params.noise_hz)
    n_noise = rng.poisson(rate * SENSOR_SIZE[0] * SENSOR_SIZE[1] * duration_us / 1e6)
    t = np.concatenate([t, rng.integers(0, duration_us + 1, n_noise)])
    x = np.concatenate([x, rng.integers(0, SENSOR_SIZE[0], n_noise)])
    y = np.concatenate([y, rng.integers(0, SENSOR_SIZE[1], n_noise)])
    p = np.concatenate([p, rng.integers(0, 2, n_noise).astype(np.uint8)])
    order = np.argsort(t, kind="stable")
    return make_events(t[order], x[order], y[order], p[order])


def split_seed(seed: int, split: str) -> int:
    """The generator seed of a split: train and test of one ``seed`` never share recordings."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    return 2 * int(seed) + (split == "test")


def noisy_recording(
    label: int, seed: int, index: int, params: CameraParams = CameraParams(), noise: SensorNoise = SensorNoise()
) -> np.ndarray:
    """``generate_recording`` with ``noise`` added, drawn from its own stream of the same seed."""
    return with_noise(generate_recording(label, seed, index, params), seed, index, noise)


def with_noise(events: np.ndarray, seed: int, index: int, noise: SensorNoise) -> np.ndarray:
    """Recording ``(seed, index)``'s ``events`` with ``noise`` added as ``noisy_recording`` adds it."""
    return add_noise(events, SENSOR_SIZE, noise, np.random.default_rng([int(seed), int(index), NOISE_STREAM]))


def _frame_chunk(
    indices: list[int], seed: int, spec: FramingSpec, params: CameraParams, noise: SensorNoise
) -> np.ndarray:
    frames = [
        frame_events(noisy_recording(i % len(GESTURES), seed, i, params, noise), SENSOR_SIZE, spec) for i in indices
    ]
    return _compact(np.stack(frames))


def _compact(counts: np.ndarray) -> np.ndarray:
    """Event counts in the smallest integer type that holds them exactly (int16 almost always)."""
    return counts.astype(np.int16 if counts.max(initial=0) <= np.iinfo(np.int16).max else np.int32)


class FramedDataset(EventDataset):
    """An ``EventDataset`` whose frames were computed up front (from the disk cache or a parallel run)."""

    def __init__(self, samples: list[Sample], frames: torch.Tensor, **kwargs):
        super().__init__(samples, **kwargs)
        self.framed = frames

    def frames(self, index: int) -> torch.Tensor:
        return self.framed[index].float()


def _cache_path(
    seed: int, size: int, spec: FramingSpec, params: CameraParams, noise: SensorNoise, cache_dir: Path
) -> Path:
    key = {"v": GENERATOR_VERSION, "seed": seed, "size": size, "spec": spec.to_dict(), "params": asdict(params)}
    if noise.active:
        key["noise"] = asdict(noise)
    key = json.dumps(key, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir / f"synthetic-{seed}-{size}-{digest}.npy"


def open_synthetic(
    root: str | os.PathLike | None,
    split: str,
    spec: FramingSpec,
    *,
    size: int = 1000,
    seed: int = 0,
    workers: int | None = None,
    cache_dir: str | os.PathLike | None = CACHE_DIR,
    params: CameraParams = CameraParams(),
    noise: SensorNoise = SensorNoise(),
) -> EventDataset:
    """The ``synthetic`` opener: ``size`` recordings of the split, classes balanced (label = index % 10).

    ``root`` is ignored (nothing to download). ``cache_dir=None`` disables the frame cache. ``noise``
    is added to each recording before framing (augmentation, or evaluation under noise).
    """
    generator_seed = split_seed(seed, split)
    samples = [
        Sample(
            partial(noisy_recording, i % len(GESTURES), generator_seed, i, params, noise), i % len(GESTURES), f"#{i}"
        )
        for i in range(size)
    ]
    path = _cache_path(generator_seed, size, spec, params, noise, Path(cache_dir)) if cache_dir is not None else None
    if path is not None and path.exists():
        frames = np.load(path)
    else:
        workers = workers or min(2, os.cpu_count() or 1)
        chunks = [list(range(i, size, workers * 8)) for i in range(workers * 8)] if size else []
        chunks = [c for c in chunks if c]
        if workers > 1 and size > 16:
            with ProcessPoolExecutor(workers) as pool:
                work = pool.map(
                    partial(_frame_chunk, seed=generator_seed, spec=spec, params=params, noise=noise), chunks
                )
                parts = list(tqdm(work, total=len(chunks), desc=f"simulating {size} {split} recordings", leave=False))
        else:
            parts = [_frame_chunk(c, generator_seed, spec, params, noise) for c in chunks]
        frames = np.empty((size, spec.time_steps, 2, spec.height, spec.width), dtype=np.int32)
        for chunk, part in zip(chunks, parts, strict=True):
            frames[chunk] = part
        frames = _compact(frames)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, frames)
            tmp.replace(path)
    return FramedDataset(
        samples,
        torch.from_numpy(_compact(frames)),
        classes=list(GESTURES),
        sensor_size=SENSOR_SIZE,
        spec=spec,
        name="synthetic",
    )


__all__ = ["EVENT_DTYPE", "GESTURES", "SENSOR_SIZE", "CameraParams", "generate_recording", "open_synthetic"]
