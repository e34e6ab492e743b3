"""Accuracy against sensor noise: checkpoints, with and without the noise filters, at several levels.

Fresh simulator recordings (a seed no training used) get uniform background activity of R Hz per
pixel, and optionally hot pixels, exactly as ``python -m models.evaluate --noise-hz R`` adds them
(``models.datasets.synthetic.noisy_recording``); each recording is simulated once and every
level and variant frames the same noisy events, so the columns differ only in model and filters.
A variant is a checkpoint framed with its card's spec (what the service applies by default) or
with the filters overridden (what a request's ``denoise_us`` and ``hot_pixels`` fields do).
"""

from __future__ import annotations

import argparse
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import torch

from bench.report import table, write_section
from events import FramingSpec, frame_events
from models.checkpoint import load_checkpoint
from models.datasets.sensor_noise import SensorNoise
from models.datasets.synthetic import GESTURES, SENSOR_SIZE, CameraParams, generate_recording, split_seed, with_noise
from models.train import use_cores

LEVELS_HZ = (0.0, 0.3, 1.0, 3.0, 10.0)
HOT_DENSITY = 1e-3


@dataclass(frozen=True)
class Variant:
    """A column: a checkpoint, and the noise filters its input goes through (None: the card's)."""

    label: str
    checkpoint: Path
    denoise_us: int | None = None
    hot_pixels: bool | None = None

    def argument(self) -> str:
        """The command-line form ``parse_variant`` reads."""
        filters = "" if self.denoise_us is None else f":{self.denoise_us}:{'on' if self.hot_pixels else 'off'}"
        return f"{self.label}={self.checkpoint}{filters}"


def parse_variant(text: str) -> Variant:
    """``LABEL=PATH`` or ``LABEL=PATH:DENOISE_US:HOT`` (HOT is on or off)."""
    label, _, rest = text.partition("=")
    path, *filters = rest.split(":")
    if filters and len(filters) != 2:
        raise argparse.ArgumentTypeError(f"{text!r}: give LABEL=PATH or LABEL=PATH:DENOISE_US:on|off")
    if filters:
        return Variant(label, Path(path), int(filters[0]), filters[1] == "on")
    return Variant(label, Path(path))


def _frames(
    indices: list[int], seed: int, specs: list[FramingSpec], noises: list[SensorNoise]
) -> list[list[np.ndarray]]:
    """Each recording's frames at each noise level under each spec: ``[noise][spec][recording]``.

    A recording is simulated once; each level's noise is added to it as ``noisy_recording`` does.
    """
    params = CameraParams()
    clean = [(i, generate_recording(i % len(GESTURES), seed, i, params)) for i in indices]
    out = []
    for noise in noises:
        noisy = [with_noise(r, seed, i, noise) for i, r in clean]
        out.append([np.stack([frame_events(r, SENSOR_SIZE, spec) for r in noisy]) for spec in specs])
    return out


def accuracies(
    variants: list[Variant], size: int, seed: int, noises: list[SensorNoise], workers: int
) -> list[list[float]]:
    """Accuracy of each variant at each noise level (``[noise][variant]``) on ``size`` recordings of
    the test split of ``seed``."""
    loaded = [load_checkpoint(v.checkpoint) for v in variants]
    specs = []
    for variant, (_, card) in zip(variants, loaded, strict=True):
        spec = card.framing_spec()
        if variant.denoise_us is not None:
            spec = replace(spec, denoise_us=variant.denoise_us, hot_pixels=bool(variant.hot_pixels))
        specs.append(spec)
    generator_seed = split_seed(seed, "test")
    chunks = [list(range(k, size, workers)) for k in range(workers)]
    with ProcessPoolExecutor(workers) as pool:
        parts = list(pool.map(partial(_frames, seed=generator_seed, specs=specs, noises=noises), chunks))
    labels = torch.tensor([i % len(GESTURES) for chunk in chunks for i in chunk])
    results = []
    for level in range(len(noises)):
        row = []
        for k, (model, _) in enumerate(loaded):
            frames = torch.from_numpy(np.concatenate([part[level][k] for part in parts]))
            with torch.no_grad():
                predictions = torch.cat([model(batch).argmax(1) for batch in frames.split(100)])
            row.append(float((predictions == labels).float().mean()))
        results.append(row)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+", type=parse_variant, help="LABEL=PATH[:DENOISE_US:on|off]")
    parser.add_argument("--size", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1, help="test seed (the demo trained with seed 0)")
    parser.add_argument("--levels", type=float, nargs="+", default=list(LEVELS_HZ))
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    use_cores()
    noises = [SensorNoise.fixed(rate, hot) for hot in (0.0, HOT_DENSITY) for rate in args.levels]
    scores = accuracies(args.variants, args.size, args.seed, noises, args.workers)
    rows = [
        [f"{n.rate_hz[0]:g}", f"{n.hot_density:g}", *(f"{s:.3f}" for s in row)]
        for n, row in zip(noises, scores, strict=True)
    ]
    named = " ".join(v.argument() for v in args.variants)
    command = f"python -m bench.noise_accuracy {named} --size {args.size} --seed {args.seed}"
    body = (
        f"`{command}`: {args.size} fresh simulator recordings (test split of seed {args.seed}, never trained on), "
        "uniform background activity of R Hz per pixel added over each recording's span, and hot pixels at the "
        f"given density (rates 200-2000 Hz, log-uniform) as `models.evaluate --noise-hz R --hot-density D` adds "
        "them. Columns: a checkpoint framed with its card's spec (the service's default), or with the filters "
        "given after its path (`:DENOISE_US:on|off`, what a request's `denoise_us` and `hot_pixels` fields do).\n\n"
        + table(["noise Hz/pixel", "hot-pixel density", *(v.label for v in args.variants)], rows)
    )
    print(body)
    if not args.no_write:
        write_section("noise-accuracy", "Accuracy against sensor noise", body)


if __name__ == "__main__":
    main()
