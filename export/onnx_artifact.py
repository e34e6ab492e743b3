"""``model.onnx``: the frozen module through the torch.export-based exporter, checked and run.

The graph must be static (no Loop/Scan: the time loop is unrolled), use only the default ONNX
domain (no custom ops, no Python autograd.Function), keep the batch axis dynamic, and pass
``onnx.checker.check_model(full_check=True)``.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from export.frozen import FrozenSNN

INPUT_NAME = "frames"
OUTPUT_NAMES = ("scores", "spikes", "sops", "step_scores", "step_spikes", "step_sops")
FORBIDDEN_OPS = frozenset({"Loop", "Scan", "If", "SequenceMap"})


class OnnxGraphError(RuntimeError):
    """The exported graph breaks one of the rules above."""


def write_onnx(frozen: FrozenSNN, path: Path, example: torch.Tensor, opset: int = 18) -> Path:
    """Export ``frozen`` to ``path`` as one self-contained file and check it."""
    if opset < 18:
        raise ValueError(f"opset {opset} < 18: the torch.export-based exporter needs opset 18 or later")
    batch = torch.export.Dim("batch", min=1, max=4096)
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)  # "no torchvision"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            frozen,
            (example,),
            dynamo=True,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamic_shapes={"frames": {0: batch}},
            optimize=True,
            verbose=False,
        )
    program.save(str(path), external_data=False)
    check_graph(onnx.load(str(path)))
    return path


def check_graph(model: onnx.ModelProto) -> None:
    """Full ONNX check plus the export rules: default domain only, no loops, dynamic batch."""
    onnx.checker.check_model(model, full_check=True)
    graphs = [model.graph, *(f for f in model.functions)]
    for graph in graphs:
        for node in graph.node:
            if node.domain not in ("", "ai.onnx"):
                raise OnnxGraphError(f"node {node.name} ({node.op_type}) is in custom domain {node.domain!r}")
            if node.op_type in FORBIDDEN_OPS:
                raise OnnxGraphError(f"node {node.name} is a {node.op_type}: the graph must be fully unrolled")
    names = [i.name for i in model.graph.input]
    if names != [INPUT_NAME]:
        raise OnnxGraphError(f"graph inputs are {names}, expected [{INPUT_NAME!r}]")
    outputs = tuple(o.name for o in model.graph.output)
    if outputs != OUTPUT_NAMES:
        raise OnnxGraphError(f"graph outputs are {outputs}, expected {OUTPUT_NAMES}")
    batch_dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    if batch_dim.HasField("dim_value"):
        raise OnnxGraphError(f"batch axis is fixed to {batch_dim.dim_value}; it must be dynamic")


def onnx_session(path: Path, threads: int | None = None):
    """A CPU ONNX Runtime session with every graph optimisation on."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_onnx(session, frames: np.ndarray) -> tuple[np.ndarray, ...]:
    """The graph's outputs in ``OUTPUT_NAMES`` order."""
    return tuple(session.run(list(OUTPUT_NAMES), {INPUT_NAME: np.ascontiguousarray(frames, np.float32)}))
