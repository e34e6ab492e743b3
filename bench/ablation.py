"""STL vs SL vs TL at the demo scale: same data, seed and epochs; test accuracy and firing rates.

``python -m bench.ablation [--epochs N --train-size N --test-size N --seed S]`` trains the demo
architecture three times with ``models.train`` (only ``--mode`` differs) and writes the table to
BENCHMARKS.md (key ``ablation``). It uses fewer epochs than the demo checkpoint to stay affordable
on two CPU cores; the table says how many. ``--noise-hz R`` (with ``--modes stl sl``, say) then
tests every trained model on the same fresh recordings, clean and with R Hz per pixel of
background activity, no noise filter (the STL-SNN paper's robustness claim), into key
``ablation-noise`` instead.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

from bench.report import table, write_section
from models.architectures import LEARNING_MODES
from models.train import train


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.ablation", description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--train-size", type=int, default=3000)
    p.add_argument("--test-size", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--modes", nargs="+", choices=sorted(LEARNING_MODES), default=list(LEARNING_MODES))
    p.add_argument("--noise-hz", type=float, help="test each model clean and at this background rate")
    args = p.parse_args(argv)
    common = [
        "--arch", "demo", "--epochs", str(args.epochs), "--train-size", str(args.train_size),
        "--test-size", str(args.test_size), "--batch-size", str(args.batch_size), "--seed", str(args.seed), "--quiet",
    ]  # fmt: skip
    rows, results = [], {}
    for mode in args.modes:
        started = time.perf_counter()
        _, history = train([*common, "--mode", mode, "--out", f"runs/ablation/{mode}.safetensors"])
        wall = time.perf_counter() - started
        last = history[-1]
        results[mode] = last
        rows.append(
            [
                f"{mode.upper()} ({LEARNING_MODES[mode].description})",
                f"{last.test_accuracy:.3f}",
                f"{last.train_accuracy:.3f}",
                " / ".join(f"{v:.3f}" for v in last.spike_rates.values()),
                " / ".join(f"{v:.3f}" for v in last.thresholds.values()),
                f"{statistics.median(s.samples_per_s for s in history):.0f}",
                f"{wall:.0f}",
            ]
        )
        print(rows[-1], flush=True)
    if args.noise_hz is not None:
        write_noise_section(args, common)
        return
    stl = results["stl"].test_accuracy
    ratios = ", ".join(f"{m.upper()} {results[m].test_accuracy / max(stl, 1e-9):.2f}x" for m in ("sl", "tl"))
    body = (
        f"`python -m bench.ablation --epochs {args.epochs} --train-size {args.train_size} "
        f"--test-size {args.test_size} --batch-size {args.batch_size} --seed {args.seed}`: the `demo` architecture "
        f"trained three times on the same synthetic split (seed {args.seed}) with the same initial weights and data "
        f"order; only what learns differs. {args.epochs} epochs (the demo checkpoint trains longer). Spike rates and "
        f"mean thresholds are per LIF layer (lif1 / lif2 / lif3 / lif4), measured on the {args.test_size} test "
        "recordings.\n\n"
        + table(
            [
                "mode",
                "test acc",
                "train acc",
                "mean spike rate per layer",
                "mean threshold per layer",
                "train samples/s (median epoch)",
                "wall s",
            ],
            rows,
        )
        + f"\n\nTest accuracy relative to STL: {ratios}. One seed: with {args.test_size} test recordings the "
        f"standard error of an accuracy near STL's is {math.sqrt(stl * (1 - stl) / args.test_size):.3f}, so "
        "differences of that order are noise; chance is 0.100."
    )
    write_section("ablation", "Learning modes: STL vs SL vs TL (demo scale)", body)


def write_noise_section(args: argparse.Namespace, common: list[str]) -> None:
    """Each trained mode's accuracy on fresh recordings (seed + 1), clean and at ``args.noise_hz``."""
    from bench.noise_accuracy import Variant, accuracies
    from models.datasets.sensor_noise import SensorNoise

    variants = [Variant(mode.upper(), Path(f"runs/ablation/{mode}.safetensors")) for mode in args.modes]
    noises = [SensorNoise(), SensorNoise.fixed(args.noise_hz)]
    scores = accuracies(variants, args.test_size, args.seed + 1, noises, workers=2)
    rows = [[v.label, f"{scores[0][k]:.3f}", f"{scores[1][k]:.3f}"] for k, v in enumerate(variants)]
    command = " ".join(["python -m bench.ablation", *common[2:-1], "--modes", *args.modes, "--noise-hz"])
    body = (
        f"`{command} {args.noise_hz:g}`: the demo architecture trained per mode on the same clean synthetic split "
        f"(seed {args.seed}, same initial weights and data order, {args.epochs} epochs, no noise filter, no "
        f"augmentation), then tested on the same {args.test_size} fresh recordings (seed {args.seed + 1}) clean and "
        f"with {args.noise_hz:g} Hz per pixel of uniform background activity added.\n\n"
        + table(["mode", "clean", f"{args.noise_hz:g} Hz/pixel"], rows)
    )
    print(body)
    write_section("ablation-noise", f"Learning modes under noise: {' vs '.join(m.upper() for m in args.modes)}", body)


if __name__ == "__main__":
    main()
