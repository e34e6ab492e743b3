"""ONNX Runtime backend: the CUDA execution provider when present (and allowed), else CPU.

With ``io_binding`` the frames are bound as an ``OrtValue`` on the session's device and the
outputs are allocated there by ONNX Runtime, then copied to the host together after the run
(``run_with_iobinding``), instead of ``session.run``'s per-call feeds and fetches. Off by
default: it can only pay on the CUDA provider, and that is unmeasured so far.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from service.backends import STEP_OUTPUTS, Outputs

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


class OnnxBackend:
    """One ``InferenceSession``; ``provider`` is the one the session actually runs on."""

    kind = "onnx"

    def __init__(self, path: Path, device: str = "auto", threads: int = 0, io_binding: bool = False):
        available = ort.get_available_providers()
        if device == "cuda" and CUDA not in available:
            raise RuntimeError(f"device 'cuda' requested but onnxruntime offers only {', '.join(available)}")
        providers = [CUDA, CPU] if device in ("auto", "cuda") and CUDA in available else [CPU]
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        # idle intra-op threads sleep instead of spinning: the cores are shared with decoding and HTTP
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        except Exception:
            if device != "auto" or providers == [CPU]:
                raise
            # onnxruntime-gpu on a machine without a usable GPU: "auto" means CPU then
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=[CPU])
        self.provider = self.session.get_providers()[0]
        if device == "cuda" and self.provider != CUDA:
            raise RuntimeError("device 'cuda' requested but the CUDA execution provider failed to load")
        self.device = "cuda" if self.provider == CUDA else "cpu"
        graph_outputs = {o.name for o in self.session.get_outputs()}
        self.output_names = ["scores", "spikes", "sops", *(n for n in STEP_OUTPUTS if n in graph_outputs)]
        self.io_binding = io_binding

    def run(self, frames: np.ndarray) -> Outputs:
        frames = np.ascontiguousarray(frames, dtype=np.float32)
        arrays = self._run_bound(frames) if self.io_binding else self.session.run(self.output_names, {"frames": frames})
        return Outputs(**dict(zip(self.output_names, arrays, strict=True)))

    def _run_bound(self, frames: np.ndarray) -> list[np.ndarray]:
        binding = self.session.io_binding()
        binding.bind_ortvalue_input("frames", ort.OrtValue.ortvalue_from_numpy(frames, self.device, 0))
        for name in self.output_names:
            binding.bind_output(name, self.device)
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()
