"""One file's classify result (``service.routes.classify.build_result``, DESIGN.md section 6), from a
hand-made batch result, with every expected value worked out here.

The model has 40 classes (enough that NumPy's default sort would not keep ties in order), two time
steps, two LIF layers of 4 and 6 neurons and two synaptic layers; the energy profile charges 1 pJ
per synaptic operation.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from export.manifest import Manifest
from service.batcher import SampleResult
from service.early_decision import NOTE as EARLY_DECISION_NOTE
from service.energy import EnergyProfile, estimate
from service.ingest import Prepared
from service.routes.classify import build_result

CLASSES = [f"c{i}" for i in range(40)]
MANIFEST = Manifest.from_dict(
    {
        "name": "m",
        "version": 3,
        "classes": CLASSES,
        "time_steps": 2,
        "input": {"width": 4, "height": 4, "sensor_width": 128, "sensor_height": 128},
        "layers": {
            "lif": [{"name": "lif1", "neurons": 4, "shape": [4]}, {"name": "lif2", "neurons": 6, "shape": [6]}],
            "synaptic": [
                {"name": "conv1", "kind": "conv", "fan_in": 9, "fan_out": 4, "macs": 100, "binary_input": False},
                {"name": "fc1", "kind": "linear", "fan_in": 4, "fan_out": 6, "macs": 50, "binary_input": True},
            ],
        },
    }
)
MODEL = SimpleNamespace(name="m", version=3, manifest=MANIFEST)
PROFILE = EnergyProfile("hand", e_ac_pj=1.0, e_mac_pj=4.0, nonbinary_input="ac", source="here", assumptions=("a",))
PREPARED = Prepared(
    frames=np.zeros((2, 2, 4, 4), np.float32), input={"filename": "r.npz"}, decode_s=0.001, frame_s=0.002
)


def sample(gpu_joules: float | None = 0.5) -> SampleResult:
    """Class 3 leads by 0.5 after one step; after two it ties with class 30, ahead of five classes
    tied among themselves; the rest score 0."""
    step_scores = np.zeros((2, 40), np.float32)
    step_scores[:, 3] = [0.75, 0.25]  # running mean 0.75, then 0.5
    step_scores[:, 30] = [0.25, 0.75]  # 0.25, then 0.5
    step_scores[:, [5, 7, 9, 20, 33]] = 0.25  # 0.25 throughout
    return SampleResult(
        scores=step_scores.mean(axis=0),
        spikes=np.array([5.0, 3.0]),  # a backend may report counts as floats
        sops=np.array([10.0, 20.0]),
        queue_s=0.003,
        infer_s=0.004,
        batch_size=2,
        gpu_joules=gpu_joules,
        step_scores=step_scores,
        step_spikes=np.array([[2, 1], [3, 2]]),  # [T, layer]
        step_sops=np.array([12, 18]),
    )


def test_a_result_ranks_classes_counts_spikes_prices_energy_and_times_each_stage_in_ms():
    result = build_result(MODEL, PREPARED, sample(), 7, PROFILE, "unused", 12.5)
    ranked = [(entry["index"], entry["label"], entry["score"]) for entry in result["top_k"]]
    # means: classes 3 and 30 0.5, classes 5, 7, 9, 20, 33 0.25: ties in class order
    assert ranked == [(3, "c3", 0.5), (30, "c30", 0.5), *[(i, f"c{i}", 0.25) for i in (5, 7, 9, 20, 33)]]
    assert result["prediction"] == {"index": 3, "label": "c3", "score": 0.5}
    assert result["model"] == {"name": "m", "version": 3}
    assert result["input"] == {"filename": "r.npz"}
    assert result["spikes"] == {
        "total": 8,
        "layers": [
            {"name": "lif1", "neurons": 4, "count": 5, "rate": 5 / (4 * 2), "steps": [2, 3]},
            {"name": "lif2", "neurons": 6, "count": 3, "rate": 3 / (6 * 2), "steps": [1, 2]},
        ],
    }
    assert result["energy"] == estimate(MANIFEST, np.array([10, 20]), PROFILE, 0.5, "unused")
    assert result["energy"]["measured_gpu_j"] == 0.5 and result["energy"]["sops"] == 30
    assert result["decision"] is None and "snn_pj_decided" not in result["energy"]
    assert result["timing_ms"] == pytest.approx(
        {"decode": 1.0, "frame": 2.0, "queue": 3.0, "infer": 4.0, "total": 12.5}
    )


def test_without_a_gpu_reading_the_energy_says_why():
    result = build_result(MODEL, PREPARED, sample(gpu_joules=None), 1, PROFILE, "no NVML here", 1.0)
    assert result["energy"]["measured_gpu_j"] is None and result["energy"]["measured_gpu"] == "no NVML here"
    assert [entry["index"] for entry in result["top_k"]] == [3]


def test_an_export_without_per_step_outputs_has_no_steps_per_layer():
    old = sample()
    old.step_spikes = None
    layers = build_result(MODEL, PREPARED, old, 1, PROFILE, "", 1.0)["spikes"]["layers"]
    assert [layer["steps"] for layer in layers] == [None, None]


@pytest.mark.parametrize(
    ("margin", "step", "reached", "margin_there", "pj"),
    [(0.5, 1, True, 0.5, 12.0), (0.25, 1, True, 0.5, 12.0), (0.6, 2, False, 0.0, 30.0)],
)
def test_an_early_exit_reports_the_first_step_whose_margin_reaches_it_and_that_steps_energy(
    margin, step, reached, margin_there, pj
):
    # running means: after one step class 3 leads class 30 (and five others) by 0.75 - 0.25 = 0.5;
    # after two they tie at 0.5. SOPs per step 12 and 18, at 1 pJ each.
    result = build_result(MODEL, PREPARED, sample(), 3, PROFILE, "", 1.0, early_exit=margin)
    assert result["decision"] == {"step": step, "margin": margin_there, "reached": reached, "index": 3, "label": "c3"}
    assert result["energy"]["snn_pj_decided"] == pj
    assert result["energy"]["assumptions"] == ["a", EARLY_DECISION_NOTE]


def test_an_early_exit_under_a_profile_charging_non_binary_input_as_macs_has_no_decided_energy():
    """conv1 is fed event counts; such a profile needs its SOPs per step, which the outputs do not separate."""
    dense = EnergyProfile("dense", 1.0, 4.0, nonbinary_input="mac", source="here", assumptions=())
    result = build_result(MODEL, PREPARED, sample(), 3, dense, "", 1.0, early_exit=0.5)
    assert result["decision"]["step"] == 1 and result["energy"]["snn_pj_decided"] is None
