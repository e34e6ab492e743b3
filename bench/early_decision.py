"""Early decision at several margins: accuracy, mean decision step and energy against all T steps.

``python -m bench.early_decision [--recordings 1000] [--seed 1000]`` simulates fresh recordings (a
seed the demo never trained or tested on), frames them with the exported model's spec, runs the
exported ONNX graph once per batch, and applies the service's own rule (``service.early_decision``)
to each sample's ``step_scores`` at each margin. Energy is ``E_AC x SOPs`` (the default profile)
of the steps up to the decision, against all T steps. Writes BENCHMARKS.md (key ``early_decision``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np

import events
from bench.report import table, write_section
from export.manifest import Manifest
from export.onnx_artifact import onnx_session, run_onnx
from export.repository import export_checkpoint
from models.datasets.synthetic import GESTURES, SENSOR_SIZE, generate_recording, split_seed
from service.early_decision import decide, decided_energy_pj
from service.energy import load_profiles

DEMO = Path(__file__).resolve().parent.parent / "models" / "checkpoints" / "demo.safetensors"
MARGINS = (0.1, 0.2, 0.4, 0.6, 0.8, 0.9, 1.0)


def _frames(indices: list[int], seed: int, spec: events.FramingSpec) -> np.ndarray:
    generator_seed = split_seed(seed, "test")
    recordings = (generate_recording(i % len(GESTURES), generator_seed, i) for i in indices)
    return np.stack([events.frame_events(r, SENSOR_SIZE, spec) for r in recordings])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.early_decision", description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1000, help="simulator seed (the demo trained on 0)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        manifest = export_checkpoint(DEMO, Path(tmp), name="demo", formats=("onnx",), parity_samples=2)
        session = onnx_session(Path(tmp) / "demo" / "1" / "model.onnx")
        inp = manifest.input  # the model's own framing, noise filters included, as the service frames
        spec = events.FramingSpec(
            manifest.time_steps, inp.width, inp.height, inp.split_by, inp.denoise_us, inp.hot_pixels
        )
        workers = min(2, os.cpu_count() or 1)
        chunks = [list(range(i, args.recordings, workers * 4)) for i in range(workers * 4)]
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(partial(_frames, seed=args.seed, spec=spec), chunks))
        order = np.concatenate(chunks)
        frames = np.empty((args.recordings, *parts[0].shape[1:]), np.float32)
        frames[order] = np.concatenate(parts)
        outputs = [run_onnx(session, frames[i : i + 64]) for i in range(0, len(frames), 64)]
    scores, step_scores, step_sops = (np.concatenate([o[k] for o in outputs]) for k in (0, 3, 5))
    labels = np.arange(args.recordings) % len(GESTURES)
    body = report(manifest, labels, scores, step_scores, step_sops, args)
    print(body)
    if not args.no_write:
        write_section("early_decision", "Early decision (demo model, fresh recordings)", body)


def report(
    manifest: Manifest,
    labels: np.ndarray,
    scores: np.ndarray,
    step_scores: np.ndarray,
    step_sops: np.ndarray,
    args: argparse.Namespace,
) -> str:
    profile = load_profiles()["45nm-fp32"]
    full_pj = profile.e_ac_pj * step_sops.sum(axis=1)
    full_accuracy = float((scores.argmax(axis=1) == labels).mean())
    rows = [["all T steps", f"{full_accuracy:.4f}", f"{manifest.time_steps:.2f}", "1.000", "1.000", "0.0 %"]]
    for margin in MARGINS:
        decisions = [decide(s, margin) for s in step_scores]
        steps = np.array([d.step for d in decisions])
        correct = np.array([d.index for d in decisions]) == labels
        decided_pj = np.array(
            [decided_energy_pj(manifest, sops, d.step, profile) for sops, d in zip(step_sops, decisions, strict=True)]
        )
        share = decided_pj / full_pj
        unreached = np.mean([not d.reached for d in decisions])
        rows.append(
            [
                f"margin {margin:g}",
                f"{correct.mean():.4f}",
                f"{steps.mean():.2f}",
                f"{np.median(share):.3f}",
                f"{decided_pj.sum() / full_pj.sum():.3f}",
                f"{100 * unreached:.1f} %",
            ]
        )
    header = ["decision", "accuracy", "mean step", "energy / full (median)", "energy / full (total)", "never reached"]
    return (
        f"`python -m bench.early_decision --recordings {args.recordings} --seed {args.seed}`: {args.recordings} fresh "
        f"simulator recordings (seed {args.seed}'s test split; the demo trained on seed 0), labels balanced over the "
        f"{len(GESTURES)} gestures, through the exported ONNX graph; the decision rule is the service's "
        f"(`early_exit`): the first step whose running mean score separates the top two classes by the margin, else "
        f"T = {manifest.time_steps}. Energy is E_AC x SOPs of the steps up to the decision (profile 45nm-fp32), what "
        "hardware that stops there would spend; the served graph still computes all steps.\n\n" + table(header, rows)
    )


if __name__ == "__main__":
    main()
