"""Inference: official-style eager PyTorch vs the folded module vs TorchScript vs ONNX Runtime, one run.

The baseline is written the way the official STL-SNN code (``func.py``) runs a network: a
Python loop over time steps inside every BatchNorm, LIF and dropout layer, and the spike
through the autograd Function. All four variants hold the same weights, see the same frames
and are checked to agree before timing; timings interleave the variants round by round (the
machine is shared and noisy) and report medians and ratios. Also writes the export time and
artifact sizes (key ``export``). ``--device cuda`` runs eager/folded/TorchScript on a GPU, adds
TorchScript replaying CUDA graphs (one per batch-size bucket, ``service.backends``) and keeps
ONNX Runtime on the CPU to batches of 32 or less. TorchScript in bf16 and fp16 (``bench.half_precision``)
run too; their outputs differ by design, so they are timed, not checked (see that bench for
agreement). ``--out DIR`` writes the sections to ``DIR`` for ``bench.report --merge``.

    .venv/bin/python -m bench.inference [--device cpu|cuda] [--rounds 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.half_precision import DTYPES, half_torchscript
from bench.report import table, write_section
from export.frozen import freeze
from export.onnx_artifact import run_onnx
from export.repository import FORMATS, export_checkpoint
from export.torchscript_artifact import load_torchscript
from models.architectures import (
    BatchNormSpec,
    ConvSpec,
    DropoutSpec,
    FlattenSpec,
    LIFSpec,
    LinearSpec,
    MaxPoolSpec,
    SpikingNet,
    VoteSpec,
    build_model,
    preset,
)
from models.checkpoint import ModelCard, load_checkpoint, save_checkpoint
from models.neuron import ArctanSpike
from service.backends.torchscript_backend import BucketedRunner

DEMO_CHECKPOINT = Path(__file__).resolve().parent.parent / "models" / "checkpoints" / "demo.safetensors"
ORT_MAX_BATCH_BESIDE_CUDA = 32  # ONNX Runtime runs on the CPU: larger batches would take the GPU run's minutes


class OfficialStyleNet(nn.Module):
    """The same network as ``model``, run the way the official ``func.py`` layers run it."""

    def __init__(self, model: SpikingNet):
        super().__init__()
        self.model = model.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for spec in self.model.specs:
            layer = getattr(self.model, spec.name)
            match spec:
                case ConvSpec() | LinearSpec():
                    b, t = x.shape[:2]
                    flat = x.flatten(0, 1).contiguous()
                    out = layer._conv_forward(flat, layer.weight, None) if isinstance(spec, ConvSpec) else None
                    out = F.linear(flat, layer.weight) if out is None else out
                    x = out.view(b, t, *out.shape[1:])
                case BatchNormSpec():
                    steps = [
                        F.batch_norm(x[:, t], layer.running_mean, layer.running_var, layer.weight, layer.bias)
                        for t in range(x.shape[1])
                    ]
                    x = torch.stack(steps, dim=1)
                case LIFSpec():
                    mem, spikes = 0, []
                    for t in range(x.shape[1]):
                        mem = mem * layer.tau + x[:, t]
                        spike = ArctanSpike.apply(mem - layer.thresh)
                        mem = (1 - spike) * mem
                        spikes.append(spike)
                    x = torch.stack(spikes, dim=1)
                case DropoutSpec():
                    x = torch.stack([F.dropout(x[:, t], spec.p, False) for t in range(x.shape[1])], dim=1)
                case MaxPoolSpec():
                    b, t = x.shape[:2]
                    out = F.max_pool2d(x.flatten(0, 1).contiguous(), spec.kernel)
                    x = out.view(b, t, *out.shape[1:])
                case FlattenSpec():
                    x = x.view(x.shape[0], x.shape[1], -1)
                case VoteSpec():
                    b, t = x.shape[:2]
                    x = F.avg_pool1d(x.flatten(0, 1).unsqueeze(1), spec.population).view(b, t, -1).mean(1)
        return x


def ort_session(path: Path, threads: int, level: str = "ORT_ENABLE_ALL"):
    """A CPU session: ``level`` is an ORT graph optimisation level, sequential execution, no inter-op pool."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def checkpoint_for(name: str, folder: Path) -> tuple[Path, str]:
    """The demo checkpoint as trained, or a paper-size preset with fresh weights (speed does not depend on them)."""
    if name == "demo" and DEMO_CHECKPOINT.exists():
        return DEMO_CHECKPOINT, "trained demo checkpoint"
    torch.manual_seed(0)
    model = build_model(preset(name))
    card = ModelCard(
        arch=model.config,
        classes=[str(i) for i in range(model.config.classes)],
        sensor_size=(128, 128),
        dataset=name,
    )
    return save_checkpoint(folder / name, model, card), f"`{name}` preset, initial weights"


def frames_for(model: SpikingNet, batch: int, seed: int = 0) -> torch.Tensor:
    c = model.config
    shape = (batch, c.time_steps, c.in_channels, c.height, c.width)
    return torch.poisson(torch.full(shape, 0.3), generator=torch.Generator().manual_seed(seed))


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed_torch(module, frames: torch.Tensor):
    """A no-argument call of ``module(frames)`` without autograd, for ``measure``."""

    def run():
        with torch.no_grad():
            module(frames)

    return run


def measure(variants: dict, rounds: int, device: str) -> dict[str, float]:
    """Median seconds per call of each variant, calls interleaved round by round after one warm-up."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for fn in variants.values():
        fn()
    sync(device)
    for _ in range(rounds):
        for name, fn in variants.items():
            start = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def roofline_row(name: str, batch: int, variant: str, seconds: float, manifest, params: int, peaks) -> list:
    """Achieved dense-equivalent FLOP/s and a lower bound of memory traffic for one timed call.

    FLOPs: 2 per MAC of the same network run densely at every time step (``manifest.dense_macs``),
    what a GPU executes whatever the spikes. Bytes: the frames read plus every weight read once;
    activations are not counted, so the bandwidth is a lower bound. ``peaks`` = (FLOP/s, bytes/s)
    of the device, or None where unknown (shares then read n/a).
    """
    inp = manifest.input
    flops = 2 * manifest.dense_macs * manifest.time_steps * batch
    half = "bf16" in variant or "fp16" in variant
    traffic = batch * manifest.time_steps * inp.channels * inp.height * inp.width * 4 + params * (2 if half else 4)
    flop_s, byte_s = flops / seconds, traffic / seconds
    shares = [f"{flop_s / peaks[0]:.2%}", f"{byte_s / peaks[1]:.2%}"] if peaks else ["n/a", "n/a"]
    return [name, batch, variant, f"{flop_s / 1e9:,.1f}", shares[0], f"{byte_s / 1e9:,.2f}", shares[1]]


def bench_model(
    name: str, folder: Path, batches: list[int], rounds: int, device: str, threads: int, peaks=None
) -> tuple[list, list, list]:
    checkpoint, what = checkpoint_for(name, folder)
    started = time.perf_counter()
    manifest = export_checkpoint(
        checkpoint, folder / "repo", name=name, formats=tuple(FORMATS), parity_samples=8, force=True
    )
    export_seconds = time.perf_counter() - started
    version = folder / "repo" / name / "1"
    sizes = {f: (version / FORMATS[f]).stat().st_size for f in FORMATS}
    model, _ = load_checkpoint(checkpoint)
    official = OfficialStyleNet(model).to(device)
    frozen = freeze(model).to(device)
    scripted = load_torchscript(version / "model.pt", device)
    session = ort_session(version / "model.onnx", threads)
    extended = ort_session(version / "model.onnx", threads, "ORT_ENABLE_EXTENDED")
    more_threads = ort_session(version / "model.onnx", threads + 1)
    graphs = None
    if device == "cuda":
        sample_shape = tuple(frames_for(model, 1).shape[1:])
        graphs = BucketedRunner(scripted, sample_shape, max(batches), device, capture=True)
    params = sum(p.numel() for p in model.parameters())
    roofline: list[list] = []
    halves = {name: half_torchscript(frozen, dtype, frames_for(model, 2).to(device)) for name, dtype in DTYPES.items()}
    rows = []
    for batch in batches:
        frames = frames_for(model, batch)
        on_device = frames.to(device)
        array = frames.numpy()
        with torch.no_grad():
            expected = official(on_device).cpu()
            folded = frozen(on_device)
            ts = scripted(on_device)
            replayed = graphs.run(on_device)[0].cpu() if graphs is not None else ts[0].cpu()
        ort_out = run_onnx(session, array)
        for got in (folded[0].cpu(), ts[0].cpu(), replayed, torch.from_numpy(ort_out[0])):
            torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
        assert np.array_equal(ts[2].cpu().numpy(), ort_out[2]) and np.array_equal(folded[1].cpu().numpy(), ort_out[1])

        variants = {
            "official-style eager": timed_torch(official, on_device),
            "folded module": timed_torch(frozen, on_device),
            "TorchScript": timed_torch(scripted, on_device),
        }
        if graphs is not None:
            variants["TorchScript + CUDA graphs"] = timed_torch(graphs.run, on_device)
        for half_name, half in halves.items():
            variants[f"TorchScript {half_name} (not checked, see half precision)"] = timed_torch(half, on_device)
        if device == "cpu" or batch <= ORT_MAX_BATCH_BESIDE_CUDA:
            variants["ONNX Runtime CPU"] = partial(run_onnx, session, array)
        if batch == 1:  # the ORT options worth trying, side by side with the default choice above
            variants["ORT, EXTENDED optimisation"] = partial(run_onnx, extended, array)
            variants[f"ORT, {threads + 1} intra-op threads"] = partial(run_onnx, more_threads, array)
        seconds = measure(variants, rounds if batch == 1 else max(3, rounds // 6), device)
        base = seconds["official-style eager"]
        for variant, s in seconds.items():
            rows.append([name, batch, variant, f"{s * 1e3:.2f}", f"{batch / s:,.0f}", f"{base / s:.2f}x"])
            print(rows[-1], flush=True)
            if batch == max(batches) and not variant.startswith(("ONNX", "ORT")):
                roofline.append(roofline_row(name, batch, variant, s, manifest, params, peaks))
    parity = manifest.parity
    export_row = [
        name,
        what,
        f"{sum(p.numel() for p in model.parameters()):,}",
        f"{export_seconds:.1f}",
        f"{sizes['onnx'] / 1e6:.2f}",
        f"{sizes['torchscript'] / 1e6:.2f}",
        f"{sizes['nir'] / 1e6:.2f}",
        f"{max(b['scores_max_abs_diff'] for b in parity['backends'].values()):.1e}",
        parity["ties"],
        f"{parity['inputs']['samples']} {parity['inputs']['kind']}",
    ]
    return rows, export_row, roofline


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--models", default="demo,dvsgesture")
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--rounds", type=int, default=31, help="timed rounds at batch 1 (a sixth at larger batches)")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads of torch and ORT alike (default 1)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    parser.add_argument("--out", type=Path, help="write the sections to this folder (bench.report --merge)")
    parser.add_argument("--key-suffix", default="", help="appended to the section keys (e.g. -gpu)")
    parser.add_argument("--label", default="", help="appended to the section titles (what kind of run this is)")
    parser.add_argument(
        "--peaks",
        help="the device's peak 'FLOP/s,bytes/s' for the largest batch's shares, e.g. 6.7e13,4.8e12 (H200 fp32)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    peaks = tuple(float(v) for v in args.peaks.split(",")) if args.peaks else None
    rows, export_rows, roofline = [], [], []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            model_rows, export_row, model_roofline = bench_model(
                name, Path(tmp), batches, args.rounds, args.device, args.threads, peaks
            )
            rows += model_rows
            roofline += model_roofline
            export_rows.append(export_row)
    inference = table(["model", "batch", "variant", "median ms / batch", "samples / s", "vs official-style"], rows)
    export = table(
        [
            "model",
            "weights",
            "params",
            "export s",
            "model.onnx MB",
            "model.pt MB",
            "model.nir MB",
            "parity scores diff",
            "ties",
            "parity set",
        ],
        export_rows,
    )
    achieved = table(
        ["model", "batch", "variant", "dense GFLOP/s", "of peak FLOP/s", "GB/s (lower bound)", "of peak bandwidth"],
        roofline,
    )
    print(inference, achieved, export, sep="\n\n")
    if args.no_write:
        return
    command = " ".join([".venv/bin/python -m bench.inference", *(sys.argv[1:] if argv is None else argv)])
    gpu_note = (
        f"Device for eager/folded/TorchScript: `{args.device}`; ONNX Runtime on the CPU execution provider "
        f"(graph optimisation ORT_ENABLE_ALL, sequential execution); torch and ORT intra-op threads: {args.threads}."
    )
    gpu_note += (
        f" Load average (1 min) {load_before:.1f} before and {os.getloadavg()[0]:.1f} after the run, on a machine "
        "shared with other jobs: single runs are noisy, compare ratios within one model and batch."
    )
    if args.device == "cpu":
        gpu_note += " No GPU was lent to this task: `--device cuda` is there for a GPU run later."
    title = "Inference: official-style eager vs folded vs TorchScript vs ONNX Runtime"
    write_section(
        "inference" + args.key_suffix,
        title + (f" ({args.label})" if args.label else ""),
        f"`{command}`. {gpu_note} Same weights and "
        "Poisson event frames (mean 0.3 per pixel, polarity and bin) for all variants, outputs checked equal "
        "before timing (bf16/fp16 excepted); variants interleaved round by round, medians. The official-style "
        "baseline loops over time steps in BN, LIF and dropout as the official `func.py` does.\n\n"
        + inference
        + "\n\nAt the largest batch, what the PyTorch variants achieve: dense-equivalent FLOP/s (2 per MAC of the "
        "network run densely at every time step, which a GPU executes whatever the spikes) and a lower bound of "
        "memory traffic (frames in plus each weight once; activations not counted)"
        + (f", as shares of the peaks given (`--peaks {args.peaks}`)" if peaks else "; no device peaks given")
        + ".\n\n"
        + achieved,
        args.out,
    )
    write_section(
        "export" + args.key_suffix,
        "Export: time and artifact sizes" + (f" ({args.label})" if args.label else ""),
        "`export_checkpoint(..., formats=(onnx, torchscript, nir), parity_samples=8, force=True)` as run by "
        "`bench.inference`: time includes freezing, the three artifacts, graph checks and the parity run.\n\n" + export,
        args.out,
    )


if __name__ == "__main__":
    main()
