"""The energy model (DESIGN.md section 7), one implementation for training and serving.

``snn_pj = E_AC * sum(SOPs)``, except that a profile with ``nonbinary_input: "mac"`` charges a
layer fed non-binary input as its dense MACs at every time step; ``ann_pj = E_MAC * dense MACs``
of one pass of the same architecture. Profiles are data (JSON files in ``energy_profiles/``).

Training's sparsity penalty (``models.train``) and the service's per-request ``energy`` object
both price SOPs here, so what training optimises is what the service reports. Torch-free: the
ONNX-only service image imports this module without PyTorch.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

PROFILES_DIR = Path(__file__).resolve().parent / "energy_profiles"
DEFAULT_PROFILE = "45nm-fp32"


@dataclass(frozen=True)
class EnergyProfile:
    name: str
    e_ac_pj: float
    e_mac_pj: float
    nonbinary_input: str  # "ac" (per SOP) or "mac" (dense MACs every time step)
    source: str
    assumptions: tuple[str, ...]
    description: str = ""


class CostedLayer(Protocol):
    """What pricing needs of a synaptic layer (the manifest's ``SynapticLayer`` and ``SynapticCost`` both are)."""

    macs: int
    binary_input: bool


def load_profiles(directory: Path = PROFILES_DIR) -> dict[str, EnergyProfile]:
    """Every ``*.json`` profile in ``directory``, by name."""
    profiles = {}
    for path in sorted(Path(directory).glob("*.json")):
        data = json.loads(path.read_text())
        data["assumptions"] = tuple(data.get("assumptions", ()))
        profile = EnergyProfile(**data)
        if profile.nonbinary_input not in ("ac", "mac"):
            raise ValueError(f"{path.name}: nonbinary_input must be 'ac' or 'mac'")
        profiles[profile.name] = profile
    return profiles


def charged_as_mac(layer: CostedLayer, profile: EnergyProfile) -> bool:
    """True where the profile charges this layer its dense MACs every step instead of per SOP."""
    return profile.nonbinary_input == "mac" and not layer.binary_input


def layer_pj(layer: CostedLayer, sops: float, time_steps: int, profile: EnergyProfile) -> float:
    """Energy of one synaptic layer that performed ``sops`` synaptic operations over ``time_steps``."""
    if charged_as_mac(layer, profile):
        return profile.e_mac_pj * layer.macs * time_steps
    return profile.e_ac_pj * sops


def sop_price_pj(layer: CostedLayer, profile: EnergyProfile) -> float:
    """What one more SOP of this layer costs: E_AC, or 0 where the layer is charged as dense MACs."""
    return 0.0 if charged_as_mac(layer, profile) else profile.e_ac_pj


def snn_pj(layers: Sequence[CostedLayer], sops: Sequence[float], time_steps: int, profile: EnergyProfile) -> float:
    """The SNN's estimate for one sample's per-layer SOP counts."""
    return sum(layer_pj(layer, n, time_steps, profile) for layer, n in zip(layers, sops, strict=True))


def ann_pj(layers: Sequence[CostedLayer], profile: EnergyProfile) -> float:
    """The same architecture run once as a conventional network."""
    return profile.e_mac_pj * sum(layer.macs for layer in layers)
