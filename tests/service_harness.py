"""What the service tests share: a real model repository, a real server process, real recordings.

``demo_repository`` exports the bundled demo checkpoint with the real exporter (or, before the
demo checkpoint exists, a freshly initialised checkpoint of the demo architecture) once per
test session. Where ``DEMO_EXPORT_CACHE`` names a folder (``tools/mutation.py`` does, since
mutmut runs a test session per mutant and the export is most of each), the export is made once
per checkpoint and exporter code, kept there, and each session gets its own copy of it.
``Server`` runs ``python -m service`` on a free 127.0.0.1 port with ``STLSNN_*``
settings, optionally with PyTorch made unimportable, and stops it with SIGTERM.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEMO_CHECKPOINT = ROOT / "models" / "checkpoints" / "demo.safetensors"
AEDAT4_SAMPLE = ROOT / "tests" / "data" / "davis346_head.aedat4"
WITHOUT_TORCH = "import sys, runpy; sys.modules['torch'] = None; runpy.run_module('service', run_name='__main__')"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def demo_repository(base: Path) -> Path:
    """``base/repo/demo/1/...`` exported by ``export.repository.export_checkpoint`` (skipped when up to date)."""
    from export.repository import export_checkpoint

    checkpoint = DEMO_CHECKPOINT
    if not checkpoint.exists():
        checkpoint = _initialised_demo_checkpoint(base / "checkpoint")
    repo = base / "repo"
    cache = os.environ.get(EXPORT_CACHE_ENV)
    if cache and not repo.exists():
        kept = Path(cache) / _export_key(checkpoint)
        if not kept.exists():
            staging = kept.with_name(f".{kept.name}.partial")
            shutil.rmtree(staging, ignore_errors=True)
            export_checkpoint(checkpoint, staging, name="demo", parity_samples=2)
            staging.rename(kept)
        shutil.copytree(kept, repo)
    export_checkpoint(checkpoint, repo, name="demo", parity_samples=2)  # a copy from the cache is up to date
    return repo


EXPORT_CACHE_ENV = "DEMO_EXPORT_CACHE"


def _export_key(checkpoint: Path) -> str:
    """A name for one export: the checkpoint, its card and the code that exports it, hashed."""
    from models.checkpoint import CARD_SUFFIX

    digest = hashlib.sha256()
    code = sorted([*(ROOT / "export").rglob("*.py"), *(ROOT / "models").rglob("*.py")])
    for path in [checkpoint, checkpoint.with_suffix(CARD_SUFFIX), *code]:
        if path.exists():
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _initialised_demo_checkpoint(folder: Path) -> Path:
    import torch

    from models.architectures import SpikingNet, preset
    from models.checkpoint import ModelCard, save_checkpoint

    path = folder / "demo.safetensors"
    if path.exists():
        return path
    torch.manual_seed(0)
    arch = preset("demo")
    card = ModelCard(arch=arch, classes=[f"class{i}" for i in range(arch.classes)], sensor_size=(128, 128))
    return save_checkpoint(path, SpikingNet(arch), card)


def copy_model(repo: Path, source: str, name: str) -> Path:
    """Copy ``repo/source`` to ``repo/name`` (with the manifest's name updated); returns its version folder."""
    shutil.copytree(repo / source, repo / name, dirs_exist_ok=True)
    version_dir = sorted((repo / name).glob("[0-9]*"))[-1]
    path = version_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["name"] = name
    path.write_text(json.dumps(manifest))
    return version_dir


def legacy_copy(repo: Path, source: str, name: str) -> Path:
    """``repo/name``: ``repo/source`` as exported before the per-step outputs (DESIGN.md section 10).

    The ONNX graph keeps only ``scores``, ``spikes`` and ``sops``, the manifest lists only those and has
    no ``input.window_us``; the TorchScript file is dropped (this copy is for the ONNX backend).
    """
    import hashlib

    import onnx

    version_dir = copy_model(repo, source, name)
    graph_path = version_dir / "model.onnx"
    graph = onnx.load(str(graph_path))
    kept = [output for output in graph.graph.output if not output.name.startswith("step_")]
    del graph.graph.output[:]
    graph.graph.output.extend(kept)
    onnx.save(graph, str(graph_path))
    (version_dir / "model.pt").unlink()
    manifest = json.loads((version_dir / "manifest.json").read_text())
    manifest["outputs"] = {"scores": "float32", "spikes": "int64", "sops": "int64"}
    for key in ("window_us", "window_events", "denoise_us", "hot_pixels"):
        manifest["input"].pop(key)
    manifest["files"] = {"model.onnx": hashlib.sha256(graph_path.read_bytes()).hexdigest()}
    (version_dir / "manifest.json").write_text(json.dumps(manifest))
    return version_dir


def edit_manifest(version_dir: Path, **changes) -> None:
    path = version_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    for dotted, value in changes.items():
        target = manifest
        *parents, key = dotted.split("__")
        for parent in parents:
            target = target[parent]
        target[key] = value
    path.write_text(json.dumps(manifest))


def write_npz(path: Path, n: int, width: int = 128, height: int = 128, duration_us: int = 100_000, seed: int = 0):
    """A synthetic recording (tonic/SpikingJelly ``.npz`` layout) with ``n`` events."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, duration_us, n)).astype(np.int64)
    np.savez_compressed(
        path,
        t=t,
        x=rng.integers(0, width, n).astype(np.uint16),
        y=rng.integers(0, height, n).astype(np.uint16),
        p=rng.integers(0, 2, n).astype(np.uint8),
    )
    return path


class Server:
    """``python -m service`` as a child process on a free port; ``stop`` sends SIGTERM."""

    def __init__(self, repository: Path, log_path: Path, without_torch: bool = False, **settings):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = {k: v for k, v in os.environ.items() if not k.startswith("STLSNN_")}
        env |= {"STLSNN_MODEL_REPOSITORY": str(repository), "STLSNN_PORT": str(self.port), "STLSNN_HOST": "127.0.0.1"}
        env["STLSNN_WORKERS"] = "1"  # one process: per-process queues and limits are what the tests pin
        env |= {f"STLSNN_{key.upper()}": str(value) for key, value in settings.items()}
        command = [sys.executable, "-c", WITHOUT_TORCH] if without_torch else [sys.executable, "-m", "service"]
        with log_path.open("w") as sink:
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=sink, stderr=sink)

    def wait_ready(self, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()[-3000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server not ready after {timeout_s} s:\n{self.log()[-3000:]}")

    def stop(self, timeout_s: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text()

    def log_lines(self) -> list[dict]:
        return [json.loads(line) for line in self.log().splitlines() if line.startswith("{")]

    def wait_for_log(self, matches: Callable[[dict], bool], timeout_s: float = 10) -> list[dict]:
        """The JSON log lines that match, once there is one: the server logs a request after its
        last byte is sent, so a client can hold the response before the line is written."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = [line for line in self.log_lines() if matches(line)]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)


def metric(text: str, name: str, **labels) -> float:
    """The value of one sample in Prometheus text output (0 when absent)."""
    want = {f'{k}="{v}"' for k, v in labels.items()}
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        metric_name, _, label_text = head.partition("{")
        if metric_name == name and want <= set(label_text.rstrip("}").split(",")) - {""}:
            return float(value)
    return 0.0
