"""Sparsity penalties for training, and the energy ratio each epoch reports.

``SopEnergy`` prices a batch's synaptic operations with ``models.energy`` (the service's pricing)
and divides by the ANN's energy for the same architecture, so ``--sop-penalty 0.5`` adds half the
estimated SNN/ANN energy ratio to the loss and its gradient reaches every layer whose spikes feed
a synaptic layer. The first layer's SOPs are the input events times their fan-out: a constant
training cannot lower (its price is still in the reported ratio). ``RateTarget`` is the
alternative: squared excess of each LIF layer's firing rate over a target of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from models.architectures import SpikingNet
from models.energy import CostedLayer, EnergyProfile, ann_pj, snn_pj, sop_price_pj
from models.synaptic_cost import synaptic_costs


@dataclass
class SopEnergy:
    """SNN/ANN energy ratio of per-layer SOP counts, in ``models.energy``'s pricing."""

    layers: list[CostedLayer]
    profile: EnergyProfile
    time_steps: int

    @classmethod
    def of(cls, model: SpikingNet, profile: EnergyProfile) -> SopEnergy:
        """The pricing of ``model``'s synaptic layers; its first layer sees event counts, not spikes."""
        return cls(synaptic_costs(model.config, model.specs, False), profile, model.config.time_steps)

    def __post_init__(self) -> None:
        self.ann = ann_pj(self.layers, self.profile)
        self.prices = torch.tensor([sop_price_pj(layer, self.profile) for layer in self.layers]) / self.ann

    def penalty(self, sops: torch.Tensor) -> torch.Tensor:
        """Differentiable mean over the batch of the SOP-priced part of the ratio; ``sops`` is ``[B, S]``."""
        return (sops * self.prices.to(sops.device)).sum(dim=1).mean()

    def ratios(self, sops: np.ndarray) -> np.ndarray:
        """Each sample's SNN/ANN energy ratio, exactly as the service prices it; ``sops`` is ``[N, S]``."""
        return np.array([snn_pj(self.layers, row, self.time_steps, self.profile) / self.ann for row in sops.tolist()])


@dataclass
class RateTarget:
    """``sum_l relu(rate_l - target_l)^2``: penalises only firing above each LIF layer's target rate."""

    targets: torch.Tensor  # [L]

    def penalty(self, rates: torch.Tensor) -> torch.Tensor:
        return (rates - self.targets.to(rates.device)).clamp(min=0).square().sum()
