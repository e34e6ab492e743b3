"""The STL-SNN leaky integrate-and-fire neuron with a learned per-neuron threshold.

Per time step (official ``func.py``): ``mem = tau * mem + I[t]``; ``spike = (mem - thresh >= 0)``;
``mem = (1 - spike) * mem``. ``thresh`` has the neuron tensor's full shape and is a parameter,
so every neuron learns its own threshold; the arctan surrogate shapes only the gradient.
"""

from __future__ import annotations

import math

import torch
from torch import nn

SURROGATE_ALPHA = 2.0


class ArctanSpike(torch.autograd.Function):
    """Heaviside step forward; ``(alpha/2) / (1 + (alpha*pi/2 * x)^2)`` backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        alpha = SURROGATE_ALPHA
        return grad_output * (alpha / 2) / (1 + (alpha * math.pi / 2 * x).square())


def arctan_surrogate_grad(x: torch.Tensor, alpha: float = SURROGATE_ALPHA) -> torch.Tensor:
    """The surrogate derivative itself, for tests and docs."""
    return (alpha / 2) / (1 + (alpha * math.pi / 2 * x).square())


class LIF(nn.Module):
    """LIF layer on ``[B, T, *shape]`` input; returns binary spikes of the same shape.

    ``thresh`` is initialised ``init + heterogeneity * randn / 100`` as in the official code.
    ``spike_rate`` keeps the mean firing rate of the last forward pass for logging.
    """

    def __init__(self, shape: tuple[int, ...], tau: float = 0.5, init: float = 2.0, heterogeneity: float = 0.01):
        super().__init__()
        self.shape = tuple(shape)
        self.tau = float(tau)
        self.thresh = nn.Parameter(init + heterogeneity * torch.randn(self.shape) / 100)
        self.spike_rate = 0.0

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        mem = torch.zeros_like(current[:, 0])
        spikes = []
        for t in range(current.shape[1]):
            mem = mem * self.tau + current[:, t]
            spike = ArctanSpike.apply(mem - self.thresh)
            mem = (1 - spike) * mem
            spikes.append(spike)
        out = torch.stack(spikes, dim=1)
        self.spike_rate = float(out.detach().mean())
        return out

    def extra_repr(self) -> str:
        return f"shape={self.shape}, tau={self.tau}"
