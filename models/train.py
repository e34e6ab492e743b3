"""``python -m models.train``: train an STL-SNN on framed event recordings and save a checkpoint.

Defaults follow the official STL-SNN code: Adam (lr 1e-3, weight decay 1e-6), ExponentialLR
(gamma 0.93 per epoch), MSE between the voted firing rates and the one-hot target. ``--mode``
picks what learns: ``stl`` weights and thresholds, ``sl`` weights only, ``tl`` thresholds only.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from events import FramingSpec
from models.architectures import LEARNING_MODES, PRESETS, ArchConfig, SpikingNet, apply_learning_mode, preset
from models.checkpoint import ModelCard, save_checkpoint
from models.datasets import DATASETS, EventDataset
from models.datasets.sensor_noise import SensorNoise
from models.datasets.synthetic import CACHE_DIR, CameraParams


@dataclass
class EpochStats:
    """What one epoch reached; printed per epoch and the last one stored in the card."""

    epoch: int
    loss: float
    train_accuracy: float
    test_accuracy: float
    spike_rates: dict[str, float] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    samples_per_s: float = 0.0  # training passes per second in this epoch (forward + backward + step)


def use_cores(threads: int = 1) -> None:
    """Set PyTorch's intra-op threads. One is the default: on the shared 2-core box two threads were
    from 1.3x faster (quiet) to 8x slower (busy) than one, spin-waiting on each other; see BENCHMARKS.md."""
    torch.set_num_threads(max(1, min(threads, os.cpu_count() or 1)))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m models.train", description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="demo", choices=sorted(PRESETS), help="architecture preset")
    p.add_argument("--channels", type=int, nargs="+", help="conv block widths, e.g. 16 32")
    p.add_argument("--fc", type=int, nargs="*", help="hidden fc widths, e.g. 256")
    p.add_argument("--input-size", type=int, nargs=2, metavar=("W", "H"), help="model input width and height")
    p.add_argument("--time-steps", "-T", type=int, help="time bins T")
    p.add_argument("--population", "-P", type=int, help="voting neurons per class P")
    p.add_argument("--thresh-init", type=float, help="initial threshold of every neuron")
    p.add_argument("--dataset", default="synthetic", help=f"one of: {', '.join(sorted(DATASETS)) or 'synthetic'}")
    p.add_argument("--data-root", type=Path, help="folder of a real dataset")
    p.add_argument("--keep-frames", action="store_true", help="real datasets: keep framed samples in memory")
    p.add_argument("--split-by", default="number", choices=("number", "time"))
    p.add_argument("--denoise-us", type=int, default=0, help="background-activity filter window in us (0 = off)")
    p.add_argument("--hot-pixels", action="store_true", help="drop hot pixels' events before framing")
    p.add_argument("--noise-max-hz", type=float, default=0.0, help="augmentation: background Hz/pixel up to this")
    p.add_argument("--hot-density", type=float, default=0.0, help="augmentation: share of pixels made hot")
    p.add_argument("--mode", default="stl", choices=sorted(LEARNING_MODES))
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-6)
    p.add_argument("--gamma", type=float, default=0.93, help="ExponentialLR decay per epoch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-size", type=int, default=2000, help="synthetic: training recordings")
    p.add_argument("--test-size", type=int, default=500, help="synthetic: test recordings")
    p.add_argument("--duration-s", type=float, nargs=2, metavar=("MIN", "MAX"), help="synthetic: recording lengths")
    p.add_argument("--cache-dir", type=Path, default=CACHE_DIR, help="synthetic: where framed splits are cached")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    p.add_argument("--threads", type=int, default=1, help="PyTorch intra-op threads")
    p.add_argument("--out", type=Path, default=Path("runs/model.safetensors"))
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def arch_from_args(args: argparse.Namespace, classes: int) -> ArchConfig:
    width, height = args.input_size if args.input_size else (None, None)
    return preset(
        args.arch,
        channels=tuple(args.channels) if args.channels else None,
        fc=tuple(args.fc) if args.fc is not None else None,
        width=width,
        height=height,
        time_steps=args.time_steps,
        population=args.population,
        thresh_init=args.thresh_init,
        classes=classes,
        in_channels=2,  # event frames: OFF and ON counts (the mnist preset becomes its 2-channel variant)
    )


def open_split(
    dataset: str, root: Path | None, split: str, spec: FramingSpec, keep_frames: bool = False, **options
) -> EventDataset:
    """Open one split of a registered dataset; synthetic-only options are dropped for real ones, whose
    ``noise`` (a ``SensorNoise``) is added on access instead."""
    if dataset not in DATASETS:
        raise SystemExit(f"unknown dataset {dataset!r}; registered: {', '.join(sorted(DATASETS))}")
    if dataset == "synthetic":
        return DATASETS[dataset](root, split, spec, **options)
    if root is None:
        raise SystemExit(f"--data-root is required for {dataset!r}")
    opened = DATASETS[dataset](root, split, spec, **({"cache": True} if keep_frames else {}))
    if options.get("noise") is not None and options["noise"].active:
        opened.noise, opened.noise_seed = options["noise"], int(options.get("seed", 0))
    return opened


def evaluate(model: SpikingNet, loader: DataLoader) -> tuple[float, dict[str, float], torch.Tensor]:
    """Accuracy, mean spike rate per LIF layer and the predictions over ``loader``, in eval mode."""
    model.eval()
    lifs = model.lif_layers()
    rates = dict.fromkeys(lifs, 0.0)
    correct, seen, predictions = 0, 0, []
    with torch.no_grad():
        for x, y in loader:
            pred = model(x).argmax(1)
            predictions.append(pred)
            correct += int((pred == y).sum())
            seen += len(y)
            for name, lif in lifs.items():
                rates[name] += lif.spike_rate * len(y)
    return correct / max(seen, 1), {k: v / max(seen, 1) for k, v in rates.items()}, torch.cat(predictions)


def train_epoch(model, loader, optimizer, classes: int, bar) -> tuple[float, float, int]:
    """One pass over ``loader``: mean MSE loss, training accuracy and samples seen."""
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    for x, y in loader:
        out = model(x)
        loss = F.mse_loss(out, F.one_hot(y, classes).float())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total_loss += float(loss.detach()) * len(y)
        correct += int((out.argmax(1) == y).sum())
        seen += len(y)
        bar.update(len(y))
        bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.3f}")
    return total_loss / seen, correct / seen, seen


def train(argv: list[str] | None = None) -> tuple[Path, list[EpochStats]]:
    """Run the CLI with ``argv``; returns the checkpoint path and the per-epoch stats."""
    args = parse_args(argv)
    use_cores(args.threads)
    torch.manual_seed(args.seed)
    started = time.perf_counter()
    arch = preset(args.arch)
    width, height = args.input_size or (arch.width, arch.height)
    steps = args.time_steps or arch.time_steps
    spec = FramingSpec(steps, width, height, args.split_by, args.denoise_us, args.hot_pixels)
    camera = CameraParams(duration_s=tuple(args.duration_s)) if args.duration_s else CameraParams()
    options = {"size": args.train_size, "seed": args.seed, "cache_dir": args.cache_dir, "params": camera}
    augment = SensorNoise.up_to(args.noise_max_hz, args.hot_density)
    train_set = open_split(args.dataset, args.data_root, "train", spec, args.keep_frames, **options, noise=augment)
    test_set = open_split(
        args.dataset, args.data_root, "test", spec, args.keep_frames, **{**options, "size": args.test_size}
    )
    classes = len(train_set.classes)
    config = arch_from_args(args, classes)
    model = SpikingNet(config)
    learnable = apply_learning_mode(model, args.mode)
    optimizer = torch.optim.Adam(learnable, lr=args.lr, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=args.gamma)
    loader_rng = torch.Generator().manual_seed(args.seed)
    train_loader = DataLoader(
        train_set, batch_size=args.batch_size, shuffle=True, generator=loader_rng, num_workers=args.workers
    )
    test_loader = DataLoader(test_set, batch_size=max(args.batch_size, 64), num_workers=args.workers)
    print(
        f"{args.dataset}: {len(train_set)} train / {len(test_set)} test recordings, {classes} classes, "
        f"frames {spec}; {sum(p.numel() for p in model.parameters())} parameters, mode {args.mode}",
        flush=True,
    )
    history: list[EpochStats] = []
    with tqdm(total=args.epochs * len(train_set), unit="rec", disable=args.quiet, file=sys.stdout) as bar:
        for epoch in range(1, args.epochs + 1):
            bar.set_description(f"epoch {epoch}/{args.epochs}")
            tick = time.perf_counter()
            loss, train_acc, seen = train_epoch(model, train_loader, optimizer, classes, bar)
            epoch_seconds = time.perf_counter() - tick
            scheduler.step()
            test_acc, rates, _ = evaluate(model, test_loader)
            thresholds = {name: float(lif.thresh.detach().mean()) for name, lif in model.lif_layers().items()}
            stats = EpochStats(epoch, loss, train_acc, test_acc, rates, thresholds, seen / max(epoch_seconds, 1e-9))
            history.append(stats)
            bar.write(
                f"epoch {epoch}: loss {loss:.4f}  train {train_acc:.3f}  test {test_acc:.3f}  "
                f"rate {' '.join(f'{k}={v:.3f}' for k, v in rates.items())}  "
                f"thresh {' '.join(f'{k}={v:.3f}' for k, v in thresholds.items())}"
            )
    window_us, window_events = train_set.recording_medians()
    wall = time.perf_counter() - started
    last = history[-1]
    card = ModelCard(
        arch=config,
        classes=train_set.classes,
        sensor_size=train_set.sensor_size,
        split_by=args.split_by,
        learning_mode=args.mode,
        dataset=args.dataset,
        window_us=window_us,
        window_events=window_events,
        denoise_us=spec.denoise_us,
        hot_pixels=spec.hot_pixels,
        metrics={
            "test_accuracy": round(last.test_accuracy, 4),
            "train_accuracy": round(last.train_accuracy, 4),
            "test_recordings": len(test_set),
            "spike_rates": {k: round(v, 4) for k, v in last.spike_rates.items()},
            "mean_thresholds": {k: round(v, 4) for k, v in last.thresholds.items()},
        },
        training={
            "command": "python -m models.train " + shlex.join(argv if argv is not None else sys.argv[1:]),
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "weight_decay": args.weight_decay,
            "gamma": args.gamma,
            "seed": args.seed,
            "train_recordings": len(train_set),
            "wall_time_s": round(wall, 1),
            "samples_per_s": round(statistics.median(s.samples_per_s for s in history), 1),
            "threads": torch.get_num_threads(),
            **({"synthetic_camera": asdict(camera)} if args.dataset == "synthetic" else {}),
            **({"noise_augmentation": asdict(augment)} if augment.active else {}),
        },
    )
    path = save_checkpoint(args.out, model, card)
    print(f"saved {path} (test accuracy {last.test_accuracy:.4f}, wall time {wall:.0f} s)", flush=True)
    return path, history


def main(argv: list[str] | None = None) -> None:
    train(argv)


if __name__ == "__main__":
    main()
