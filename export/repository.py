"""Export one checkpoint into a Triton-layout model repository (DESIGN.md section 5).

``<out>/<name>/config.pbtxt`` and ``<out>/<name>/<version>/{model.onnx, model.pt, manifest.json}``.
Artifacts are written to a staging folder and moved into place only after the parity check
passes, so a failed export never leaves a half-written version behind. A checkpoint whose
sha256 (and card's) match the existing manifest is skipped unless ``force``.
"""

from __future__ import annotations

import datetime
import json
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from export.frozen import FrozenSNN, freeze
from export.layer_inventory import layer_inventory
from export.manifest import MANIFEST_NAME, OUTPUT_DTYPES, EnergyDefaults, InputSpec, Manifest, sha256_file
from export.onnx_artifact import onnx_session, run_onnx, write_onnx
from export.parity import check_parity, parity_inputs
from export.torchscript_artifact import load_torchscript, write_torchscript
from export.triton_config import DEFAULT_MAX_BATCH_SIZE, config_pbtxt
from models.architectures import SpikingNet
from models.checkpoint import CARD_SUFFIX, ModelCard, load_checkpoint

FORMATS = {"onnx": "model.onnx", "torchscript": "model.pt", "nir": "model.nir"}
CONFIG_NAME = "config.pbtxt"
DEFAULT_PARITY_SAMPLES = 32


@dataclass
class ExportResult:
    """What one export did: the manifest, where it lives, whether it was skipped, how long it took."""

    manifest: Manifest
    directory: Path
    skipped: bool
    seconds: float
    parameters: int
    sizes: dict[str, int]


def model_name(checkpoint: Path) -> str:
    """A Triton-safe model name from the checkpoint's file name."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", Path(checkpoint).stem).strip("-") or "model"


@dataclass(frozen=True)
class ExportOptions:
    """How to export: the CLI's flags, ``export_checkpoint``'s keyword arguments."""

    name: str | None = None
    version: int = 1
    formats: tuple[str, ...] = ("onnx", "torchscript")
    opset: int = 18
    parity_samples: int = DEFAULT_PARITY_SAMPLES
    force: bool = False
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE


def export_checkpoint(
    checkpoint_path: str | Path,
    out_dir: str | Path,
    name: str | None = None,
    version: int = 1,
    formats: tuple[str, ...] = ("onnx", "torchscript"),
    opset: int = 18,
    parity_samples: int = DEFAULT_PARITY_SAMPLES,
    force: bool = False,
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
) -> Manifest:
    """Export (or skip, if unchanged) one checkpoint; returns its manifest. Raises on parity failure."""
    options = ExportOptions(name, version, tuple(formats), opset, parity_samples, force, max_batch_size)
    return export_one(checkpoint_path, out_dir, options).manifest


def export_one(checkpoint_path: str | Path, out_dir: str | Path, options: ExportOptions) -> ExportResult:
    """``export_checkpoint`` with the facts the CLI's summary table shows."""
    started = time.perf_counter()
    checkpoint = Path(checkpoint_path)
    formats, version = options.formats, options.version
    if set(formats) - set(FORMATS) or not formats:
        raise ValueError(f"formats must be a non-empty subset of {sorted(FORMATS)}, got {list(formats)}")
    name = options.name or model_name(checkpoint)
    model_dir = Path(out_dir) / name
    version_dir = model_dir / str(version)
    card_path = checkpoint.with_suffix(CARD_SUFFIX)
    source_sha = sha256_file(checkpoint)
    card_sha = sha256_file(card_path) if card_path.exists() else ""

    model, card = load_checkpoint(checkpoint)
    parameters = sum(p.numel() for p in model.parameters())
    previous = _up_to_date(version_dir, source_sha, card_sha, formats)
    if previous is not None and not options.force:
        return ExportResult(previous, version_dir, True, time.perf_counter() - started, parameters, _sizes(version_dir))

    frozen = freeze(model)
    inputs = parity_inputs(card, options.parity_samples)
    staging = model_dir / f".{version}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        backends = _write_artifacts(frozen, staging, formats, inputs.frames[:2], options.opset)
        parity = check_parity(model, frozen, backends, inputs)
        manifest = _manifest(name, version, model, card, parity)
        manifest.source, manifest.source_sha256, manifest.source_card_sha256 = checkpoint.name, source_sha, card_sha
        manifest.files = {FORMATS[f]: sha256_file(staging / FORMATS[f]) for f in formats}
        manifest.write(staging)
        _replace(staging, version_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if "onnx" in formats:
        (model_dir / CONFIG_NAME).write_text(config_pbtxt(manifest, options.max_batch_size))
    return ExportResult(manifest, version_dir, False, time.perf_counter() - started, parameters, _sizes(version_dir))


def _up_to_date(version_dir: Path, source_sha: str, card_sha: str, formats: tuple[str, ...]) -> Manifest | None:
    """The existing manifest when it was made from these very bytes and holds every wanted file."""
    path = version_dir / MANIFEST_NAME
    if not path.exists():
        return None
    try:
        manifest = Manifest.read(path)
    except (ValueError, KeyError, TypeError):
        return None
    same_source = manifest.source_sha256 == source_sha and manifest.source_card_sha256 == card_sha
    complete = all((version_dir / FORMATS[f]).exists() for f in formats)
    # an export from before the per-step outputs is redone, not kept
    return manifest if same_source and complete and manifest.has_step_outputs else None


def _write_artifacts(
    frozen: FrozenSNN, directory: Path, formats: tuple[str, ...], example: torch.Tensor, opset: int
) -> dict:
    """Write each format; returns what parity runs: the folded module, then TorchScript and ONNX Runtime."""
    backends = {"folded": frozen}
    if "torchscript" in formats:
        path = write_torchscript(frozen, directory / FORMATS["torchscript"], example)
        backends["torchscript"] = load_torchscript(path)
    if "onnx" in formats:
        path = write_onnx(frozen, directory / FORMATS["onnx"], example, opset)
        session = onnx_session(path)
        backends["onnxruntime"] = lambda frames: run_onnx(session, frames.numpy())
    if "nir" in formats:
        from export.nir_artifact import write_nir  # the nir package is optional (requirements/dev.txt)

        write_nir(frozen, directory / FORMATS["nir"], tuple(example.shape[2:]))
    return backends


def _manifest(name: str, version: int, model: SpikingNet, card: ModelCard, parity: dict) -> Manifest:
    arch = card.arch
    lif, synaptic = layer_inventory(arch, model.specs, binary_first_input=card.input_encoding == "rate-coded")
    metrics = dict(card.metrics)
    return Manifest(
        name=name,
        version=version,
        classes=list(card.classes),
        time_steps=arch.time_steps,
        input=InputSpec(
            width=arch.width,
            height=arch.height,
            sensor_width=int(card.sensor_size[0]),
            sensor_height=int(card.sensor_size[1]),
            split_by=card.split_by,
            layout="B,T,C,H,W",
            channels=arch.in_channels,
            encoding=card.input_encoding,
            window_us=card.window_us,
            window_events=card.window_events,
            denoise_us=card.denoise_us,
            hot_pixels=card.hot_pixels,
        ),
        lif_layers=lif,
        synaptic_layers=synaptic,
        energy=EnergyDefaults(),
        training=_json_plain(
            {
                "dataset": card.dataset,
                "mode": card.learning_mode,
                "accuracy": metrics.get("accuracy", metrics.get("test_accuracy")),
                "time_steps": arch.time_steps,
                "metrics": metrics,
                "arch": arch.to_dict(),
                **{k: v for k, v in card.training.items() if k not in ("dataset", "mode", "time_steps")},
            }
        ),
        parity=parity,
        outputs=dict(OUTPUT_DTYPES),
        exported_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    )


def _json_plain(data: dict) -> dict:
    """``data`` as it reads back from JSON (tuples become lists), so a manifest equals its re-read self."""
    return json.loads(json.dumps(data))


def _replace(staging: Path, version_dir: Path) -> None:
    """Move the finished staging folder into place, dropping any previous export of this version."""
    old = version_dir.with_name(f".{version_dir.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if version_dir.exists():
        version_dir.rename(old)
    staging.rename(version_dir)
    shutil.rmtree(old, ignore_errors=True)


def _sizes(version_dir: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in sorted(version_dir.iterdir()) if p.is_file()}
