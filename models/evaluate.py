"""``python -m models.evaluate CHECKPOINT``: accuracy and per-class accuracy on held-out recordings.

For the synthetic dataset the test split is generated afresh with ``--seed`` (default: the
training seed + 1, so no recording overlaps training or its monitoring split). ``--noise-hz R``
(repeatable) evaluates once per level on the same recordings with uniform background activity of
R Hz per pixel added, and ``--hot-density D`` makes that share of pixels hot as well; the input
is framed with the card's spec, noise filters included, unless ``--denoise-us`` or
``--hot-pixels`` override them as a request to the service may.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from models.checkpoint import load_checkpoint
from models.datasets.sensor_noise import SensorNoise
from models.datasets.synthetic import CACHE_DIR, CameraParams
from models.train import evaluate, open_split, use_cores


@dataclass
class Evaluation:
    """Accuracy overall and per class on ``recordings`` test recordings."""

    checkpoint: str
    dataset: str
    recordings: int
    seed: int | None
    accuracy: float
    per_class: dict[str, float]
    spike_rates: dict[str, float]
    noise: dict | None = None  # the SensorNoise added, None for clean recordings
    framing: dict | None = None  # the framing spec applied, noise filters included


def run(
    checkpoint: Path,
    size: int = 1000,
    seed: int | None = None,
    data_root: Path | None = None,
    batch_size: int = 128,
    cache_dir: Path | None = CACHE_DIR,
    noise: SensorNoise | None = None,
    denoise_us: int | None = None,
    hot_pixels: bool | None = None,
) -> Evaluation:
    """Evaluate ``checkpoint`` on the test split of the dataset named in its card, with ``noise`` added
    and the card's noise filters replaced where ``denoise_us`` or ``hot_pixels`` are given."""
    use_cores()
    model, card = load_checkpoint(checkpoint)
    spec = card.framing_spec()
    spec = replace(
        spec,
        denoise_us=spec.denoise_us if denoise_us is None else denoise_us,
        hot_pixels=spec.hot_pixels if hot_pixels is None else hot_pixels,
    )
    if seed is None:
        seed = int(card.training.get("seed", 0)) + 1
    camera = card.training.get("synthetic_camera", {})
    params = CameraParams(**{k: tuple(v) if isinstance(v, list) else v for k, v in camera.items()})
    noise = noise or SensorNoise()
    test_set = open_split(
        card.dataset, data_root, "test", spec, size=size, seed=seed, params=params, cache_dir=cache_dir, noise=noise
    )
    loader = DataLoader(test_set, batch_size=batch_size)
    scored = evaluate(model, loader)
    accuracy, rates, predictions = scored.accuracy, scored.spike_rates, scored.predictions
    labels = torch.tensor([s.label for s in test_set.samples])
    per_class = {
        name: float((predictions[labels == k] == k).float().mean()) if (labels == k).any() else float("nan")
        for k, name in enumerate(card.classes)
    }
    return Evaluation(
        str(checkpoint),
        card.dataset,
        len(test_set),
        seed if card.dataset == "synthetic" else None,
        accuracy,
        per_class,
        rates,
        asdict(noise) if noise.active else None,
        spec.to_dict(),
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m models.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--size", type=int, default=1000, help="synthetic: test recordings to generate")
    p.add_argument("--seed", type=int, help="synthetic: test seed (default: training seed + 1)")
    p.add_argument("--data-root", type=Path, help="folder of a real dataset")
    p.add_argument("--noise-hz", type=float, action="append", help="add R Hz/pixel of noise (repeatable)")
    p.add_argument("--hot-density", type=float, default=0.0, help="with --noise-hz: share of pixels made hot")
    p.add_argument("--denoise-us", type=int, help="override the card's background-activity window (0 = off)")
    p.add_argument("--hot-pixels", choices=("on", "off"), help="override the card's hot-pixel filter")
    p.add_argument("--cache-dir", type=Path, default=CACHE_DIR, help="synthetic: where framed splits are cached")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    args = p.parse_args(argv)
    hot = None if args.hot_pixels is None else args.hot_pixels == "on"
    options = {"cache_dir": args.cache_dir, "denoise_us": args.denoise_us, "hot_pixels": hot}
    if args.noise_hz:
        levels = [SensorNoise.fixed(rate, args.hot_density) for rate in args.noise_hz]
        print_levels(
            [run(args.checkpoint, args.size, args.seed, args.data_root, noise=n, **options) for n in levels], args.json
        )
        return
    result = run(args.checkpoint, args.size, args.seed, args.data_root, **options)
    if args.json:
        print(json.dumps(asdict(result), indent=2))
        return
    seed = f", seed {result.seed}" if result.seed is not None else ""
    print(f"{result.checkpoint}: {result.dataset} test split, {result.recordings} recordings{seed}")
    print(f"accuracy {result.accuracy:.4f}")
    width = max(len(name) for name in result.per_class)
    for name, acc in result.per_class.items():
        print(f"  {name:<{width}}  {acc:.3f}")
    print("spike rate " + " ".join(f"{k}={v:.3f}" for k, v in result.spike_rates.items()))


def print_levels(results: list[Evaluation], as_json: bool) -> None:
    """One line per noise level: its rate, hot pixels, and the accuracy reached."""
    if as_json:
        print(json.dumps([asdict(r) for r in results], indent=2))
        return
    first = results[0]
    framing = first.framing or {}
    filters = (
        f"denoise_us {framing.get('denoise_us', 0)}, hot-pixel filter {'on' if framing.get('hot_pixels') else 'off'}"
    )
    print(
        f"{first.checkpoint}: {first.dataset} test split, {first.recordings} recordings, seed {first.seed}; {filters}"
    )
    print("noise Hz/pixel  hot density  accuracy")
    for r in results:
        noise = r.noise or {"rate_hz": (0.0, 0.0), "hot_density": 0.0}
        print(f"{noise['rate_hz'][0]:>14g}  {noise['hot_density']:>11g}  {r.accuracy:.4f}")


if __name__ == "__main__":
    main()
