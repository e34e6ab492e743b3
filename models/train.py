"""``python -m models.train``: train an STL-SNN on framed event recordings and save a checkpoint.

Defaults follow the official STL-SNN code: Adam (lr 1e-3, weight decay 1e-6), ExponentialLR
(gamma 0.93 per epoch), MSE between the voted firing rates and the one-hot target. ``--mode``
picks what learns: ``stl`` weights and thresholds, ``sl`` weights only, ``tl`` thresholds only.
``--sop-penalty`` adds the batch's estimated SNN/ANN energy ratio to the loss (``--target-rate``
penalises firing above a rate per layer instead; ``models.sparsity``); every epoch reports the test
set's median energy ratio, priced as the service prices a request.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
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
from models.energy import DEFAULT_PROFILE, load_profiles
from models.sops import Activity, ActivityMeter
from models.sparsity import RateTarget, SopEnergy


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
    energy_ratio: float = 0.0  # median SNN/ANN energy estimate over the test set
    penalty: float = 0.0  # mean sparsity penalty added to the loss in this epoch


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
    p.add_argument("--stem-stride", type=int, help="stride of the first conv (2: a quarter of its SOPs per event)")
    p.add_argument("--sop-penalty", type=float, default=0.0, help="loss += this x the batch's SNN/ANN energy ratio")
    p.add_argument("--target-rate", type=float, nargs="+", help="penalise firing above this rate (one, or per LIF)")
    p.add_argument("--rate-penalty", type=float, default=10.0, help="weight of the squared excess over --target-rate")
    p.add_argument("--energy-profile", default=DEFAULT_PROFILE, help="pricing of the penalty and reported ratio")
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
        stem_stride=args.stem_stride,
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


@dataclass
class Scored:
    """What ``evaluate`` saw: accuracy, mean firing rate per LIF layer, predictions, SOPs ``[N, S]``."""

    accuracy: float
    spike_rates: dict[str, float]
    predictions: torch.Tensor
    sops: np.ndarray


def evaluate(model: SpikingNet, loader: DataLoader) -> Scored:
    """Accuracy, firing rates, predictions and per-sample SOPs over ``loader``, in eval mode."""
    model.eval()
    meter = ActivityMeter(model)
    names = list(model.lif_layers())
    rates = torch.zeros(len(names))
    correct, seen, predictions, sops = 0, 0, [], []
    with torch.no_grad():
        for x, y in loader:
            run = meter(x)
            pred = run.scores.argmax(1)
            predictions.append(pred)
            sops.append(run.sops.double().numpy())
            correct += int((pred == y).sum())
            seen += len(y)
            rates += run.rates * len(y)
    rates /= max(seen, 1)
    return Scored(
        correct / max(seen, 1),
        dict(zip(names, rates.tolist(), strict=True)),
        torch.cat(predictions),
        np.concatenate(sops) if sops else np.zeros((0, len(meter.fanouts))),
    )


Penalty = Callable[[Activity], torch.Tensor]


def train_epoch(
    model: SpikingNet, loader: DataLoader, optimizer, classes: int, bar, penalty: Penalty | None = None
) -> tuple[float, float, int, float]:
    """One pass over ``loader``: mean MSE loss, training accuracy, samples seen and mean penalty."""
    model.train()
    meter = ActivityMeter(model)
    total_loss, total_penalty, correct, seen = 0.0, 0.0, 0, 0
    for x, y in loader:
        run = meter(x)
        loss = F.mse_loss(run.scores, F.one_hot(y, classes).float())
        extra = penalty(run) if penalty is not None else None
        optimizer.zero_grad()
        (loss + extra if extra is not None else loss).backward()
        optimizer.step()
        total_loss += float(loss.detach()) * len(y)
        total_penalty += float(extra.detach()) * len(y) if extra is not None else 0.0
        correct += int((run.scores.argmax(1) == y).sum())
        seen += len(y)
        bar.update(len(y))
        bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.3f}")
    return total_loss / seen, correct / seen, seen, total_penalty / seen


def sparsity_penalty(args: argparse.Namespace, energy: SopEnergy, layers: int) -> Penalty | None:
    """The penalty the flags ask for (SOP energy, rate targets, both or none)."""
    if args.target_rate and len(args.target_rate) not in (1, layers):
        raise SystemExit(f"--target-rate takes one rate or one per LIF layer ({layers})")
    targets = RateTarget(torch.tensor(args.target_rate).expand(layers).clone()) if args.target_rate else None
    if not args.sop_penalty and targets is None:
        return None

    def penalty(run: Activity) -> torch.Tensor:
        total = args.sop_penalty * energy.penalty(run.sops) if args.sop_penalty else run.scores.new_zeros(())
        return total + args.rate_penalty * targets.penalty(run.rates) if targets is not None else total

    return penalty


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
    profiles = load_profiles()
    if args.energy_profile not in profiles:
        raise SystemExit(f"unknown energy profile {args.energy_profile!r}; profiles: {', '.join(sorted(profiles))}")
    energy = SopEnergy.of(model, profiles[args.energy_profile])
    penalty = sparsity_penalty(args, energy, len(model.lif_layers()))
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
            loss, train_acc, seen, mean_penalty = train_epoch(model, train_loader, optimizer, classes, bar, penalty)
            epoch_seconds = time.perf_counter() - tick
            scheduler.step()
            scored = evaluate(model, test_loader)
            ratio = float(np.median(energy.ratios(scored.sops))) if len(scored.sops) else float("nan")
            thresholds = {name: float(lif.thresh.detach().mean()) for name, lif in model.lif_layers().items()}
            stats = EpochStats(
                epoch,
                loss,
                train_acc,
                scored.accuracy,
                scored.spike_rates,
                thresholds,
                seen / max(epoch_seconds, 1e-9),
                ratio,
                mean_penalty,
            )
            history.append(stats)
            bar.write(
                f"epoch {epoch}: loss {loss:.4f}  penalty {mean_penalty:.4f}  train {train_acc:.3f}  "
                f"test {scored.accuracy:.3f}  energy snn/ann {ratio:.3f}  "
                f"rate {' '.join(f'{k}={v:.3f}' for k, v in scored.spike_rates.items())}  "
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
            "energy_ratio": round(last.energy_ratio, 4),
            "energy_profile": args.energy_profile,
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
            "sop_penalty": args.sop_penalty,
            **({"target_rate": args.target_rate, "rate_penalty": args.rate_penalty} if args.target_rate else {}),
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
