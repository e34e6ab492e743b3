"""Inference backends: one forward pass over a batch of frames, on ONNX Runtime or TorchScript.

Both take ``float32 [B, T, C, h, w]`` and return the graph's outputs as NumPy arrays: the three
totals always, the three per-step outputs when the artifact has them (exports from before
DESIGN.md section 10 do not). ``create_backend`` imports the chosen module only, so the ONNX
path never imports PyTorch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

ARTIFACTS = {"onnx": "model.onnx", "torchscript": "model.pt"}


STEP_OUTPUTS = ("step_scores", "step_spikes", "step_sops")


@dataclass
class Outputs:
    """One batch's results: ``scores [B, classes]``, ``spikes [B, L]``, ``sops [B, S]``, and per step
    ``step_scores [B, T, classes]``, ``step_spikes [B, T, L]``, ``step_sops [B, T]`` (None for old exports)."""

    scores: np.ndarray
    spikes: np.ndarray
    sops: np.ndarray
    step_scores: np.ndarray | None = None
    step_spikes: np.ndarray | None = None
    step_sops: np.ndarray | None = None


@dataclass(frozen=True)
class BackendOptions:
    """How a backend runs batches: intra-op threads, and the GPU serving techniques (off by default).

    ``cuda_graphs``: TorchScript on CUDA replays one captured graph per batch-size bucket up to
    ``max_batch_size``. ``io_binding``: ONNX Runtime binds inputs and outputs (``io_binding()``).
    """

    threads: int = 0
    max_batch_size: int = 32
    cuda_graphs: bool = False
    io_binding: bool = False


class Backend(Protocol):
    kind: str
    device: str
    provider: str

    def run(self, frames: np.ndarray) -> Outputs: ...


def create_backend(kind: str, version_dir: Path, device: str, options: BackendOptions | None = None) -> Backend:
    """Load ``version_dir``'s artifact for ``kind`` ("onnx" or "torchscript") on ``device`` (auto|cpu|cuda)."""
    path = Path(version_dir) / ARTIFACTS[kind]
    options = options or BackendOptions()
    if kind == "onnx":
        from service.backends.onnx_backend import OnnxBackend

        return OnnxBackend(path, device, options.threads, options.io_binding)
    from service.backends.torchscript_backend import TorchScriptBackend

    return TorchScriptBackend(path, device, options.threads, options.cuda_graphs, options.max_batch_size)
