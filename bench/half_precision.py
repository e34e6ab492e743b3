"""Half-precision variants (bf16, fp16) of the frozen model, and how far they agree with float32.

A bench-only variant, never the default: the whole frozen module (weights, membranes,
thresholds) is cast, frames go in as float32 and scores come back as float32. Thresholds make
half precision change answers, not only round them: a membrane that rounds across its
threshold fires (or not) and changes everything after it. So parity is reported as agreement
on the demo's synthetic test set: spike decisions (each neuron, each time step), samples whose
spike counts, SOP counts and predicted class all match float32, and the largest score change.
Spike and SOP counts are summed in the cast precision too, so a layer's count can also round.

    .venv/bin/python -m bench.half_precision [--samples 256] [--dtypes bf16,fp16] [--no-write]
"""

from __future__ import annotations

import argparse
import copy
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from bench.report import table, write_section
from export.frozen import FrozenSNN, freeze
from export.parity import parity_inputs
from models.checkpoint import load_checkpoint

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
DEMO_CHECKPOINT = Path(__file__).resolve().parent.parent / "models" / "checkpoints" / "demo.safetensors"


class HalfPrecisionSNN(nn.Module):
    """``frozen`` cast to ``dtype``; float32 frames in, float32 scores and int64 counts out (all six outputs)."""

    def __init__(self, frozen: FrozenSNN, dtype: torch.dtype):
        super().__init__()
        self.inner = copy.deepcopy(frozen).to(dtype)
        self.dtype = dtype

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, ...]:
        scores, spikes, sops, step_scores, step_spikes, step_sops = self.inner(frames.to(self.dtype))
        return scores.float(), spikes, sops, step_scores.float(), step_spikes, step_sops


def half_torchscript(frozen: FrozenSNN, dtype: torch.dtype, example: torch.Tensor) -> torch.jit.ScriptModule:
    """The half-precision module traced and frozen as ``model.pt`` is (on ``example``'s device)."""
    module = HalfPrecisionSNN(frozen, dtype).to(example.device).eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.freeze(torch.jit.trace(module, (example,), check_trace=False))


@dataclass
class Agreement:
    """How a half-precision run compares with float32 on the same frames."""

    decisions: int
    flipped: int
    samples: int
    samples_all_spikes_equal: int
    spike_counts_equal: int
    sop_counts_equal: int
    predictions_equal: int
    max_score_diff: float


def agreement(frozen: FrozenSNN, dtype: torch.dtype, frames: torch.Tensor, batch: int = 32) -> Agreement:
    """Compare the cast module with ``frozen`` spike decision by spike decision, in batches."""
    half = copy.deepcopy(frozen).to(dtype)
    totals = dict(decisions=0, flipped=0, all_equal=0, spikes=0, sops=0, predictions=0)
    max_diff = 0.0
    with torch.no_grad():
        for start in range(0, len(frames), batch):
            x = frames[start : start + batch]
            ref, got = frozen.run(x, record=True), half.run(x.to(dtype), record=True)
            flips = torch.zeros(len(x), dtype=torch.int64)
            for name, train in ref.spike_trains.items():
                differ = train != got.spike_trains[name].float()
                totals["decisions"] += differ.numel()
                flips += differ.flatten(1).sum(dim=1)
            totals["flipped"] += int(flips.sum())
            totals["all_equal"] += int((flips == 0).sum())
            totals["spikes"] += int((ref.spikes == got.spikes).all(dim=1).sum())
            totals["sops"] += int((ref.sops == got.sops).all(dim=1).sum())
            totals["predictions"] += int((ref.scores.argmax(1) == got.scores.float().argmax(1)).sum())
            max_diff = max(max_diff, float((ref.scores - got.scores.float()).abs().max()))
    return Agreement(
        totals["decisions"],
        totals["flipped"],
        len(frames),
        totals["all_equal"],
        totals["spikes"],
        totals["sops"],
        totals["predictions"],
        max_diff,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=256, help="synthetic test recordings (default 256)")
    parser.add_argument("--dtypes", default="bf16,fp16")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    model, card = load_checkpoint(DEMO_CHECKPOINT)
    frozen = freeze(model).eval()
    inputs = parity_inputs(card, args.samples)
    rows = []
    for name in args.dtypes.split(","):
        a = agreement(frozen, DTYPES[name], inputs.frames)
        rows.append(
            [
                name,
                f"{a.flipped:,} of {a.decisions:,} ({a.flipped / a.decisions:.3%})",
                f"{a.samples_all_spikes_equal}/{a.samples}",
                f"{a.spike_counts_equal}/{a.samples}",
                f"{a.sop_counts_equal}/{a.samples}",
                f"{a.predictions_equal}/{a.samples} ({a.predictions_equal / a.samples:.1%})",
                f"{a.max_score_diff:.3g}",
            ]
        )
        print(rows[-1], flush=True)
    header = ["precision", "spike decisions flipped", "samples, no flip", "spike counts equal"]
    header += ["SOP counts equal", "predictions equal", "max score diff"]
    command = " ".join([".venv/bin/python -m bench.half_precision", *(sys.argv[1:] if argv is None else argv)])
    body = (
        f"`{command}`: the demo checkpoint's frozen module cast whole to each precision, against float32, on "
        f"{inputs.description} ({len(inputs.frames)} "
        "samples), on the CPU. A spike decision is one neuron at one time step; a flip can change the "
        "decisions after it, and spike and SOP counts are summed in the cast precision too, so they can round "
        "as well. Never the default: the "
        "served artifacts stay float32; the variant exists for a GPU speed comparison (`bench.inference`), "
        "not yet run on a GPU.\n\n" + table(header, rows)
    )
    print(body)
    if not args.no_write:
        write_section("half-precision", "Half precision (bf16, fp16): agreement with float32", body)


if __name__ == "__main__":
    main()
