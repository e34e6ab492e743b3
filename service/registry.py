"""The model registry: find every model in the repository, verify, load and warm it, serve it.

Layout (DESIGN.md section 5): ``<repo>/<name>/<version>/{model.onnx, model.pt, manifest.json}``.
The newest numeric version of each name is served unless ``STLSNN_MODEL_VERSIONS`` pins one.
Every file the manifest lists must match its sha256. A model that fails any step is kept
with its error (shown by ``/v1/models``) and the others serve regardless.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import events
from export.manifest import MANIFEST_NAME, Manifest, sha256_file
from service.backends import ARTIFACTS, Backend, BackendOptions, create_backend
from service.batcher import DynamicBatcher
from service.gpu_energy import GpuEnergyMeter
from service.ingest import warm_up_framing
from service.metrics import Metrics
from service.settings import Settings

log = logging.getLogger("stlsnn.service")

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
_NAME = re.compile(NAME_PATTERN)


class ModelLoadError(Exception):
    """Why a model cannot serve; the message is safe to show to clients (no paths)."""


@dataclass
class ServedModel:
    """One model name: its state (loading, ready, failed) and, once ready, what serves it."""

    name: str
    version: int | None
    state: str = "loading"
    error: str | None = None
    manifest: Manifest | None = None
    backend: Backend | None = None
    batcher: DynamicBatcher | None = None
    load_ms: float | None = None

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    def summary(self) -> dict:
        """Runtime facts for ``/v1/models``."""
        info = {"name": self.name, "version": self.version, "state": self.state, "error": self.error}
        if self.manifest is not None:
            info["classes"] = list(self.manifest.classes)
            info["time_steps"] = self.manifest.time_steps
            info["input_encoding"] = self.manifest.input.encoding
        if self.backend is not None:
            info.update(backend=self.backend.kind, device=self.backend.device, provider=self.backend.provider)
        if self.batcher is not None:
            info.update(max_batch_size=self.batcher.max_batch_size, queue_depth=self.batcher.depth)
        info["load_ms"] = self.load_ms
        return info


class Registry:
    """Every model of one repository; ``load_all`` runs once at startup (in a worker thread)."""

    def __init__(self, settings: Settings, metrics: Metrics, meter: GpuEnergyMeter | None = None):
        self.settings = settings
        self.metrics = metrics
        self.meter = meter
        self.root = Path(settings.model_repository)
        self.models: dict[str, ServedModel] = {}
        self.loaded = threading.Event()
        self.startup_error: str | None = None

    def load_all(self) -> None:
        """Discover, verify, load and warm up every model; never raises."""
        try:
            for name, version_dir in self._discover():
                self._load(name, version_dir)
        except Exception as exc:  # an unreadable repository must not kill the server
            log.exception("model repository unreadable")
            self.startup_error = f"model repository unreadable ({type(exc).__name__})"
        try:
            seconds = events.warm_up_decoders()
            log.info("decoders warmed up", extra={"seconds": round(sum(seconds.values()), 3)})
        except Exception:  # a cold decoder only makes the first upload slower
            log.exception("decoder warm-up failed")
        finally:
            self.loaded.set()
        ready = [m.name for m in self.models.values() if m.ready]
        failed = {m.name: m.error for m in self.models.values() if m.state == "failed"}
        log.info("models loaded", extra={"ready": ready, "failed": failed})

    @property
    def ready(self) -> bool:
        return self.loaded.is_set() and any(m.ready for m in self.snapshot())

    def snapshot(self) -> list[ServedModel]:
        """Every model, sorted by name (a copy: the loader thread may still be adding entries)."""
        return [model for _, model in sorted(dict(self.models).items())]

    def get(self, name: str) -> ServedModel | None:
        return self.models.get(name)

    def default(self) -> ServedModel | None:
        """The configured default model if it serves, else the first one (by name) that does."""
        chosen = self.models.get(self.settings.default_model)
        if chosen is not None and chosen.ready:
            return chosen
        return next((m for m in self.snapshot() if m.ready), chosen)

    def gpu_note(self, model: ServedModel) -> str:
        """Why a model's requests carry no measured GPU energy (when they don't)."""
        if self.meter is None:
            return "unavailable: NVML disabled (STLSNN_NVML=false)"
        if not self.meter.available:
            return f"unavailable: {self.meter.reason}"
        return "unavailable: the model runs on the CPU"

    def close(self, timeout: float | None = None) -> None:
        """Finish queued work on every model (graceful shutdown)."""
        for model in self.models.values():
            if model.batcher is not None:
                model.batcher.close(timeout)

    def _discover(self) -> list[tuple[str, Path]]:
        """(name, version folder) of each model to load; names without a usable version fail here."""
        if not self.root.is_dir():
            raise FileNotFoundError(f"model repository {self.root} is not a directory")
        pins = self.settings.pinned_versions
        found = []
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if not _NAME.match(folder.name):
                log.warning("skipping %r: not a valid model name", folder.name)
                continue
            versions = sorted(int(v.name) for v in folder.iterdir() if v.is_dir() and v.name.isdigit())
            version = pins.get(folder.name, versions[-1] if versions else None)
            if version in versions:
                found.append((folder.name, folder / str(version)))
            else:
                error = "no numeric version folder" if version is None else f"version {version} not found"
                self.models[folder.name] = ServedModel(folder.name, version, "failed", error)
        return found

    def _load(self, name: str, version_dir: Path) -> None:
        model = ServedModel(name, int(version_dir.name))
        self.models[name] = model
        started = time.perf_counter()
        try:
            model.manifest = _read_manifest(version_dir)
            artifact = ARTIFACTS[self.settings.backend]
            verify_files(version_dir, model.manifest, artifact)
            s = self.settings
            options = BackendOptions(s.inference_threads, s.max_batch_size, s.cuda_graphs, s.onnx_io_binding)
            model.backend = create_backend(s.backend, version_dir, s.device, options)
            warm_up(model.backend, model.manifest, self.settings.max_batch_size)
            if model.manifest.input.encoding == "event-frames":
                warm_up_framing(model.manifest)
        except Exception as exc:
            model.state = "failed"
            model.error = self._public(exc)
            self.metrics.model_ready.labels(name).set(0)
            log.error("model %s failed to load: %s", name, exc, exc_info=not isinstance(exc, ModelLoadError))
            return
        model.batcher = self._batcher(model)
        model.load_ms = (time.perf_counter() - started) * 1000
        model.state = "ready"
        self.metrics.model_ready.labels(name).set(1)
        log.info(
            "model ready",
            extra={"model": name, "version": model.version, "provider": model.backend.provider, "ms": model.load_ms},
        )

    def _batcher(self, model: ServedModel) -> DynamicBatcher:
        m, name, s = self.metrics, model.name, self.settings

        def on_batch(size: int, infer_s: float) -> None:
            m.batch_size.labels(name).observe(size)
            m.inference.labels(name).observe(infer_s)

        measured = self.meter is not None and self.meter.available and model.backend.device == "cuda"
        meter = self.meter.read_joules if measured else None
        return DynamicBatcher(
            name,
            model.backend.run,
            max_batch_size=s.max_batch_size,
            max_delay_s=s.max_queue_delay_ms / 1000,
            max_queue=s.max_queue_size,
            on_batch=on_batch,
            on_depth=m.queue_depth.labels(name).set,
            on_drop=m.dropped.labels(name).inc,
            energy_meter=meter,
            adaptive=s.batch_wait == "adaptive",
        )

    def _public(self, exc: Exception) -> str:
        if isinstance(exc, ModelLoadError):
            return str(exc)
        message = str(exc)
        for prefix in {str(self.root.resolve()), str(self.root)}:
            message = message.replace(prefix, "<repository>")
        return f"{type(exc).__name__}: {message}"[:300]


def _read_manifest(version_dir: Path) -> Manifest:
    path = version_dir / MANIFEST_NAME
    if not path.is_file():
        raise ModelLoadError(f"{MANIFEST_NAME} missing")
    try:
        return Manifest.read(path)
    except Exception as exc:
        raise ModelLoadError(f"{MANIFEST_NAME} unreadable ({type(exc).__name__})") from exc


def verify_files(version_dir: Path, manifest: Manifest, artifact: str) -> None:
    """Every file the manifest lists must exist and match its sha256; ``artifact`` must be listed."""
    if artifact not in manifest.files:
        raise ModelLoadError(f"{artifact} is not listed in {MANIFEST_NAME}")
    for file, expected in manifest.files.items():
        path = version_dir / file
        if Path(file).name != file or not path.is_file():
            raise ModelLoadError(f"{file} listed in {MANIFEST_NAME} is missing")
        actual = sha256_file(path)
        if actual != expected:
            raise ModelLoadError(f"{file} sha256 mismatch: manifest {expected[:12]}..., file {actual[:12]}...")


def warm_up(backend: Backend, manifest: Manifest, max_batch_size: int) -> None:
    """Run batches of 1 and ``max_batch_size`` zeros, twice each (TorchScript optimises on its
    first runs, CUDA picks kernels per shape); the outputs must have the manifest's shapes."""
    inp = manifest.input
    for batch in sorted({1, max_batch_size}) * 2:
        frames = np.zeros((batch, manifest.time_steps, inp.channels, inp.height, inp.width), dtype=np.float32)
        out = backend.run(frames)
        expected = {
            "scores": (batch, len(manifest.classes)),
            "spikes": (batch, len(manifest.lif_layers)),
            "sops": (batch, len(manifest.synaptic_layers)),
        }
        for key, shape in expected.items():
            if tuple(getattr(out, key).shape) != shape:
                raise ModelLoadError(f"output {key} has shape {tuple(getattr(out, key).shape)}, manifest says {shape}")
