"""Early decision (DESIGN.md section 10): the first time step at which the answer is already clear.

After ``k`` steps the running mean of ``step_scores`` ranks the classes; the decision is the
first ``k`` whose top-1 minus top-2 score reaches the requested margin, else ``k = T``. The
energy of the first ``k`` steps is what a neuromorphic chip that stops there would spend; the
exported graph still computes all T steps, and the response says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from export.manifest import Manifest
from service.energy import EnergyProfile

NOTE = (
    "early decision: snn_pj_decided is the energy of the first decision.step time steps, what hardware that stops "
    "there would spend; this server's graph still computed all time steps"
)


@dataclass(frozen=True)
class Decision:
    """Where the running mean first separated its top two classes by ``margin`` (or the last step)."""

    step: int  # 1..T
    margin: float  # top-1 minus top-2 of the running mean after ``step`` steps
    index: int  # the top class after ``step`` steps
    reached: bool  # whether the requested margin was reached (False: step == T by default)


def decide(step_scores: np.ndarray, required_margin: float) -> Decision:
    """The decision for one sample's ``step_scores [T, classes]`` at ``required_margin`` in (0, 1]."""
    scores = np.asarray(step_scores, dtype=np.float64)
    steps = scores.shape[0]
    running = np.cumsum(scores, axis=0) / np.arange(1, steps + 1)[:, None]
    ranked = np.sort(running, axis=1)
    margins = ranked[:, -1] - (ranked[:, -2] if scores.shape[1] > 1 else 0.0)
    reached = np.flatnonzero(margins >= required_margin - 1e-12)
    k = int(reached[0]) + 1 if reached.size else steps
    return Decision(k, float(margins[k - 1]), int(np.argmax(running[k - 1])), bool(reached.size))


def decided_energy_pj(manifest: Manifest, step_sops: np.ndarray, step: int, profile: EnergyProfile) -> float | None:
    """SNN energy of the first ``step`` time steps, or None where the profile needs per-layer steps.

    A profile that charges a non-binary-input layer as dense MACs would need that layer's SOPs per
    step, which ``step_sops`` (all layers together) does not separate.
    """
    if profile.nonbinary_input == "mac" and any(not layer.binary_input for layer in manifest.synaptic_layers):
        return None
    return profile.e_ac_pj * int(np.asarray(step_sops[:step], dtype=np.int64).sum())
