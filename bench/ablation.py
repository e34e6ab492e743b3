"""STL vs SL vs TL at the demo scale: same data, seed and epochs; test accuracy and firing rates.

``python -m bench.ablation [--epochs N --train-size N --test-size N --seed S]`` trains the demo
architecture three times with ``models.train`` (only ``--mode`` differs) and writes the table to
BENCHMARKS.md (key ``ablation``). It uses fewer epochs than the demo checkpoint to stay affordable
on two CPU cores; the table says how many.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

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
    args = p.parse_args(argv)
    common = [
        "--arch", "demo", "--epochs", str(args.epochs), "--train-size", str(args.train_size),
        "--test-size", str(args.test_size), "--batch-size", str(args.batch_size), "--seed", str(args.seed), "--quiet",
    ]  # fmt: skip
    rows, results = [], {}
    for mode in LEARNING_MODES:
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


if __name__ == "__main__":
    main()
