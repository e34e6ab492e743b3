"""The manifest's ``layers``: LIF layers (neurons, shape) and synaptic layers (fan-in/out, MACs).

Read from the architecture's layer specs, in graph order, so the names and order match the
``spikes`` and ``sops`` outputs column by column. MACs are what a conventional ANN of the same
architecture spends per time step; fan-out is the nominal one of an interior input position.
"""

from __future__ import annotations

import math

from export.manifest import LIFLayer, SynapticLayer
from models.architectures import ArchConfig, ConvSpec, LayerSpec, LIFSpec, LinearSpec, MaxPoolSpec


def layer_inventory(
    config: ArchConfig, specs: list[LayerSpec], binary_first_input: bool
) -> tuple[list[LIFLayer], list[SynapticLayer]]:
    """LIF and synaptic layer records; ``binary_first_input`` is True for rate-coded (spike) input."""
    lif: list[LIFLayer] = []
    synaptic: list[SynapticLayer] = []
    height, width = config.height, config.width
    for spec in specs:
        match spec:
            case ConvSpec():
                out_h = (height + 2 * spec.padding - spec.kernel) // spec.stride + 1
                out_w = (width + 2 * spec.padding - spec.kernel) // spec.stride + 1
                window = spec.kernel * spec.kernel
                synaptic.append(
                    SynapticLayer(
                        name=spec.name,
                        kind="conv",
                        fan_in=spec.in_channels * window,
                        fan_out=spec.out_channels * window,
                        macs=spec.out_channels * out_h * out_w * spec.in_channels * window,
                        binary_input=binary_first_input or bool(synaptic),
                    )
                )
                height, width = out_h, out_w
            case LinearSpec():
                synaptic.append(
                    SynapticLayer(
                        name=spec.name,
                        kind="linear",
                        fan_in=spec.in_features,
                        fan_out=spec.out_features,
                        macs=spec.in_features * spec.out_features,
                        binary_input=binary_first_input or bool(synaptic),
                    )
                )
            case LIFSpec():
                lif.append(LIFLayer(name=spec.name, neurons=math.prod(spec.shape), shape=list(spec.shape)))
            case MaxPoolSpec():
                height, width = height // spec.kernel, width // spec.kernel
    return lif, synaptic
