"""TorchScript backend: ``torch.jit.load`` on CUDA when available (and allowed), else CPU.

PyTorch is imported here only, when this backend is chosen.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from service.backends import STEP_OUTPUTS, Outputs


class TorchScriptBackend:
    kind = "torchscript"

    def __init__(self, path: Path, device: str = "auto", threads: int = 0):
        import torch

        if device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' requested but torch.cuda.is_available() is False")
        use_cuda = device in ("auto", "cuda") and torch.cuda.is_available()
        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        self.device = "cuda" if use_cuda else "cpu"
        self.provider = f"torch-{torch.__version__}-{self.device}"
        self.module = torch.jit.load(str(path), map_location=self.device).eval()

    def run(self, frames: np.ndarray) -> Outputs:
        torch = self._torch
        with torch.inference_mode():
            out = self.module(torch.from_numpy(np.ascontiguousarray(frames)).to(self.device))
        if isinstance(out, dict):
            out = [out[name] for name in ("scores", "spikes", "sops", *STEP_OUTPUTS) if name in out]
        return Outputs(*(t.detach().cpu().numpy() for t in out))
