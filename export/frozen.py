"""The frozen, unrolled STL-SNN that both artifacts are made from.

``freeze(model)`` turns a trained ``SpikingNet`` into ``FrozenSNN``: BatchNorm folded into the
conv before it, dropout gone, thresholds stored as constant buffers, the surrogate autograd
Function replaced by a plain ``mem >= thresh``. Conv, linear and pool layers run once on the
flattened ``B*T`` batch; only the LIF recurrence is unrolled over the fixed T, so tracing it
gives a static graph without loops.

One forward pass returns six outputs (DESIGN.md sections 5 and 10): ``scores`` float32
``[B, classes]``, ``spikes`` int64 ``[B, L]``, ``sops`` int64 ``[B, S]`` and, per time step,
``step_scores`` float32 ``[B, T, classes]``, ``step_spikes`` int64 ``[B, T, L]`` and ``step_sops``
int64 ``[B, T]``. The totals are computed from the per-step values in the same pass (``scores``
is the mean of ``step_scores`` over T, ``spikes`` and ``sops`` are integer sums), so they agree
by construction. Counts are int64 so they are exact and identical in every backend: each
partial sum taken in float32 stays below 2**24 (per-time-step spikes of one layer; per-step,
per-position activity of one layer summed over channels) and is exact in any order; the rest
is integer arithmetic.
SOPs of a synaptic layer are ``sum(activity * fan_out)`` with a constant per-position fan-out
map (borders, padding and stride included), so they cost one multiply-add per input position.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from export.fold import fold_batchnorm
from models.architectures import (
    BatchNormSpec,
    ConvSpec,
    DropoutSpec,
    FlattenSpec,
    LIFSpec,
    LinearSpec,
    MaxPoolSpec,
    SpikingNet,
    VoteSpec,
)
from models.sops import fanouts

EXACT_FLOAT_INTEGERS = 2**24  # float32 holds every integer below this exactly


def _step_activity(x: torch.Tensor, time_steps: int) -> torch.Tensor:
    """Input activity of a synaptic layer at each step, summed over channels/features: ``int64 [B, T, ...]``."""
    return x.unflatten(0, (-1, time_steps)).sum(dim=2).to(torch.int64)


class FrozenConv(nn.Module):
    """A conv with BN folded in; its ``sops`` are the input activity weighted by the fan-out map."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, stride: int, padding: int, fanout: torch.Tensor):
        super().__init__()
        self.register_buffer("weight", weight)
        self.register_buffer("bias", bias)
        self.register_buffer("fanout", fanout)
        self.stride = stride
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)

    def step_sops(self, x: torch.Tensor, time_steps: int) -> torch.Tensor:
        """``int64 [B, T]``: synaptic operations this layer performs at each step."""
        return (_step_activity(x, time_steps) * self.fanout).sum(dim=(2, 3))


class FrozenLinear(nn.Module):
    """A bias-free linear layer; every input feeds all ``out_features`` outputs."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.register_buffer("weight", weight)
        self.fanout = int(weight.shape[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight)

    def step_sops(self, x: torch.Tensor, time_steps: int) -> torch.Tensor:
        """``int64 [B, T]``: synaptic operations this layer performs at each step."""
        return _step_activity(x, time_steps) * self.fanout


class FrozenLIF(nn.Module):
    """LIF unrolled over T: ``mem = tau*mem + I[t]``; ``spike = mem >= thresh``; hard reset to 0."""

    def __init__(self, thresh: torch.Tensor, tau: float, time_steps: int):
        super().__init__()
        self.register_buffer("thresh", thresh)
        self.tau = float(tau)
        self.time_steps = int(time_steps)

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        return self.unroll(current)[0]

    def unroll(
        self, current: torch.Tensor, record: bool = False, flip: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Spikes ``[B*T, ...]``; with ``record``, also ``mem - thresh`` before each spike decision ``[B, T, ...]``.

        ``flip`` (bool ``[B, T, ...]``, parity diagnostics only) inverts chosen spike decisions, to
        replay what a backend that rounded a near-threshold membrane the other way computed.
        """
        steps = current.unflatten(0, (-1, self.time_steps))
        spikes, gaps = [], []
        mem = steps[:, 0]
        for t in range(self.time_steps):
            if t > 0:
                mem = mem * self.tau + steps[:, t]
            fired = mem >= self.thresh
            if record:
                gaps.append(mem - self.thresh)
            if flip is not None:
                fired = fired ^ flip[:, t]
            spikes.append(fired.to(current.dtype))
            mem = torch.where(fired, 0.0, mem)
        return torch.stack(spikes, dim=1).flatten(0, 1), torch.stack(gaps, dim=1) if record else None


class MaxPool(nn.Module):
    def __init__(self, kernel: int):
        super().__init__()
        self.kernel = kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(x, self.kernel)


class Flatten(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


@dataclass
class FrozenRun:
    """One instrumented forward pass: the six outputs plus what parity checks look at."""

    scores: torch.Tensor
    spikes: torch.Tensor
    sops: torch.Tensor
    step_scores: torch.Tensor
    step_spikes: torch.Tensor
    step_sops: torch.Tensor
    spike_trains: dict[str, torch.Tensor]  # LIF name -> [B, T, ...] spikes
    gaps: dict[str, torch.Tensor]  # LIF name -> [B, T, ...] mem - thresh before each spike decision

    @property
    def margin(self) -> torch.Tensor:
        """``[B]``: each sample's closest approach of any membrane to its threshold."""
        return torch.stack([g.abs().flatten(1).amin(dim=1) for g in self.gaps.values()], dim=1).amin(dim=1)


class FrozenSNN(nn.Module):
    """``frames float32 [B, T, C, H, W]`` -> ``(scores, spikes, sops, step_scores, step_spikes, step_sops)``."""

    def __init__(self, layers: dict[str, nn.Module], time_steps: int, classes: int, population: int):
        super().__init__()
        self.layers = nn.ModuleDict(layers)
        self.time_steps = int(time_steps)
        self.classes = int(classes)
        self.population = int(population)

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, ...]:
        run = self.run(frames, record=False)
        return run.scores, run.spikes, run.sops, run.step_scores, run.step_spikes, run.step_sops

    def run(self, frames: torch.Tensor, record: bool = True, flips: dict[str, torch.Tensor] | None = None) -> FrozenRun:
        """The forward pass; ``record`` keeps spike trains and membrane gaps, ``flips`` see ``FrozenLIF.unroll``."""
        x = frames.flatten(0, 1)
        spikes, sops, trains, gaps = [], [], {}, {}
        for name, layer in self.layers.items():
            if isinstance(layer, FrozenConv | FrozenLinear):
                sops.append(layer.step_sops(x, self.time_steps))
            if isinstance(layer, FrozenLIF):
                x, gap = layer.unroll(x, record, (flips or {}).get(name))
                per_step = x.unflatten(0, (-1, self.time_steps))
                spikes.append(per_step.flatten(2).sum(dim=2).to(torch.int64))
                if record:
                    trains[name], gaps[name] = per_step, gap
            else:
                x = layer(x)
        votes = x.unflatten(0, (-1, self.time_steps)).unflatten(2, (self.classes, self.population))
        step_scores = votes.mean(dim=3)
        step_spikes = torch.stack(spikes, dim=2)
        layer_sops = torch.stack(sops, dim=2)  # [B, T, S]
        return FrozenRun(
            scores=step_scores.mean(dim=1),
            spikes=step_spikes.sum(dim=1),
            sops=layer_sops.sum(dim=1),
            step_scores=step_scores,
            step_spikes=step_spikes,
            step_sops=layer_sops.sum(dim=2),
            spike_trains=trains,
            gaps=gaps,
        )

    def lif_names(self) -> list[str]:
        return [name for name, layer in self.layers.items() if isinstance(layer, FrozenLIF)]

    def synaptic_names(self) -> list[str]:
        return [name for name, layer in self.layers.items() if isinstance(layer, FrozenConv | FrozenLinear)]


def freeze(model: SpikingNet) -> FrozenSNN:
    """The frozen, folded, unrolled equivalent of ``model`` in eval mode."""
    config = model.config
    specs = model.specs
    fanout = fanouts(config, specs)
    layers: dict[str, nn.Module] = {}
    for i, spec in enumerate(specs):
        match spec:
            case ConvSpec():
                weight = getattr(model, spec.name).weight.detach()
                following = specs[i + 1] if i + 1 < len(specs) else None
                if isinstance(following, BatchNormSpec):
                    weight, bias = fold_batchnorm(weight, getattr(model, following.name))
                else:
                    weight, bias = weight.clone(), torch.zeros(spec.out_channels)
                layers[spec.name] = FrozenConv(weight, bias, spec.stride, spec.padding, fanout[spec.name])
            case LIFSpec():
                lif = getattr(model, spec.name)
                layers[spec.name] = FrozenLIF(lif.thresh.detach().clone(), lif.tau, config.time_steps)
            case MaxPoolSpec():
                layers[spec.name] = MaxPool(spec.kernel)
            case FlattenSpec():
                layers[spec.name] = Flatten()
            case LinearSpec():
                layers[spec.name] = FrozenLinear(getattr(model, spec.name).weight.detach().clone())
            case BatchNormSpec() | DropoutSpec() | VoteSpec():
                pass
    widest = max(math.prod(s.shape) for s in specs if isinstance(s, LIFSpec))
    if widest >= EXACT_FLOAT_INTEGERS:
        raise ValueError(f"a LIF layer of {widest} neurons: per-step spike counts would not be exact in float32")
    return FrozenSNN(layers, config.time_steps, config.classes, config.population).eval()
