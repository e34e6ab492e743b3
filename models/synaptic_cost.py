"""What each synaptic layer of an architecture costs: fan-in, fan-out, dense MACs, input kind.

Read from the architecture's layer specs in graph order, so the rows match the exported ``sops``
output column by column. MACs are what a conventional ANN of the same architecture spends per
pass; fan-out is the nominal one of an interior input position (the exact per-position map is
``models.sops.conv_fanout_map``). Training prices its sparsity penalty with these rows and the
exporter writes them into the manifest, so both see the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.architectures import ArchConfig, ConvSpec, LayerSpec, LinearSpec, MaxPoolSpec


@dataclass(frozen=True)
class SynapticCost:
    """One conv or linear layer: fan-in/out per neuron, dense MACs per pass, whether its input is spikes."""

    name: str
    kind: str  # "conv" | "linear"
    fan_in: int
    fan_out: int
    macs: int
    binary_input: bool


def synaptic_costs(config: ArchConfig, specs: list[LayerSpec], binary_first_input: bool) -> list[SynapticCost]:
    """One row per conv/linear layer; ``binary_first_input`` is True for rate-coded (spike) input."""
    rows: list[SynapticCost] = []
    height, width = config.height, config.width
    for spec in specs:
        match spec:
            case ConvSpec():
                out_h = (height + 2 * spec.padding - spec.kernel) // spec.stride + 1
                out_w = (width + 2 * spec.padding - spec.kernel) // spec.stride + 1
                window = spec.kernel * spec.kernel
                rows.append(
                    SynapticCost(
                        name=spec.name,
                        kind="conv",
                        fan_in=spec.in_channels * window,
                        fan_out=spec.out_channels * window,
                        macs=spec.out_channels * out_h * out_w * spec.in_channels * window,
                        binary_input=binary_first_input or bool(rows),
                    )
                )
                height, width = out_h, out_w
            case LinearSpec():
                rows.append(
                    SynapticCost(
                        name=spec.name,
                        kind="linear",
                        fan_in=spec.in_features,
                        fan_out=spec.out_features,
                        macs=spec.in_features * spec.out_features,
                        binary_input=binary_first_input or bool(rows),
                    )
                )
            case MaxPoolSpec():
                height, width = height // spec.kernel, width // spec.kernel
    return rows
