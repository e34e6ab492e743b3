"""Per-request energy estimate (DESIGN.md section 7): SNN synaptic operations vs dense ANN MACs.

``snn_pj = E_AC * sum(SOPs)``, except that a profile with ``nonbinary_input: "mac"`` charges a
layer fed non-binary input as dense MACs at every time step; ``ann_pj = E_MAC * dense MACs``
of one pass; ``ratio = ann_pj / snn_pj`` (how many times less the SNN spends). Profiles are
JSON files in ``energy_profiles/``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export.manifest import Manifest

PROFILES_DIR = Path(__file__).resolve().parent / "energy_profiles"


@dataclass(frozen=True)
class EnergyProfile:
    name: str
    e_ac_pj: float
    e_mac_pj: float
    nonbinary_input: str  # "ac" (per SOP) or "mac" (dense MACs every time step)
    source: str
    assumptions: tuple[str, ...]
    description: str = ""


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


def estimate(
    manifest: Manifest, sops: np.ndarray, profile: EnergyProfile, gpu_joules: float | None = None, gpu_note: str = ""
) -> dict:
    """The response's ``energy`` object for one sample's per-layer SOP counts.

    ``gpu_joules`` is the sample's share of its batch's measured GPU energy (None where NVML
    is unavailable, ``gpu_note`` then says why).
    """
    layers = []
    snn_pj = 0.0
    for layer, count in zip(manifest.synaptic_layers, sops.tolist(), strict=True):
        as_mac = profile.nonbinary_input == "mac" and not layer.binary_input
        pj = profile.e_mac_pj * layer.macs * manifest.time_steps if as_mac else profile.e_ac_pj * count
        snn_pj += pj
        layers.append(
            {
                "name": layer.name,
                "kind": layer.kind,
                "sops": int(count),
                "dense_macs": layer.macs,
                "binary_input": layer.binary_input,
                "charged_as": "mac" if as_mac else "ac",
                "pj": pj,
            }
        )
    ann_pj = profile.e_mac_pj * manifest.dense_macs
    return {
        "profile": profile.name,
        "e_ac_pj": profile.e_ac_pj,
        "e_mac_pj": profile.e_mac_pj,
        "sops": int(sum(int(c) for c in sops.tolist())),
        "dense_macs": manifest.dense_macs,
        "snn_pj": snn_pj,
        "ann_pj": ann_pj,
        "ratio": ann_pj / snn_pj if snn_pj > 0 else None,
        "layers": layers,
        "assumptions": list(profile.assumptions),
        "source": profile.source,
        "measured_gpu_j": gpu_joules,
        "measured_gpu": "NVML energy counter, batch total shared per sample" if gpu_joules is not None else gpu_note,
    }
