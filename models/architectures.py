"""STL-SNN architectures as typed layer lists, built into one ``SpikingNet`` module.

An architecture is a flat list of small layer specs (in the spirit of NIR): the model, the
exporter and the energy accounting all walk the same list. Module names follow the official
``MNIST`` class (``conv1``, ``bn1``, ``lif1``, ``pool1``, ..., ``fc2``, ``lif4``, ``boost``), so
a state_dict saved by the official code loads unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import torch
from torch import nn

from models import layers
from models.neuron import LIF


@dataclass(frozen=True)
class ConvSpec:
    name: str
    in_channels: int
    out_channels: int
    kernel: int
    stride: int = 1
    padding: int = 0


@dataclass(frozen=True)
class BatchNormSpec:
    name: str
    channels: int


@dataclass(frozen=True)
class LIFSpec:
    name: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class MaxPoolSpec:
    name: str
    kernel: int


@dataclass(frozen=True)
class FlattenSpec:
    name: str


@dataclass(frozen=True)
class DropoutSpec:
    name: str
    p: float


@dataclass(frozen=True)
class LinearSpec:
    name: str
    in_features: int
    out_features: int


@dataclass(frozen=True)
class VoteSpec:
    name: str
    population: int


LayerSpec = ConvSpec | BatchNormSpec | LIFSpec | MaxPoolSpec | FlattenSpec | DropoutSpec | LinearSpec | VoteSpec


@dataclass(frozen=True)
class ArchConfig:
    """Everything needed to rebuild a network. ``family`` is ``"mnist"`` (official) or ``"event"``."""

    family: str = "event"
    in_channels: int = 2
    height: int = 32
    width: int = 32
    channels: tuple[int, ...] = (16, 32)
    kernel_size: int = 3
    stem_stride: int = 1  # stride of the first conv: 2 reads a finer input for a quarter of the fan-out per event
    fc: tuple[int, ...] = (128,)
    classes: int = 10
    population: int = 10
    time_steps: int = 8
    tau: float = 0.5
    thresh_init: float = 2.0
    heterogeneity: float = 0.01
    dropout: float = 0.5

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ArchConfig:
        data = dict(data)
        for key in ("channels", "fc"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)


PRESETS: dict[str, ArchConfig] = {
    "mnist": ArchConfig(
        family="mnist",
        in_channels=1,
        height=28,
        width=28,
        channels=(128, 128),
        kernel_size=5,
        fc=(2048,),
        classes=10,
        population=10,
        time_steps=4,
    ),
    "dvsgesture": ArchConfig(
        height=64, width=64, channels=(64, 128, 128, 128), fc=(512,), classes=11, population=10, time_steps=8
    ),
    "cifar10dvs": ArchConfig(
        height=64, width=64, channels=(64, 128, 128, 128), fc=(512,), classes=10, population=10, time_steps=10
    ),
    "nmnist": ArchConfig(height=34, width=34, channels=(32, 64), fc=(256,), classes=10, population=10, time_steps=8),
    # Small enough to train on 2 CPU cores in minutes; a lower initial threshold so the narrow
    # fc layers fire from the first batch (at 2.0 they start silent).
    "demo": ArchConfig(
        height=32, width=32, channels=(8, 16), fc=(128,), classes=10, population=5, time_steps=8, thresh_init=0.5
    ),
}


def preset(name: str, **overrides) -> ArchConfig:
    """A named preset with any field overridden (channels, input size, T, P, classes...)."""
    if name not in PRESETS:
        raise KeyError(f"unknown architecture {name!r}; presets: {', '.join(PRESETS)}")
    return replace(PRESETS[name], **{k: v for k, v in overrides.items() if v is not None})


def layer_specs(config: ArchConfig) -> list[LayerSpec]:
    """The ordered layer list of a config: conv-BN-LIF-pool blocks, then dropout-fc-LIF, then voting."""
    specs: list[LayerSpec] = []
    c, h, w = config.in_channels, config.height, config.width
    pad = config.kernel_size // 2
    n = 0
    for n, out in enumerate(config.channels, start=1):
        stride = config.stem_stride if n == 1 else 1
        h, w = ((size + 2 * pad - config.kernel_size) // stride + 1 for size in (h, w))
        specs += [
            ConvSpec(f"conv{n}", c, out, config.kernel_size, stride, pad),
            BatchNormSpec(f"bn{n}", out),
            LIFSpec(f"lif{n}", (out, h, w)),
            MaxPoolSpec(f"pool{n}", 2),
        ]
        c, h, w = out, h // 2, w // 2
    specs.append(FlattenSpec("flatten"))
    features = c * h * w
    widths = [*config.fc, config.classes * config.population]
    for j, width in enumerate(widths, start=1):
        specs += [
            DropoutSpec(f"drop{j}", config.dropout),
            LinearSpec(f"fc{j}", features, width),
            LIFSpec(f"lif{n + j}", (width,)),
        ]
        features = width
    specs.append(VoteSpec("boost", config.population))
    return specs


def _module(spec: LayerSpec, config: ArchConfig) -> nn.Module:
    match spec:
        case ConvSpec():
            return layers.Conv2d(spec.in_channels, spec.out_channels, spec.kernel, spec.stride, spec.padding)
        case BatchNormSpec():
            return layers.BatchNorm2d(spec.channels)
        case LIFSpec():
            return LIF(spec.shape, config.tau, config.thresh_init, config.heterogeneity)
        case MaxPoolSpec():
            return layers.MaxPool2d(spec.kernel)
        case FlattenSpec():
            return layers.Flatten()
        case DropoutSpec():
            return layers.Dropout(spec.p)
        case LinearSpec():
            return layers.Linear(spec.in_features, spec.out_features)
        case VoteSpec():
            return layers.Vote(spec.population)
    raise TypeError(f"unknown layer spec {spec!r}")


class SpikingNet(nn.Module):
    """An STL-SNN: input ``float32 [B, T, C, H, W]`` -> firing rate per class ``[B, classes]``."""

    def __init__(self, config: ArchConfig):
        super().__init__()
        self.config = config
        self.specs: list[LayerSpec] = layer_specs(config)
        for spec in self.specs:
            self.add_module(spec.name, _module(spec, config))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for spec in self.specs:
            x = getattr(self, spec.name)(x)
        return x

    def lif_layers(self) -> dict[str, LIF]:
        return {s.name: getattr(self, s.name) for s in self.specs if isinstance(s, LIFSpec)}


def build_model(config: ArchConfig | str) -> SpikingNet:
    return SpikingNet(preset(config) if isinstance(config, str) else config)


def rate_code(images: torch.Tensor, time_steps: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Bernoulli rate coding of ``[B, C, H, W]`` intensities in [0, 1] into ``[B, T, C, H, W]`` spikes.

    The official MNIST input: each step fires where ``pixel >= U(0, 1)``.
    """
    repeated = images.unsqueeze(1).expand(-1, time_steps, *images.shape[1:])
    noise = torch.rand(repeated.shape, generator=generator, device=images.device)
    return (repeated >= noise).float()


@dataclass(frozen=True)
class LearningMode:
    """Which parameters learn: STL both, SL weights only, TL thresholds only."""

    name: str
    weights: bool
    thresholds: bool
    description: str = field(default="", compare=False)


LEARNING_MODES = {
    "stl": LearningMode("stl", True, True, "synapse-threshold synergistic learning"),
    "sl": LearningMode("sl", True, False, "synaptic learning, thresholds fixed"),
    "tl": LearningMode("tl", False, True, "threshold learning, weights (and BN affine) fixed at init"),
}


def apply_learning_mode(model: nn.Module, mode: str) -> list[nn.Parameter]:
    """Set ``requires_grad`` per the mode and return the parameters that learn."""
    chosen = LEARNING_MODES[mode]
    trainable = []
    for name, param in model.named_parameters():
        learn = chosen.thresholds if name.endswith("thresh") else chosen.weights
        param.requires_grad_(learn)
        if learn:
            trainable.append(param)
    return trainable
