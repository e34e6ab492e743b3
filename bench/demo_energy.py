"""The bundled demo through the service: accuracy, SNN/ANN energy and inference time, before and after.

``python -m bench.demo_energy --before d9726c0 --recordings 1000 --write`` exports the demo checkpoint
of commit ``--before`` (as ``demo-before``) and the current one (``demo``) into one repository,
serves it with ``python -m service`` and its defaults, and sends each of ``--recordings`` fresh
simulator recordings (``--seed`` 1: training used seed 0), written as EVT 3.0, to both models'
classify endpoints. Reported from the responses: accuracy, the median of ``snn_pj / ann_pj`` (the
inverse of the response's ``ratio``) and each layer's median share of the SNN estimate. Then the
CPU inference time per sample of both ONNX models (what the service runs by default), batch 1, one
thread, alternated on the same framed recordings. Writes BENCHMARKS.md (key ``demo-energy``).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

from bench.report import table, write_section
from events import frame_events
from events.evt3 import write_evt3
from export.manifest import Manifest
from models.datasets.synthetic import GESTURES, SENSOR_SIZE, generate_recording, split_seed
from service.ingest import framing_spec

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("demo-before", "demo")


def export_both(before: str, repository: Path) -> None:
    """``demo-before`` from git at ``before``, ``demo`` from the working tree, into ``repository``."""
    sources = Path(tempfile.mkdtemp())
    for suffix in (".safetensors", ".json"):
        blob = subprocess.run(
            ["git", "show", f"{before}:models/checkpoints/demo{suffix}"], cwd=ROOT, capture_output=True, check=True
        ).stdout
        (sources / f"demo-before{suffix}").write_bytes(blob)
        (sources / f"demo{suffix}").write_bytes((ROOT / "models" / "checkpoints" / f"demo{suffix}").read_bytes())
    subprocess.run([sys.executable, "-m", "export", str(sources), "--out", str(repository)], cwd=ROOT, check=True)


def serve(repository: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "STLSNN_MODEL_REPOSITORY": str(repository), "STLSNN_PORT": str(port), "STLSNN_WORKERS": "1"}
    server = subprocess.Popen([sys.executable, "-m", "service"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.kill()
    raise SystemExit("the server did not become ready in 120 s")


def classify_all(port: int, files: list[bytes]) -> dict[str, list[dict]]:
    """Every recording through both models' classify endpoint (4 at a time)."""
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)

    def one(model: str, data: bytes) -> dict:
        answer = client.post(f"/v1/models/{model}/classify", files={"file": ("rec.raw", data)})
        answer.raise_for_status()
        return answer.json()

    with ThreadPoolExecutor(4) as pool:
        return {model: list(pool.map(lambda data, m=model: one(m, data), files)) for model in MODELS}


def inference_ms(repository: Path, recordings: list[np.ndarray], rounds: int) -> dict[str, float]:
    """Median ms per sample of each model's ONNX graph, batch 1, one thread, models alternated."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    runs = {}
    for model in MODELS:
        manifest = Manifest.read(repository / model / "1" / "manifest.json")
        session = ort.InferenceSession(str(repository / model / "1" / "model.onnx"), options)
        frames = [frame_events(ev, SENSOR_SIZE, framing_spec(manifest))[None].astype(np.float32) for ev in recordings]
        runs[model] = (session, frames)
    times: dict[str, list[float]] = {m: [] for m in MODELS}
    for _ in range(rounds):
        for model, (session, frames) in runs.items():
            tick = time.perf_counter()
            for x in frames:
                session.run(None, {"frames": x})
            times[model].append((time.perf_counter() - tick) / len(frames) * 1e3)
    return {m: statistics.median(t) for m, t in times.items()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.demo_energy", description=__doc__.splitlines()[0])
    p.add_argument("--before", default="d9726c0", help="commit whose demo checkpoint is compared")
    p.add_argument("--recordings", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--rounds", type=int, default=9, help="timing rounds over 50 recordings")
    p.add_argument("--write", action="store_true")
    args = p.parse_args(argv)
    repository = Path(tempfile.mkdtemp()) / "repo"
    export_both(args.before, repository)
    seed = split_seed(args.seed, "test")
    recordings = [generate_recording(i % len(GESTURES), seed, i) for i in range(args.recordings)]
    files = []
    for events in recordings:
        buffer = io.BytesIO()
        write_evt3(buffer, events, SENSOR_SIZE)
        files.append(buffer.getvalue())
    server = serve(repository, args.port)
    try:
        answers = classify_all(args.port, files)
    finally:
        server.terminate()
        server.wait(30)
    timing = inference_ms(repository, recordings[:50], args.rounds)
    rows, breakdown = [], []
    for model in MODELS:
        correct = [a["prediction"]["label"] == GESTURES[i % len(GESTURES)] for i, a in enumerate(answers[model])]
        energy = [a["energy"] for a in answers[model]]
        ratios = [e["snn_pj"] / e["ann_pj"] for e in energy]
        layers = [layer["name"] for layer in energy[0]["layers"]]
        shares = np.array([[layer["pj"] / e["snn_pj"] for layer in e["layers"]] for e in energy])
        rows.append(
            [
                model,
                f"{np.mean(correct):.3f}",
                f"**{np.median(ratios):.3f}**",
                f"{np.percentile(ratios, 10):.3f} - {np.percentile(ratios, 90):.3f}",
                f"{1 / np.median(ratios):.2f}",
                f"{timing[model]:.3f}",
            ]
        )
        breakdown.append(
            [
                model,
                *(f"{s:.1%}" for s in np.median(shares, axis=0)),
                f"{energy[0]['dense_macs']:,}",
                f"{statistics.median(e['sops'] for e in energy):,.0f}",
            ]
        )
    body = (
        f"`python -m bench.demo_energy {' '.join(argv if argv is not None else sys.argv[1:])}`: "
        f"{args.recordings} fresh simulator recordings (seed {args.seed}; training used seed 0), written as EVT 3.0 "
        "and sent to `POST /v1/models/{name}/classify` of one `python -m service` with its defaults (ONNX Runtime, "
        "45nm-fp32 profile, the model's own noise filters). `demo-before` is the demo of commit "
        f"{args.before}. SNN/ANN is `snn_pj / ann_pj` per response (the response's `ratio` is its inverse). "
        f"Inference: each model's ONNX graph on ONNX Runtime, batch 1, one thread, {args.rounds} alternated rounds "
        "over 50 of the recordings, median ms per sample.\n\n"
        + table(
            ["model", "accuracy", "SNN/ANN energy (median)", "p10 - p90", "response `ratio` (median)", "ms/sample"],
            rows,
        )
        + f"\n\nInference time, demo / demo-before: **{timing['demo'] / timing['demo-before']:.2f}x** "
        "(target at most 2x).\n\nEach layer's median share of the SNN estimate:\n\n"
        + table(["model", *layers, "ANN dense MACs", "SOPs (median)"], breakdown)
        + "\n"
    )
    print(body)
    if args.write:
        write_section("demo-energy", "The bundled demo through the service: accuracy and energy", body)


if __name__ == "__main__":
    main()
