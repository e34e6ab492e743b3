"""The manifest's ``layers``: LIF layers (neurons, shape) and synaptic layers (fan-in/out, MACs).

Both in graph order, so names and order match the ``spikes`` and ``sops`` outputs column by
column. The synaptic rows are ``models.synaptic_cost``'s, the ones training prices its sparsity
penalty with.
"""

from __future__ import annotations

import math
from dataclasses import asdict

from export.manifest import LIFLayer, SynapticLayer
from models.architectures import ArchConfig, LayerSpec, LIFSpec
from models.synaptic_cost import synaptic_costs


def layer_inventory(
    config: ArchConfig, specs: list[LayerSpec], binary_first_input: bool
) -> tuple[list[LIFLayer], list[SynapticLayer]]:
    """LIF and synaptic layer records; ``binary_first_input`` is True for rate-coded (spike) input."""
    lif = [
        LIFLayer(name=spec.name, neurons=math.prod(spec.shape), shape=list(spec.shape))
        for spec in specs
        if isinstance(spec, LIFSpec)
    ]
    synaptic = [SynapticLayer(**asdict(row)) for row in synaptic_costs(config, specs, binary_first_input)]
    return lif, synaptic
