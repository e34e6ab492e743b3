"""``model.nir``: the frozen network as a NIR graph, for neuromorphic toolchains (opt-in format).

NIR describes one time step of continuous-time primitives, so the mapping is recorded in the
graph's metadata: the STL-SNN update ``mem = decay*mem + I`` is NIR's LIF integrated by forward
Euler with ``dt = 1`` (``tau = 1/(1 - decay)``, ``r = tau``, ``v_leak = 0``), a neuron fires
when ``v >= v_threshold`` (per-neuron thresholds as arrays) and resets to ``v_reset = 0``.
BatchNorm is folded into the conv weights and bias. Max-pooling of binary spikes is exactly
``SumPool2d`` followed by ``Threshold(0.5)`` (any spike in the window). The vote layer is a
``Linear`` averaging each class's population; the class score is its mean over the T steps.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import nir
import numpy as np

from export.frozen import Flatten, FrozenConv, FrozenLIF, FrozenLinear, FrozenSNN, MaxPool

DT = 1.0


def nir_graph(frozen: FrozenSNN, input_shape: tuple[int, int, int]) -> nir.NIRGraph:
    """The NIR graph of ``frozen`` for per-step input of shape ``(C, H, W)``."""
    shape = tuple(input_shape)
    nodes: dict[str, nir.NIRNode] = {"input": nir.Input(input_type={"input": np.array(shape)})}
    for name, layer in frozen.layers.items():
        match layer:
            case FrozenConv():
                weight = layer.weight.numpy()
                nodes[name] = nir.Conv2d(
                    input_shape=shape[1:],
                    weight=weight,
                    stride=layer.stride,
                    padding=layer.padding,
                    dilation=1,
                    groups=1,
                    bias=layer.bias.numpy(),
                )
                k = weight.shape[-1]
                out = [(n + 2 * layer.padding - k) // layer.stride + 1 for n in shape[1:]]
                shape = (weight.shape[0], *out)
            case FrozenLIF():
                tau = 1.0 / (1.0 - layer.tau)
                thresh = layer.thresh.numpy()
                nodes[name] = nir.LIF(
                    tau=np.full(thresh.shape, tau * DT, dtype=np.float32),
                    r=np.full(thresh.shape, tau, dtype=np.float32),
                    v_leak=np.zeros(thresh.shape, dtype=np.float32),
                    v_threshold=thresh.copy(),
                    v_reset=np.zeros(thresh.shape, dtype=np.float32),
                )
            case MaxPool():
                k = layer.kernel
                nodes[f"{name}_sum"] = nir.SumPool2d(
                    kernel_size=np.array([k, k]), stride=np.array([k, k]), padding=np.array([0, 0])
                )
                shape = (shape[0], shape[1] // k, shape[2] // k)
                nodes[f"{name}_any"] = nir.Threshold(threshold=np.full(shape, 0.5, dtype=np.float32))
            case Flatten():
                nodes[name] = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0)
                shape = (int(np.prod(shape)),)
            case FrozenLinear():
                weight = layer.weight.numpy()
                nodes[name] = nir.Linear(weight=weight)
                shape = (weight.shape[0],)
    vote = np.kron(np.eye(frozen.classes), np.full((1, frozen.population), 1.0 / frozen.population))
    nodes["vote"] = nir.Linear(weight=vote.astype(np.float32))
    nodes["output"] = nir.Output(output_type={"output": np.array([frozen.classes])})
    names = list(nodes)
    metadata = {
        "time_steps": frozen.time_steps,
        "dt": DT,
        "discretisation": "forward Euler, dt = 1: v[t] = (1 - dt/tau) v[t-1] + (dt*r/tau) I[t] = decay*v + I",
        "spike_rule": "spike when v >= v_threshold (equality fires), then v = v_reset = 0",
        "batchnorm": "folded into the conv weight and bias",
        "maxpool": "max-pool of binary spikes = SumPool2d then Threshold(0.5)",
        "readout": "class score = mean over the T steps of the vote node's output",
    }
    return nir.NIRGraph(nodes=nodes, edges=list(pairwise(names)), metadata=metadata)


def write_nir(frozen: FrozenSNN, path: Path, input_shape: tuple[int, int, int]) -> Path:
    nir.write(str(path), nir_graph(frozen, input_shape))
    return path
