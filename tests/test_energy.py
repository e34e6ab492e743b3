"""The response's ``energy`` object (DESIGN.md section 7) with every number worked out by hand.

A two-layer model run for 3 time steps: ``conv1`` sees event counts (non-binary input, 100 dense
MACs), ``fc1`` sees spikes (40 dense MACs); one sample made 7 and 5 synaptic operations. The
profile costs 2 pJ per accumulate and 10 pJ per multiply-accumulate.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from export.manifest import Manifest
from service.energy import EnergyProfile, estimate, load_profiles

SOPS = np.array([7, 5])


def profile(nonbinary_input: str) -> EnergyProfile:
    return EnergyProfile("p", 2.0, 10.0, nonbinary_input, "hand-made", ("compute only",))


@pytest.fixture(scope="module")
def manifest() -> Manifest:
    synaptic = [
        {"name": "conv1", "kind": "conv", "fan_in": 18, "fan_out": 4, "macs": 100, "binary_input": False},
        {"name": "fc1", "kind": "linear", "fan_in": 10, "fan_out": 4, "macs": 40, "binary_input": True},
    ]
    return Manifest.from_dict(
        {
            "name": "m",
            "version": 1,
            "classes": ["a"],
            "time_steps": 3,
            "input": {"width": 4, "height": 4, "sensor_width": 4, "sensor_height": 4},
            "layers": {"lif": [], "synaptic": synaptic},
        }
    )


def test_every_sop_costs_one_accumulate_and_the_ann_one_pass_of_dense_macs(manifest):
    energy = estimate(manifest, SOPS, profile("ac"))
    assert energy["snn_pj"] == 2.0 * 7 + 2.0 * 5 == 24.0
    assert energy["ann_pj"] == 10.0 * (100 + 40) == 1400.0
    assert energy["ratio"] == pytest.approx(1400 / 24)
    assert (energy["sops"], energy["dense_macs"]) == (12, 140)
    assert (energy["profile"], energy["e_ac_pj"], energy["e_mac_pj"]) == ("p", 2.0, 10.0)
    assert energy["layers"] == [
        {
            "name": "conv1",
            "kind": "conv",
            "sops": 7,
            "dense_macs": 100,
            "binary_input": False,
            "charged_as": "ac",
            "pj": 14.0,
        },
        {
            "name": "fc1",
            "kind": "linear",
            "sops": 5,
            "dense_macs": 40,
            "binary_input": True,
            "charged_as": "ac",
            "pj": 10.0,
        },
    ]
    assert energy["assumptions"] == ["compute only"] and energy["source"] == "hand-made"


def test_a_mac_profile_charges_the_non_binary_layer_dense_macs_at_every_time_step(manifest):
    energy = estimate(manifest, SOPS, profile("mac"))
    conv1, fc1 = energy["layers"]
    assert (conv1["charged_as"], conv1["pj"]) == ("mac", 10.0 * 100 * 3)
    assert (fc1["charged_as"], fc1["pj"]) == ("ac", 2.0 * 5)
    assert energy["snn_pj"] == 3010.0 and energy["sops"] == 12
    assert energy["ratio"] == pytest.approx(1400 / 3010)


def test_measured_gpu_energy_is_reported_as_given_and_its_absence_explained(manifest):
    measured = estimate(manifest, SOPS, profile("ac"), gpu_joules=0.25, gpu_note="unused")
    assert measured["measured_gpu_j"] == 0.25 and "NVML" in measured["measured_gpu"]
    absent = estimate(manifest, SOPS, profile("ac"), gpu_note="no GPU")
    assert absent["measured_gpu_j"] is None and absent["measured_gpu"] == "no GPU"
    assert estimate(manifest, SOPS, profile("ac"))["measured_gpu"] == ""  # no reason given, none invented


def test_a_network_spending_under_one_picojoule_still_gets_its_ratio(manifest):
    tiny = EnergyProfile("tiny", 0.01, 10.0, "ac", "hand-made", ())
    energy = estimate(manifest, SOPS, tiny)
    assert energy["snn_pj"] == pytest.approx(0.12)
    assert energy["ratio"] == pytest.approx(1400 / 0.12)


def test_sop_counts_must_match_the_layers(manifest):
    with pytest.raises(ValueError):
        estimate(manifest, np.array([7]), profile("ac"))


def test_profiles_are_read_from_json_and_a_bad_input_rule_is_refused(tmp_path):
    entry = {"name": "x", "e_ac_pj": 1.0, "e_mac_pj": 3.0, "nonbinary_input": "ac", "source": "s", "assumptions": ["a"]}
    (tmp_path / "x.json").write_text(json.dumps(entry))
    assert load_profiles(tmp_path) == {"x": EnergyProfile("x", 1.0, 3.0, "ac", "s", ("a",))}
    del entry["assumptions"]
    (tmp_path / "x.json").write_text(json.dumps(entry))
    assert load_profiles(tmp_path)["x"].assumptions == ()  # a profile may state none
    (tmp_path / "y.json").write_text(json.dumps(entry | {"name": "y", "nonbinary_input": "dense"}))
    with pytest.raises(ValueError, match=r"y\.json"):
        load_profiles(tmp_path)
