"""The manifest schema: the contract between ``export`` (writes it) and ``service`` (reads it).

Plain dataclasses and the standard library only: the serving image has no PyTorch, so this
module must import none (and nothing else of ``export``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

MANIFEST_NAME = "manifest.json"
SCHEMA_VERSION = 1
# spikes and sops are exact integer counts, int64 in every backend
CLASSIC_OUTPUTS = {"scores": "float32", "spikes": "int64", "sops": "int64"}
# per time step (DESIGN.md section 10); repositories exported before these existed lack them
STEP_OUTPUTS = {"step_scores": "float32", "step_spikes": "int64", "step_sops": "int64"}
OUTPUT_DTYPES = {**CLASSIC_OUTPUTS, **STEP_OUTPUTS}


@dataclass(frozen=True)
class InputSpec:
    """What the graph's ``frames`` input holds and how to make it from events."""

    width: int
    height: int
    sensor_width: int
    sensor_height: int
    split_by: str = "number"
    layout: str = "B,T,C,H,W"
    channels: int = 2
    encoding: str = "event-frames"  # or "rate-coded" (official MNIST: caller supplies spikes)
    window_us: int | None = None  # median duration of a training sample: the default stream window
    window_events: int | None = None  # median events of a training sample: 1 % of it marks an idle window
    denoise_us: int = 0  # background-activity filter window, 0 = off (DESIGN.md section 14)
    hot_pixels: bool = False  # hot-pixel filter; manifests written before the filters have both off


@dataclass(frozen=True)
class LIFLayer:
    name: str
    neurons: int
    shape: list[int]


@dataclass(frozen=True)
class SynapticLayer:
    """A conv or linear layer: fan-in/out per neuron, dense MACs per time step, input kind."""

    name: str
    kind: str  # "conv" | "linear"
    fan_in: int
    fan_out: int
    macs: int
    binary_input: bool


@dataclass(frozen=True)
class EnergyDefaults:
    profile: str = "45nm-fp32"
    e_ac_pj: float = 0.9
    e_mac_pj: float = 4.6


@dataclass
class Manifest:
    name: str
    version: int
    classes: list[str]
    time_steps: int
    input: InputSpec
    lif_layers: list[LIFLayer]
    synaptic_layers: list[SynapticLayer]
    energy: EnergyDefaults = field(default_factory=EnergyDefaults)
    training: dict = field(default_factory=dict)
    parity: dict = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # file name -> sha256
    source_sha256: str = ""
    source: str = ""  # the checkpoint's file name
    source_card_sha256: str = ""  # its .json card, "" when it has none (official state_dict)
    # graph output -> dtype; a manifest without the key predates the per-step outputs
    outputs: dict[str, str] = field(default_factory=lambda: dict(CLASSIC_OUTPUTS))
    exported_at: str = ""
    schema_version: int = SCHEMA_VERSION

    @property
    def has_step_outputs(self) -> bool:
        """Whether the graph also gives ``step_scores``, ``step_spikes`` and ``step_sops``."""
        return all(name in self.outputs for name in STEP_OUTPUTS)

    @property
    def dense_macs(self) -> int:
        """MACs of one pass of the same architecture as a conventional ANN."""
        return sum(layer.macs for layer in self.synaptic_layers)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["layers"] = {"lif": data.pop("lif_layers"), "synaptic": data.pop("synaptic_layers")}
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Manifest:
        data = dict(data)
        layers = data.pop("layers")
        return cls(
            **{k: v for k, v in data.items() if k not in ("input", "energy")},
            input=InputSpec(**data["input"]),
            energy=EnergyDefaults(**data.get("energy", {})),
            lif_layers=[LIFLayer(**layer) for layer in layers["lif"]],
            synaptic_layers=[SynapticLayer(**layer) for layer in layers["synaptic"]],
        )

    def write(self, directory: Path) -> Path:
        path = Path(directory) / MANIFEST_NAME
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def read(cls, path: Path) -> Manifest:
        path = Path(path)
        if path.is_dir():
            path = path / MANIFEST_NAME
        return cls.from_dict(json.loads(path.read_text()))


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()
