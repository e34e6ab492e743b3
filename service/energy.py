"""The response's ``energy`` object (DESIGN.md section 7): SNN synaptic operations vs dense ANN MACs.

The pricing itself is ``models.energy`` (the one implementation training also uses); this module
lays it out per layer for a manifest. ``ratio = ann_pj / snn_pj``: how many times less the SNN
spends (above 1, the SNN is cheaper).
"""

from __future__ import annotations

import numpy as np

from export.manifest import Manifest
from models.energy import PROFILES_DIR, EnergyProfile, ann_pj, charged_as_mac, layer_pj, load_profiles

__all__ = ["PROFILES_DIR", "EnergyProfile", "estimate", "load_profiles"]


def estimate(
    manifest: Manifest, sops: np.ndarray, profile: EnergyProfile, gpu_joules: float | None = None, gpu_note: str = ""
) -> dict:
    """The response's ``energy`` object for one sample's per-layer SOP counts.

    ``gpu_joules`` is the sample's share of its batch's measured GPU energy (None where NVML
    is unavailable, ``gpu_note`` then says why).
    """
    layers = []
    snn_total = 0.0
    for layer, count in zip(manifest.synaptic_layers, sops.tolist(), strict=True):
        as_mac = charged_as_mac(layer, profile)
        pj = layer_pj(layer, count, manifest.time_steps, profile)
        snn_total += pj
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
    ann_total = ann_pj(manifest.synaptic_layers, profile)
    return {
        "profile": profile.name,
        "e_ac_pj": profile.e_ac_pj,
        "e_mac_pj": profile.e_mac_pj,
        "sops": int(sum(int(c) for c in sops.tolist())),
        "dense_macs": manifest.dense_macs,
        "snn_pj": snn_total,
        "ann_pj": ann_total,
        "ratio": ann_total / snn_total if snn_total > 0 else None,
        "layers": layers,
        "assumptions": list(profile.assumptions),
        "source": profile.source,
        "measured_gpu_j": gpu_joules,
        "measured_gpu": "NVML energy counter, batch total shared per sample" if gpu_joules is not None else gpu_note,
    }
