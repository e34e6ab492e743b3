"""Time-distributed layers: each acts on ``[B, T, ...]`` by folding time into the batch.

Conv, pool and linear layers run once on the flattened ``B*T`` batch (as the official code
does). BatchNorm normalises each time step with its own batch statistics in training, like
the official ``BatchNorm2d``, and is one affine map in eval mode.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _over_time(fn, x: torch.Tensor) -> torch.Tensor:
    b, t = x.shape[:2]
    y = fn(x.flatten(0, 1))
    return y.reshape(b, t, *y.shape[1:])


class Conv2d(nn.Conv2d):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _over_time(super().forward, x)


class Linear(nn.Linear):
    def __init__(self, in_features: int, out_features: int):
        super().__init__(in_features, out_features, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _over_time(super().forward, x)


class BatchNorm2d(nn.BatchNorm2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return _over_time(super().forward, x)
        self.num_batches_tracked += 1
        steps = [
            F.batch_norm(
                x[:, t], self.running_mean, self.running_var, self.weight, self.bias, True, self.momentum, self.eps
            )
            for t in range(x.shape[1])
        ]
        return torch.stack(steps, dim=1)


class MaxPool2d(nn.MaxPool2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _over_time(super().forward, x)


class AvgPool2d(nn.AvgPool2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _over_time(super().forward, x)


class AdaptiveMaxPool2d(nn.AdaptiveMaxPool2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _over_time(super().forward, x)


class Dropout(nn.Dropout):
    """Dropout with an independent mask per element and time step (as the official loop)."""


class Flatten(nn.Module):
    """``[B, T, C, H, W] -> [B, T, C*H*W]``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2)


class Vote(nn.Module):
    """Population voting: average each class's ``P`` output neurons, then the mean over time."""

    def __init__(self, population: int):
        super().__init__()
        self.population = int(population)

    def forward(self, spikes: torch.Tensor) -> torch.Tensor:
        b, t, n = spikes.shape
        return spikes.reshape(b, t, n // self.population, self.population).mean(dim=(1, 3))
