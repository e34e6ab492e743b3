"""BatchNorm folding: an eval-mode BatchNorm after a bias-free conv becomes the conv's weight and bias.

``bn(conv(x)) = gamma * (W*x - mean) / sqrt(var + eps) + beta = (s*W)*x + (beta - s*mean)``
with ``s = gamma / sqrt(var + eps)`` per output channel. Computed in float64, then rounded
once to float32, so the folded conv differs from conv-then-BN only by float rounding.
"""

from __future__ import annotations

import torch
from torch import nn


def fold_batchnorm(weight: torch.Tensor, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``(weight, bias)`` of one conv equal to ``bn(conv(x, weight))`` with BN's running statistics."""
    scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    folded_weight = weight.double() * scale.reshape(-1, *([1] * (weight.dim() - 1)))
    folded_bias = bn.bias.double() - bn.running_mean.double() * scale
    return folded_weight.float().detach(), folded_bias.float().detach()
