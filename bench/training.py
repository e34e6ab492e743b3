"""Training throughput at the demo scale (1 vs 2 PyTorch threads) and what the demo checkpoint cost.

``python -m bench.training [--repeats N --steps N]`` times full training steps (forward, MSE,
backward, Adam) of the ``demo`` architecture on a batch of event-count frames, alternating the
thread settings within one process, and reports medians and their ratio. It then reads the demo
checkpoint's card (the training command, its wall time and samples/s) and evaluates the
checkpoint on held-out synthetic recordings, and times the event-camera simulator. Writes
BENCHMARKS.md key ``training``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from bench.report import table, write_section
from events import FramingSpec
from models.architectures import SpikingNet, preset
from models.checkpoint import load_checkpoint
from models.datasets.synthetic import open_synthetic
from models.evaluate import run as evaluate

DEMO = Path(__file__).resolve().parent.parent / "models" / "checkpoints" / "demo.safetensors"


def samples_per_second(threads: int, steps: int, batch_size: int) -> float:
    """Training samples per second over ``steps`` steps with ``threads`` intra-op threads."""
    torch.set_num_threads(threads)
    config = preset("demo")
    torch.manual_seed(0)
    model = SpikingNet(config).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-6)
    shape = (batch_size, config.time_steps, 2, config.height, config.width)
    x = torch.poisson(torch.full(shape, 0.5))
    target = F.one_hot(torch.arange(batch_size) % config.classes, config.classes).float()
    started = None
    for step in range(steps + 1):
        if step == 1:
            started = time.perf_counter()
        loss = F.mse_loss(model(x), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return steps * batch_size / (time.perf_counter() - started)


def recordings_per_second(size: int, workers: int) -> float:
    """Simulated and framed synthetic recordings per second (no cache), ``workers`` processes."""
    config = preset("demo")
    spec = FramingSpec(config.time_steps, config.width, config.height)
    started = time.perf_counter()
    open_synthetic(None, "train", spec, size=size, seed=12345, workers=workers, cache_dir=None)
    return size / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.training", description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--eval-size", type=int, default=1000)
    p.add_argument("--eval-seed", type=int, default=1)
    p.add_argument("--simulate", type=int, default=200, help="recordings to simulate for the generator's speed")
    args = p.parse_args(argv)
    runs: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(args.repeats):
        for threads in runs:
            runs[threads].append(samples_per_second(threads, args.steps, args.batch_size))
    medians = {k: statistics.median(v) for k, v in runs.items()}
    rows = [[threads, f"{medians[threads]:.1f}", f"{min(v):.1f} - {max(v):.1f}"] for threads, v in runs.items()]
    throughput = table(["torch threads", "train samples/s (median)", "range"], rows)

    simulated = {workers: recordings_per_second(args.simulate, workers) for workers in (1, 2)}
    _, card = load_checkpoint(DEMO)
    result = evaluate(DEMO, size=args.eval_size, seed=args.eval_seed)
    info = card.training
    demo_rows = [
        ["command", f"`{info['command']}`"],
        ["epochs x training recordings", f"{info['epochs']} x {info['train_recordings']}"],
        ["wall time in the card (data simulation included only if not cached)", f"{info['wall_time_s']:.0f} s"],
        ["training samples/s during that run (median epoch)", f"{info['samples_per_s']:.1f}"],
        ["accuracy on its monitoring split", f"{card.metrics['test_accuracy']:.4f}"],
        [
            f"held-out accuracy (`python -m models.evaluate` {result.recordings} recordings, seed {result.seed})",
            f"{result.accuracy:.4f}",
        ],
    ]
    body = (
        f"`python -m bench.training --repeats {args.repeats} --steps {args.steps} --batch-size {args.batch_size}`. "
        f"Training steps of the `demo` architecture (batch {args.batch_size}, T={card.arch.time_steps}, "
        f"{card.arch.width}x{card.arch.height} input), the two settings alternated in one process. "
        f"2 threads / 1 thread = {medians[2] / medians[1]:.2f}x. The CPU is shared with other jobs, so absolute "
        "numbers move from run to run; `models.train` defaults to one thread (`--threads`), which is steadier when "
        "other jobs share the CPU (compare the ranges).\n\n"
        + throughput
        + f"\n\nThe event-camera simulator (`models/datasets/synthetic.py`), {args.simulate} recordings of 0.3-1.0 s "
        f"simulated and framed without cache: {simulated[1]:.1f} recordings/s in one process, "
        f"{simulated[2]:.1f} recordings/s in two ({simulated[2] / simulated[1]:.2f}x), i.e. "
        f"{3500 / simulated[2] / 60:.1f} min for the demo's 3,500 recordings at that rate."
        + "\n\nThe bundled demo checkpoint (`models/checkpoints/demo.json`, written by the training run):\n\n"
        + table(["", ""], demo_rows)
    )
    write_section("training", "Training throughput and the demo model", body)
    print(body)


if __name__ == "__main__":
    main()
