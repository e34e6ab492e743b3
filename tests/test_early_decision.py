"""Early decision (DESIGN.md section 10) on hand-made per-step scores, and its energy."""

from __future__ import annotations

import numpy as np
import pytest

from export.manifest import EnergyDefaults, InputSpec, LIFLayer, Manifest, SynapticLayer
from service.early_decision import decide, decided_energy_pj
from service.energy import load_profiles

# T = 4 steps, 3 classes. Running means by hand:
#   after 1: [0.4, 0.4, 0.2]    margin 0.0
#   after 2: [0.6, 0.2, 0.2]    margin 0.4
#   after 3: [0.4, 0.133, 0.467] margin 0.067 (class 2 leads)
#   after 4: [0.35, 0.15, 0.5]  margin 0.15
STEP_SCORES = np.array([[0.4, 0.4, 0.2], [0.8, 0.0, 0.2], [0.0, 0.0, 1.0], [0.2, 0.2, 0.6]], dtype=np.float32)
STEP_SOPS = np.array([1000, 250, 40, 7], dtype=np.int64)


def manifest(first_layer_binary: bool) -> Manifest:
    return Manifest(
        name="m",
        version=1,
        classes=["a", "b", "c"],
        time_steps=4,
        input=InputSpec(width=8, height=8, sensor_width=8, sensor_height=8),
        lif_layers=[LIFLayer("lif1", 10, [10])],
        synaptic_layers=[
            SynapticLayer("conv1", "conv", 18, 36, 5000, first_layer_binary),
            SynapticLayer("fc1", "linear", 10, 3, 30, True),
        ],
        energy=EnergyDefaults(),
    )


def test_the_first_step_whose_running_margin_reaches_the_threshold_decides():
    decision = decide(STEP_SCORES, 0.3)
    assert (decision.step, decision.index, decision.reached) == (2, 0, True)
    assert decision.margin == pytest.approx(0.4)


def test_a_margin_reached_exactly_counts_as_reached():
    assert decide(STEP_SCORES, 0.4).step == 2


def test_a_margin_never_reached_decides_at_the_last_step_with_the_full_answer():
    decision = decide(STEP_SCORES, 0.5)
    assert (decision.step, decision.index, decision.reached) == (4, 2, False)
    assert decision.margin == pytest.approx(0.15)


def test_a_clear_first_step_decides_at_once():
    scores = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    decision = decide(scores, 1.0)
    assert (decision.step, decision.index, decision.margin, decision.reached) == (1, 0, 1.0, True)


def test_decided_energy_charges_the_sops_of_the_steps_up_to_the_decision():
    profiles = load_profiles()
    assert decided_energy_pj(manifest(False), STEP_SOPS, 2, profiles["45nm-fp32"]) == pytest.approx(0.9 * 1250)
    assert decided_energy_pj(manifest(False), STEP_SOPS, 4, profiles["45nm-fp32"]) == pytest.approx(0.9 * 1297)


def test_a_profile_charging_event_input_as_macs_cannot_split_steps_by_layer():
    profile = load_profiles()["45nm-fp32-mac-input"]
    assert decided_energy_pj(manifest(False), STEP_SOPS, 2, profile) is None
    assert decided_energy_pj(manifest(True), STEP_SOPS, 2, profile) == pytest.approx(profile.e_ac_pj * 1250)
