"""``model.pt``: TorchScript of the frozen module, traced (the T loop unrolls) and frozen.

Tracing records the ops of one pass; batch-size-independent ops (``flatten``/``unflatten``
with -1) keep the batch axis dynamic. ``torch.jit.freeze`` inlines the thresholds and folded
weights as graph constants. The graph is checked to hold no Python op (autograd.Function).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from export.frozen import FrozenSNN


class TorchScriptGraphError(RuntimeError):
    """The scripted graph holds something a Python-free runtime cannot run."""


def write_torchscript(frozen: FrozenSNN, path: Path, example: torch.Tensor) -> Path:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated, yet what Triton/C++ load
        traced = torch.jit.trace(frozen.eval(), (example,), check_trace=False)
        scripted = torch.jit.freeze(traced)
    check_graph(scripted)
    scripted.save(str(path))
    return path


def check_graph(module: torch.jit.ScriptModule) -> None:
    kinds = {node.kind() for node in module.graph.nodes()}
    bad = sorted(k for k in kinds if k in ("prim::PythonOp", "prim::Loop"))
    if bad:
        raise TorchScriptGraphError(f"TorchScript graph holds {bad}: it must be a static graph of aten ops")


def load_torchscript(path: Path, device: str = "cpu") -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(str(path), map_location=device).eval()
