"""``python -m models.evaluate CHECKPOINT``: accuracy and per-class accuracy on held-out recordings.

For the synthetic dataset the test split is generated afresh with ``--seed`` (default: the
training seed + 1, so no recording overlaps training or its monitoring split).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from events import FramingSpec
from models.checkpoint import load_checkpoint
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


def run(
    checkpoint: Path,
    size: int = 1000,
    seed: int | None = None,
    data_root: Path | None = None,
    batch_size: int = 128,
    cache_dir: Path | None = CACHE_DIR,
) -> Evaluation:
    """Evaluate ``checkpoint`` on the test split of the dataset named in its card."""
    use_cores()
    model, card = load_checkpoint(checkpoint)
    spec = FramingSpec(card.arch.time_steps, card.arch.width, card.arch.height, card.split_by)
    if seed is None:
        seed = int(card.training.get("seed", 0)) + 1
    camera = card.training.get("synthetic_camera", {})
    params = CameraParams(**{k: tuple(v) if isinstance(v, list) else v for k, v in camera.items()})
    test_set = open_split(
        card.dataset, data_root, "test", spec, size=size, seed=seed, params=params, cache_dir=cache_dir
    )
    loader = DataLoader(test_set, batch_size=batch_size)
    accuracy, rates, predictions = evaluate(model, loader)
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
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m models.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--size", type=int, default=1000, help="synthetic: test recordings to generate")
    p.add_argument("--seed", type=int, help="synthetic: test seed (default: training seed + 1)")
    p.add_argument("--data-root", type=Path, help="folder of a real dataset")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    args = p.parse_args(argv)
    result = run(args.checkpoint, args.size, args.seed, args.data_root)
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


if __name__ == "__main__":
    main()
