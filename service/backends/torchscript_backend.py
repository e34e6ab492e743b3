"""TorchScript backend: ``torch.jit.load`` on CUDA when available (and allowed), else CPU.

On CUDA a batch goes the way GPU servers send it: the frames are copied to the device from
page-locked (pinned) host memory without blocking, the outputs are copied back into
pinned buffers the same way, and the host waits once per batch. With ``cuda_graphs`` the
forward pass replays a CUDA graph captured per batch-size bucket (``BucketedRunner``); it is
off by default and unmeasured on a GPU so far. On the CPU both are skipped: the module runs
on the frames as given. PyTorch is imported here only, when this backend is chosen.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from service.backends import STEP_OUTPUTS, Outputs
from service.backends.batch_buckets import bucket_for, buckets_up_to

GRAPH_WARMUP_RUNS = 3  # TorchScript's profiling executor settles its graph within its first runs


def _as_tuple(out) -> tuple:
    """The graph's outputs in order: the three totals, then the per-step ones where the graph has them."""
    if isinstance(out, dict):
        return tuple(out[name] for name in ("scores", "spikes", "sops", *STEP_OUTPUTS) if name in out)
    return tuple(out)


class _Slot:
    """One bucket's static input and outputs; ``replay`` refills the outputs from the input."""

    def __init__(self, module: Callable, frames: object, capture: bool, pool: object = None):
        import torch

        self.input = frames
        self._module = module
        self._graph = None
        with torch.inference_mode():
            self.outputs = _as_tuple(module(frames))
            if capture:
                stream = torch.cuda.Stream()
                stream.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(stream):
                    for _ in range(GRAPH_WARMUP_RUNS):
                        module(frames)
                torch.cuda.current_stream().wait_stream(stream)
                self._graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(self._graph, pool=pool):
                    self.outputs = _as_tuple(module(frames))

    def replay(self) -> tuple:
        if self._graph is not None:
            self._graph.replay()
        else:
            self.outputs = _as_tuple(self._module(self.input))
        return self.outputs


class BucketedRunner:
    """Runs a batch in its bucket's slot: rows copied in, the rest zeroed, the slot's outputs cut to the batch.

    ``capture`` records a CUDA graph per slot (CUDA only); without it the same padding path runs
    the module eagerly, which is how the CPU tests exercise it. Outputs are views of the slot's
    buffers, valid until the next ``run``.
    """

    def __init__(
        self, module: Callable, sample_shape: tuple[int, ...], max_batch_size: int, device: str, capture: bool
    ):
        import torch

        self.buckets = buckets_up_to(max_batch_size)
        self.slots = {}
        pool = torch.cuda.graph_pool_handle() if capture else None
        for bucket in sorted(self.buckets, reverse=True):  # largest first: smaller graphs reuse its memory
            frames = torch.zeros((bucket, *sample_shape), dtype=torch.float32, device=device)
            self.slots[bucket] = _Slot(module, frames, capture, pool)

    def run(self, frames) -> tuple:
        size = frames.shape[0]
        slot = self.slots[bucket_for(size, self.buckets)]
        slot.input[:size].copy_(frames, non_blocking=True)
        slot.input[size:].zero_()
        return tuple(out[:size] for out in slot.replay())


class TorchScriptBackend:
    kind = "torchscript"

    def __init__(
        self, path: Path, device: str = "auto", threads: int = 0, cuda_graphs: bool = False, max_batch_size: int = 32
    ):
        import torch

        if device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' requested but torch.cuda.is_available() is False")
        use_cuda = device in ("auto", "cuda") and torch.cuda.is_available()
        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        self.device = "cuda" if use_cuda else "cpu"
        self.module = torch.jit.load(str(path), map_location=self.device).eval()
        self.cuda_graphs = cuda_graphs and use_cuda
        self.provider = f"torch-{torch.__version__}-{self.device}" + ("-cudagraphs" if self.cuda_graphs else "")
        self._graphs: BucketedRunner | None = None
        self._max_batch_size = max_batch_size

    def run(self, frames: np.ndarray) -> Outputs:
        torch = self._torch
        host = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32))
        with torch.inference_mode():
            arrays = [t.numpy() for t in _as_tuple(self.module(host))] if self.device == "cpu" else self._run_cuda(host)
        return Outputs(*arrays)

    def _run_cuda(self, host) -> list[np.ndarray]:
        """Pinned host -> device without blocking, forward, outputs -> pinned host, one wait."""
        torch = self._torch
        pinned = host.pin_memory()
        if self.cuda_graphs:
            if self._graphs is None:
                self._graphs = BucketedRunner(self.module, tuple(host.shape[1:]), self._max_batch_size, "cuda", True)
            outputs = self._graphs.run(pinned)
        else:
            outputs = _as_tuple(self.module(pinned.to(self.device, non_blocking=True)))
        back = [torch.empty(out.shape, dtype=out.dtype, pin_memory=True) for out in outputs]
        for target, out in zip(back, outputs, strict=True):
            target.copy_(out, non_blocking=True)
        torch.cuda.current_stream().synchronize()
        return [t.numpy() for t in back]
