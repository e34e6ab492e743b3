"""Synaptic operations (SOPs) as the exported ``sops`` output counts them, differentiably for training.

A synaptic layer's SOPs are ``sum(input activity * fan-out)``, with the exact per-position fan-out
of a conv (borders, padding and stride counted) and ``out_features`` for a linear layer. The
exporter counts the same maps in int64 (``export.frozen``); training counts them in float through
the spikes, so the arctan surrogate carries a sparsity penalty's gradient back to the weights and
thresholds of the layer that fired.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from models.architectures import ArchConfig, ConvSpec, LayerSpec, LIFSpec, LinearSpec, MaxPoolSpec, SpikingNet


def conv_fanout_map(
    in_height: int, in_width: int, out_channels: int, kernel: int, stride: int, padding: int
) -> torch.Tensor:
    """``int64 [H, W]``: how many (output channel, output position) pairs each input position feeds.

    The transposed convolution of an all-ones output with an all-ones kernel spreads each
    output's connections back onto the input positions it reads; zero padding reads nothing.
    """
    out_h = (in_height + 2 * padding - kernel) // stride + 1
    out_w = (in_width + 2 * padding - kernel) // stride + 1
    extra_h = in_height - ((out_h - 1) * stride - 2 * padding + kernel)
    extra_w = in_width - ((out_w - 1) * stride - 2 * padding + kernel)
    ones_out = torch.ones(1, out_channels, out_h, out_w, dtype=torch.float64)
    ones_kernel = torch.ones(out_channels, 1, kernel, kernel, dtype=torch.float64)
    spread = F.conv_transpose2d(
        ones_out, ones_kernel, stride=stride, padding=padding, output_padding=(extra_h, extra_w)
    )
    return spread[0, 0].round().long()


def fanouts(config: ArchConfig, specs: list[LayerSpec]) -> dict[str, torch.Tensor]:
    """Per synaptic layer, in graph order: its fan-out map (``int64 [H, W]`` conv, ``[]`` linear)."""
    maps: dict[str, torch.Tensor] = {}
    height, width = config.height, config.width
    for spec in specs:
        match spec:
            case ConvSpec():
                fanout = conv_fanout_map(height, width, spec.out_channels, spec.kernel, spec.stride, spec.padding)
                maps[spec.name] = fanout
                height = (height + 2 * spec.padding - spec.kernel) // spec.stride + 1
                width = (width + 2 * spec.padding - spec.kernel) // spec.stride + 1
            case LinearSpec():
                maps[spec.name] = torch.tensor(spec.out_features)
            case MaxPoolSpec():
                height, width = height // spec.kernel, width // spec.kernel
    return maps


def layer_sops(x: torch.Tensor, fanout: torch.Tensor) -> torch.Tensor:
    """``[B]``: SOPs of one synaptic layer over all steps, for its input ``x`` ``[B, T, C, H, W]`` or ``[B, T, N]``."""
    if x.dim() == 5:
        return (x.sum(dim=2) * fanout).sum(dim=(1, 2, 3))
    return x.sum(dim=(1, 2)) * fanout


@dataclass
class Activity:
    """One forward pass with what it cost: ``scores [B, classes]``, ``sops [B, S]`` per synaptic layer
    and ``rates [L]``, each LIF layer's firing rate over the batch (all differentiable)."""

    scores: torch.Tensor
    sops: torch.Tensor
    rates: torch.Tensor


class ActivityMeter:
    """Runs a ``SpikingNet`` layer by layer, counting each synaptic layer's SOPs from its input."""

    def __init__(self, model: SpikingNet):
        self.model = model
        self.fanouts = {name: fanout.float() for name, fanout in fanouts(model.config, model.specs).items()}

    def __call__(self, x: torch.Tensor) -> Activity:
        sops, rates = [], []
        for spec in self.model.specs:
            if spec.name in self.fanouts:
                sops.append(layer_sops(x, self.fanouts[spec.name].to(x.device)))
            x = getattr(self.model, spec.name)(x)
            if isinstance(spec, LIFSpec):
                rates.append(x.mean())
        return Activity(x, torch.stack(sops, dim=1), torch.stack(rates))
