"""Accuracy against energy: the demo trained at several ``--sop-penalty`` values, STL and SL.

``python -m bench.energy_sweep --penalties 0 0.03 0.1 0.3 1 3 --sl-penalties 0 0.3 --jobs 2 --write``
trains the demo's recipe (``DEMO_RECIPE``: architecture, input, noise filters and augmentation,
epochs) once per penalty with ``models.train``, each run in its own process with one thread,
``--jobs`` at a time, and reads every result from the checkpoint card the run wrote: held-out
accuracy, the median SNN/ANN energy ratio (``models.energy`` pricing, as the service prices a
request) and the firing rate of each LIF layer. It then times the penalty's own cost: training
steps with and without it, alternated on one model in this process (the runs' own samples/s
move with the load of a shared machine). Writes the table to BENCHMARKS.md (key
``energy-sweep``) and the curve to ``docs/energy_tradeoff.png``; ``--reuse`` keeps checkpoints
already in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.report import table, write_section

ROOT = Path(__file__).resolve().parent.parent
PLOT = ROOT / "docs" / "energy_tradeoff.png"
DEMO_RECIPE = [
    "--arch", "demo", "--input-size", "64", "64", "--stem-stride", "2",
    "--epochs", "15", "--batch-size", "16", "--train-size", "3000", "--test-size", "500",
    "--denoise-us", "2000", "--hot-pixels", "--noise-max-hz", "12", "--hot-density", "0.001",
]  # fmt: skip


@dataclass
class Run:
    mode: str
    penalty: float
    accuracy: float = 0.0
    energy_ratio: float = 0.0
    rates: dict[str, float] | None = None
    wall_s: float = 0.0
    samples_per_s: float = 0.0

    @property
    def name(self) -> str:
        return f"{self.mode}-{self.penalty:g}"


def train_run(run: Run, out: Path, reuse: bool, extra: list[str]) -> Run:
    """Train one point of the sweep in a child process (log beside the checkpoint) and read its card."""
    checkpoint = out / f"{run.name}.safetensors"
    if not (reuse and checkpoint.exists()):
        command = [sys.executable, "-m", "models.train", *DEMO_RECIPE, *extra, "--mode", run.mode]
        command += ["--sop-penalty", f"{run.penalty:g}", "--quiet", "--out", str(checkpoint)]
        with open(out / f"{run.name}.log", "w") as log:
            subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=True)
    card = json.loads(checkpoint.with_suffix(".json").read_text())
    metrics, training = card["metrics"], card["training"]
    run.accuracy, run.energy_ratio = metrics["test_accuracy"], metrics["energy_ratio"]
    run.rates = metrics["spike_rates"]
    run.wall_s, run.samples_per_s = training["wall_time_s"], training["samples_per_s"]
    print(f"{run.name}: accuracy {run.accuracy:.3f}, energy snn/ann {run.energy_ratio:.3f}", flush=True)
    return run


def penalty_cost(rounds: int, steps: int, penalty: float) -> tuple[float, float, float]:
    """Median seconds per training step without and with the SOP penalty, and the median per-round ratio."""
    from models.architectures import SpikingNet
    from models.energy import DEFAULT_PROFILE, load_profiles
    from models.sops import ActivityMeter
    from models.sparsity import SopEnergy
    from models.train import arch_from_args, parse_args

    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = arch_from_args(parse_args(DEMO_RECIPE), classes=10)
    model = SpikingNet(config)
    meter = ActivityMeter(model)
    energy = SopEnergy.of(model, load_profiles()[DEFAULT_PROFILE])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    frames = torch.poisson(torch.full((16, config.time_steps, 2, config.height, config.width), 0.3))
    target = torch.nn.functional.one_hot(torch.arange(16) % 10, 10).float()

    def steps_s(with_penalty: bool) -> float:
        tick = time.perf_counter()
        for _ in range(steps):
            run = meter(frames)
            loss = torch.nn.functional.mse_loss(run.scores, target)
            if with_penalty:
                loss = loss + penalty * energy.penalty(run.sops)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return (time.perf_counter() - tick) / steps

    steps_s(True)
    plain, penalised = [], []
    for _ in range(rounds):
        plain.append(steps_s(False))
        penalised.append(steps_s(True))
    ratios = [b / a for a, b in zip(plain, penalised, strict=True)]
    return statistics.median(plain), statistics.median(penalised), statistics.median(ratios)


def plot(runs: list[Run], path: Path) -> None:
    """Accuracy against energy ratio (left) and firing rates against the penalty (right), STL and SL."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6), dpi=90)
    for mode, marker in (("stl", "o"), ("sl", "s")):
        chosen = sorted((r for r in runs if r.mode == mode), key=lambda r: r.penalty)
        if not chosen:
            continue
        left.plot([r.energy_ratio for r in chosen], [r.accuracy for r in chosen], marker=marker, label=mode.upper())
        for r in chosen:
            left.annotate(f"{r.penalty:g}", (r.energy_ratio, r.accuracy), textcoords="offset points", xytext=(4, 4))
        if mode == "stl":
            xs = [max(r.penalty, 0.01) for r in chosen]
            for layer in chosen[0].rates:
                right.plot(xs, [r.rates[layer] for r in chosen], marker=marker, label=layer)
    left.set(xlabel="SNN / ANN energy (median, 45nm-fp32)", ylabel="held-out accuracy", title="accuracy vs energy")
    left.axvline(0.5, color="grey", linestyle=":", linewidth=1)
    left.legend(title="labels: --sop-penalty", fontsize=8)
    right.set(xscale="log", xlabel="--sop-penalty (0 drawn at 0.01)", ylabel="firing rate per step")
    right.set_title("STL firing rate per LIF layer")
    right.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.energy_sweep", description=__doc__.splitlines()[0])
    p.add_argument("--penalties", type=float, nargs="+", default=[0, 0.03, 0.1, 0.3, 1, 3])
    p.add_argument("--sl-penalties", type=float, nargs="*", default=[0, 0.3], help="SL runs at these penalties")
    p.add_argument("--jobs", type=int, default=2, help="training runs at once (one thread each)")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "energy_sweep")
    p.add_argument("--reuse", action="store_true", help="keep checkpoints already in --out")
    p.add_argument("--extra", default="", help="more models.train flags for every run, e.g. '--epochs 2'")
    p.add_argument("--cost-rounds", type=int, default=7)
    p.add_argument("--write", action="store_true", help="write BENCHMARKS.md and the plot")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    runs = [Run("stl", x) for x in args.penalties] + [Run("sl", x) for x in args.sl_penalties]
    with ThreadPoolExecutor(args.jobs) as pool:
        runs = list(pool.map(lambda r: train_run(r, args.out, args.reuse, args.extra.split()), runs))
    plain, penalised, ratio = penalty_cost(args.cost_rounds, 10, max(args.penalties))
    layers = list(runs[0].rates)
    rows = [
        [
            r.mode.upper(),
            f"{r.penalty:g}",
            f"{r.accuracy:.3f}",
            f"**{r.energy_ratio:.3f}**",
            " / ".join(f"{r.rates[k]:.3f}" for k in layers),
            f"{r.samples_per_s:.0f}",
            f"{r.wall_s:.0f}",
        ]
        for r in runs
    ]
    body = (
        f"`python -m bench.energy_sweep {' '.join(argv if argv is not None else sys.argv[1:])}`: the demo's recipe "
        f"(`{' '.join(DEMO_RECIPE)}`) trained once per `--sop-penalty` (loss += penalty x the batch's estimated "
        "SNN/ANN energy ratio), each run one process with one thread, "
        f"{args.jobs} at a time on this shared machine. Accuracy: the card's held-out split (500 recordings of the "
        "seed's test split); energy: the median per-recording SNN/ANN ratio on that split, priced by "
        "`models.energy` (profile 45nm-fp32, as the service prices a request). Plot: `docs/energy_tradeoff.png`.\n\n"
        + table(
            [
                "mode",
                "--sop-penalty",
                "accuracy",
                "SNN/ANN energy (median)",
                f"firing rate per step ({' / '.join(layers)})",
                "train samples/s (median epoch)",
                "wall s",
            ],
            rows,
        )
        + f"\n\nThe penalty's own cost, alternated in one process ({args.cost_rounds} rounds of 10 steps, batch 16, "
        f"one thread): {plain * 1e3:.1f} ms per step without, {penalised * 1e3:.1f} ms with, "
        f"**{ratio:.2f}x** (target at most 1.3x).\n"
    )
    print(body)
    if args.write:
        plot(runs, PLOT)
        write_section("energy-sweep", "Energy-aware training: accuracy against energy (demo scale)", body)


if __name__ == "__main__":
    main()
