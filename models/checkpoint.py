"""Checkpoints: weights as safetensors (no pickle), plus a JSON card to rebuild and run the model.

``demo.safetensors`` sits beside ``demo.json``. The card holds the architecture, the framing
spec, the class labels, the sensor size, the learning mode, the dataset and the metrics reached.
A bare PyTorch ``state_dict`` of the official ``MNIST`` class (``.pt``/``.pth``) loads too, read
with ``weights_only=True``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from events import FramingSpec
from models.architectures import ArchConfig, SpikingNet, preset

CARD_SUFFIX = ".json"
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth")


@dataclass
class ModelCard:
    """What a checkpoint is: enough to rebuild the network and frame its input."""

    arch: ArchConfig
    classes: list[str]
    sensor_size: tuple[int, int]
    split_by: str = "number"
    input_encoding: str = "event-frames"
    learning_mode: str = "stl"
    dataset: str = "synthetic"
    window_us: int | None = None  # median duration of a training recording (the default stream window)
    window_events: int | None = None  # median events of a training recording (sets the idle-window threshold)
    denoise_us: int = 0  # noise filters of the framing spec (DESIGN.md section 14); cards without them: off
    hot_pixels: bool = False
    metrics: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)

    def framing_spec(self) -> FramingSpec:
        """The spec this model's input was framed with in training, so evaluation and export frame alike."""
        arch = self.arch
        return FramingSpec(arch.time_steps, arch.width, arch.height, self.split_by, self.denoise_us, self.hot_pixels)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["arch"] = self.arch.to_dict()
        data["sensor_size"] = list(self.sensor_size)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ModelCard:
        data = dict(data)
        data["arch"] = ArchConfig.from_dict(data["arch"])
        data["sensor_size"] = tuple(data["sensor_size"])
        return cls(**data)


def official_mnist_card() -> ModelCard:
    """The card for a state_dict saved by the official code: rate-coded 28x28 digits."""
    return ModelCard(
        arch=preset("mnist"),
        classes=[str(i) for i in range(10)],
        sensor_size=(28, 28),
        input_encoding="rate-coded",
        dataset="mnist",
        learning_mode="stl",
    )


def save_checkpoint(path: str | Path, model: SpikingNet, card: ModelCard) -> Path:
    """Write ``path`` (.safetensors) and its card (.json); returns the weights path."""
    path = Path(path).with_suffix(".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(path))
    path.with_suffix(CARD_SUFFIX).write_text(json.dumps(card.to_dict(), indent=2) + "\n")
    return path


def load_checkpoint(path: str | Path) -> tuple[SpikingNet, ModelCard]:
    """Rebuild a model in eval mode from a checkpoint (ours, or an official MNIST state_dict)."""
    path = Path(path)
    card_path = path.with_suffix(CARD_SUFFIX)
    if path.suffix == ".safetensors":
        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
    if card_path.exists():
        card = ModelCard.from_dict(json.loads(card_path.read_text()))
    elif "lif1.thresh" in state and tuple(state["lif1.thresh"].shape) == (128, 28, 28):
        card = official_mnist_card()
    else:
        raise ValueError(f"{path}: no model card {card_path.name} beside it and not an official MNIST state_dict")
    model = SpikingNet(card.arch)
    model.load_state_dict(state, strict=True)
    return model.eval(), card
