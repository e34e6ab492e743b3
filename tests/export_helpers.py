"""Small STL-SNNs for the export tests: every layer fires and BatchNorm is far from identity.

A freshly built net barely fires past its first layer and has identity BatchNorm statistics,
which would make folding and parity checks trivially pass; these models do neither.
"""

from __future__ import annotations

from pathlib import Path

import torch

from events import FramingSpec
from models.architectures import SpikingNet, build_model, preset
from models.checkpoint import ModelCard, save_checkpoint

TINY = {"channels": (4, 8), "fc": (32,), "time_steps": 4, "population": 5}


def lively_model(seed: int = 0, **overrides) -> SpikingNet:
    """A demo-family net with random BN statistics, strong fc weights and thresholds in [0.6, 1.0)."""
    torch.manual_seed(seed)
    model = build_model(preset("demo", **{**TINY, **overrides})).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                c = module.num_features
                module.running_mean.copy_(torch.randn(c, generator=generator) * 0.2)
                module.running_var.copy_(torch.rand(c, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(c, generator=generator) + 0.75)
                module.bias.copy_(torch.randn(c, generator=generator) * 0.2 + 0.3)
            elif name.startswith("fc"):
                module.weight.mul_(4)
            elif name.startswith("lif"):
                module.thresh.copy_(0.6 + 0.4 * torch.rand(module.thresh.shape, generator=generator))
    return model


def save_lively(path: Path, seed: int = 0, **overrides) -> Path:
    """A lively model saved as ``<path>.safetensors`` + card (synthetic dataset, 128x128 sensor)."""
    model = lively_model(seed, **overrides)
    card = ModelCard(
        arch=model.config,
        classes=[f"class{i}" for i in range(model.config.classes)],
        sensor_size=(128, 128),
        dataset="synthetic",
        metrics={"accuracy": 0.5},
    )
    return save_checkpoint(path, model, card)


def random_frames(batch: int, model: SpikingNet, seed: int = 0, rate: float = 0.3) -> torch.Tensor:
    """Poisson event counts ``[B, T, 2, h, w]`` (integers, like real framed events)."""
    c = model.config
    shape = (batch, c.time_steps, c.in_channels, c.height, c.width)
    return torch.poisson(torch.full(shape, rate), generator=torch.Generator().manual_seed(seed))


def synthetic_frames(count: int, model: SpikingNet) -> torch.Tensor:
    """Framed recordings of the synthetic test split."""
    from models.datasets import DATASETS

    c = model.config
    spec = FramingSpec(c.time_steps, c.width, c.height)
    dataset = DATASETS["synthetic"](None, "test", spec, size=count, cache_dir=None)
    return torch.stack([dataset.frames(i).float() for i in range(count)])
