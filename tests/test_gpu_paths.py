"""The serving paths a GPU takes, run on every device there is: the CPU always, CUDA when present.

Cases on ``cuda`` carry the ``gpu`` marker (``pytest -m gpu`` runs only them) and are skipped
with a reason where ``torch.cuda.is_available()`` is False. The reference for every device is
ONNX Runtime on the CPU (an independent runtime): spikes and SOPs equal, scores within 1e-4.
The CUDA-graph bucketing, pinned copies and I/O binding are checked against plain runs.
"""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import torch
from service_harness import ROOT, Server, demo_repository

from export.manifest import Manifest
from service.backends import BackendOptions, create_backend
from service.backends.batch_buckets import bucket_for, buckets_up_to
from service.backends.onnx_backend import OnnxBackend
from service.backends.torchscript_backend import BucketedRunner
from service.batcher import DynamicBatcher
from service.ingest import IngestLimits, prepare

NO_CUDA = "no CUDA device here (torch.cuda.is_available() is False): the GPU case runs on a GPU machine"
DEVICES = [
    "cpu",
    pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)]),
]
EXAMPLES = sorted(  # the single gestures: the long recording and its truth are timeline material
    p
    for p in (ROOT / "examples").iterdir()
    if p.suffix not in {".py", ".md", ".txt", ".json"} and not p.name.startswith("long_sequence.")
)
SCORE_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def version_dir(tmp_path_factory) -> Path:
    return demo_repository(tmp_path_factory.mktemp("gpu-paths")) / "demo" / "1"


@pytest.fixture(scope="module")
def manifest(version_dir) -> Manifest:
    return Manifest.read(version_dir)


def example_frames(manifest: Manifest) -> np.ndarray:
    """The bundled example recordings, decoded and framed as the server frames them."""
    limits = IngestLimits(max_events=20_000_000, max_duration_us=600_000_000, max_decompressed_bytes=1 << 30)
    framed = []
    for path in EXAMPLES:
        with path.open("rb") as stream:
            framed.append(prepare(stream, path.name, None, None, manifest, limits).frames)
    return np.stack(framed).astype(np.float32)


def random_frames(manifest: Manifest, batch: int, seed: int = 0) -> np.ndarray:
    inp = manifest.input
    shape = (batch, manifest.time_steps, inp.channels, inp.height, inp.width)
    return np.random.default_rng(seed).poisson(0.3, shape).astype(np.float32)


def test_buckets_are_powers_of_two_then_the_largest_batch():
    assert buckets_up_to(32) == (1, 2, 4, 8, 16, 32)
    assert buckets_up_to(24) == (1, 2, 4, 8, 16, 24)
    assert buckets_up_to(1) == (1,)
    assert [bucket_for(n, (1, 2, 4, 8)) for n in (1, 2, 3, 5, 8)] == [1, 2, 4, 8, 8]
    with pytest.raises(ValueError, match="exceeds the largest bucket"):
        bucket_for(9, (1, 2, 4, 8))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("inputs", ["examples", "random"])
def test_torchscript_on_the_device_matches_onnx_runtime_on_the_cpu(version_dir, manifest, device, inputs):
    frames = example_frames(manifest) if inputs == "examples" else random_frames(manifest, 16)
    reference = OnnxBackend(version_dir / "model.onnx", "cpu").run(frames)
    backend = create_backend("torchscript", version_dir, device)
    assert backend.device == device
    got = backend.run(frames)
    np.testing.assert_array_equal(got.spikes, reference.spikes)
    np.testing.assert_array_equal(got.sops, reference.sops)
    np.testing.assert_allclose(got.scores, reference.scores, rtol=0, atol=SCORE_TOLERANCE)
    assert reference.spikes.sum() > 0  # the comparison is not between two silent networks


@pytest.mark.parametrize("device", DEVICES)
def test_bucketed_runs_pad_to_the_bucket_and_return_only_the_batch_rows(version_dir, manifest, device):
    """Batches of every size, the larger first so a bucket's padding rows held earlier samples."""
    module = torch.jit.load(str(version_dir / "model.pt"), map_location=device).eval()
    sample_shape = random_frames(manifest, 1).shape[1:]
    runner = BucketedRunner(module, sample_shape, 8, device, capture=device == "cuda")
    assert sorted(runner.slots) == [1, 2, 4, 8]
    for size, seed in [(8, 1), (7, 2), (5, 3), (3, 4), (6, 5), (1, 6), (2, 7)]:
        frames = torch.from_numpy(random_frames(manifest, size, seed)).to(device)
        with torch.inference_mode():
            expected = [t.cpu() for t in module(frames)]
            got = [t.cpu() for t in runner.run(frames)]
        names = ("scores", "spikes", "sops", "step_scores", "step_spikes", "step_sops")
        for name, e, g in zip(names, expected, got, strict=True):
            assert g.shape[0] == size, name
            torch.testing.assert_close(g, e, rtol=0, atol=1e-6 if "scores" in name else 0, msg=name)


@pytest.mark.parametrize("device", DEVICES)
def test_cuda_graph_setting_leaves_results_unchanged(version_dir, manifest, device):
    frames = random_frames(manifest, 5, seed=9)
    plain = create_backend("torchscript", version_dir, device).run(frames)
    graphs = create_backend("torchscript", version_dir, device, BackendOptions(max_batch_size=8, cuda_graphs=True))
    assert graphs.cuda_graphs == (device == "cuda")  # only active on CUDA
    for batch in (frames, frames[:3], frames[:1]):
        got = graphs.run(batch)
        np.testing.assert_array_equal(got.spikes, plain.spikes[: len(batch)])
        np.testing.assert_array_equal(got.sops, plain.sops[: len(batch)])
        np.testing.assert_allclose(got.scores, plain.scores[: len(batch)], rtol=0, atol=1e-6)


ORT_DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[
            pytest.mark.gpu,
            pytest.mark.skipif(
                "CUDAExecutionProvider" not in ort.get_available_providers(),
                reason="onnxruntime offers no CUDA execution provider here (onnxruntime-gpu not installed)",
            ),
        ],
    ),
]


@pytest.mark.parametrize("device", ORT_DEVICES)
def test_onnx_io_binding_gives_the_plain_run_outputs(version_dir, manifest, device):
    frames = random_frames(manifest, 5, seed=3)
    plain = OnnxBackend(version_dir / "model.onnx", "cpu").run(frames)
    bound_backend = create_backend("onnx", version_dir, device, BackendOptions(io_binding=True))
    assert bound_backend.device == device
    for batch in (frames, frames[:2]):
        bound = bound_backend.run(batch)
        np.testing.assert_array_equal(bound.spikes, plain.spikes[: len(batch)])
        np.testing.assert_array_equal(bound.sops, plain.sops[: len(batch)])
        tolerance = 0 if device == "cpu" else SCORE_TOLERANCE
        np.testing.assert_allclose(bound.scores, plain.scores[: len(batch)], rtol=0, atol=tolerance)
        for name in ("scores", "spikes", "sops"):
            assert getattr(bound, name).dtype == getattr(plain, name).dtype


@pytest.mark.parametrize("device", DEVICES)
def test_the_batcher_keeps_each_callers_result_under_concurrency(version_dir, manifest, device):
    frames = random_frames(manifest, 48, seed=11)
    backend = create_backend("torchscript", version_dir, device)
    alone = [backend.run(frames[i : i + 1]) for i in range(len(frames))]
    batch_sizes = []
    batcher = DynamicBatcher(
        "demo", backend.run, max_batch_size=16, max_delay_s=0.05, on_batch=lambda size, _s: batch_sizes.append(size)
    )
    results: dict[int, object] = {}

    def caller(start: int) -> None:
        futures = {i: batcher.submit(frames[i]) for i in range(start, len(frames), 8)}
        results.update({i: future.result(60) for i, future in futures.items()})

    batcher.expect(len(frames))
    threads = [threading.Thread(target=caller, args=(start,)) for start in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    batcher.close(10)
    assert sorted(results) == list(range(len(frames)))
    assert max(batch_sizes) > 1  # the samples did share passes
    for i, result in results.items():
        np.testing.assert_array_equal(result.spikes, alone[i].spikes[0])
        np.testing.assert_array_equal(result.sops, alone[i].sops[0])
        np.testing.assert_allclose(result.scores, alone[i].scores[0], rtol=0, atol=SCORE_TOLERANCE)


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
def test_the_server_classifies_on_the_device_and_reports_measured_gpu_energy(tmp_path, version_dir, device):
    repo = version_dir.parent.parent
    server = Server(repo, tmp_path / "server.log", backend="torchscript", device=device)
    try:
        server.wait_ready()
        models = httpx.get(server.url + "/v1/models", timeout=10).json()
        demo = next(m for m in models["models"] if m["name"] == "demo")
        assert (demo["backend"], demo["device"]) == ("torchscript", device)
        with EXAMPLES[0].open("rb") as stream:
            response = httpx.post(server.url + "/v1/classify", files={"file": (EXAMPLES[0].name, stream)}, timeout=60)
    finally:
        server.stop()
    assert response.status_code == 200, response.text
    energy = response.json()["energy"]
    if device == "cuda":
        assert energy["measured_gpu_j"] is not None and energy["measured_gpu_j"] >= 0, energy
    else:
        assert energy["measured_gpu_j"] is None
        assert energy["measured_gpu"].startswith("unavailable")
