"""The parity check: passes equal backends, counts a flipped threshold tie, fails everything else loudly."""

from __future__ import annotations

import pytest
import torch
from export_helpers import lively_model, random_frames

from export.frozen import freeze
from export.onnx_artifact import OUTPUT_NAMES
from export.parity import ParityError, ParityInputs, check_parity, parity_inputs
from models.checkpoint import ModelCard, official_mnist_card


@pytest.fixture(scope="module")
def setup():
    model = lively_model(7)
    frozen = freeze(model)
    inputs = ParityInputs(random_frames(6, model, seed=7), "random", "Poisson test frames")
    return model, frozen, inputs


def flip_closest_decision(frozen, frames: torch.Tensor) -> tuple[float, tuple]:
    """What a backend that rounded sample 0's closest call the other way would output, and how close it was."""
    with torch.no_grad():
        run = frozen.run(frames[:1])
        name, gap = min(run.gaps.items(), key=lambda item: item[1].abs().min())
        mask = torch.zeros_like(gap, dtype=torch.bool)
        mask.view(-1)[gap.abs().flatten().argmin()] = True
        flipped = frozen.run(frames[:1], record=False, flips={name: mask})
        outputs = frozen(frames)
    changed = tuple(getattr(flipped, name) for name in OUTPUT_NAMES)
    replaced = (torch.cat([new, old[1:]]) for new, old in zip(changed, outputs, strict=True))
    return gap.abs().min().item(), tuple(replaced)


def test_equal_backends_pass_with_exact_figures(setup):
    model, frozen, inputs = setup
    report = check_parity(model, frozen, {"folded": frozen}, inputs, batch_size=4)
    figures = report["backends"]["folded"]
    assert report["passed"] and report["ties"] == 0 and report["count_dtype"] == "int64"
    assert figures["spikes_identical"] and figures["sops_identical"] and figures["mismatched_samples"] == 0
    assert figures["scores_max_abs_diff"] <= 1e-6
    assert report["inputs"] == {"kind": "random", "description": "Poisson test frames", "samples": 6}
    assert min(report["reference_spikes_mean"]) > 0


def test_a_flipped_threshold_tie_is_counted_not_hidden(setup):
    model, frozen, inputs = setup
    margin, outputs = flip_closest_decision(frozen, inputs.frames)
    if margin > 1e-4:
        pytest.skip(f"no decision near threshold in these frames (closest {margin:.2e})")
    tied = {"ort-like": lambda frames: tuple(out[: len(frames)] for out in outputs)}
    report = check_parity(model, frozen, tied, inputs, batch_size=6)
    figures = report["backends"]["ort-like"]
    assert figures["mismatched_samples"] == 1 and figures["tie_samples"] == 1 and figures["unexplained_samples"] == 0
    assert not figures["spikes_identical"] and report["ties"] == 1 and report["passed"]


def test_a_count_off_by_one_fails_the_export(setup):
    model, frozen, inputs = setup

    def off_by_one(frames):
        scores, spikes, sops, *steps = frozen(frames)
        return scores, spikes, sops + torch.tensor([0, 0, 1, 0]), *steps

    with pytest.raises(ParityError, match=r"broken: 6 sample\(s\) differ in spikes/sops, not by a tie"):
        check_parity(model, frozen, {"broken": off_by_one}, inputs, batch_size=3)


def test_a_per_step_count_off_by_one_fails_even_when_the_totals_agree(setup):
    model, frozen, inputs = setup

    def shifted(frames):
        *totals, step_scores, step_spikes, step_sops = frozen(frames)
        moved = step_sops.clone()
        moved[:, 0] += 1
        moved[:, 1] -= 1  # the same total, one SOP moved between steps
        return *totals, step_scores, step_spikes, moved

    with pytest.raises(ParityError, match=r"shifted: 6 sample\(s\) differ in spikes/sops, not by a tie"):
        check_parity(model, frozen, {"shifted": shifted}, inputs, batch_size=3)


def test_totals_that_are_not_the_sums_of_the_steps_fail_the_export(setup):
    model, frozen, inputs = setup

    def inconsistent(frames):
        scores, spikes, sops, step_scores, step_spikes, step_sops = frozen(frames)
        return scores, spikes, sops, step_scores + 1e-3, step_spikes, step_sops

    with pytest.raises(ParityError, match=r"inconsistent: .*not the mean/sums of its per-step outputs"):
        check_parity(model, frozen, {"inconsistent": inconsistent}, inputs)


def test_drifting_scores_fail_the_export(setup):
    model, frozen, inputs = setup

    def drift(frames):
        scores, spikes, sops, *steps = frozen(frames)
        return scores + 1e-3, spikes, sops, *steps

    with pytest.raises(ParityError, match=r"drift: scores differ by 0\.001"):
        check_parity(model, frozen, {"drift": drift}, inputs)


def test_parity_inputs_come_from_the_cards_dataset_when_it_opens(setup):
    model = setup[0]
    card = ModelCard(arch=model.config, classes=list("abcdefghij"), sensor_size=(128, 128), dataset="synthetic")
    inputs = parity_inputs(card, 3)
    assert inputs.kind == "dataset", inputs.description
    assert inputs.frames.shape == (3, 4, 2, 32, 32)
    assert inputs.description.startswith("synthetic test split") and inputs.frames.sum() > 0
    assert torch.equal(inputs.frames, inputs.frames.round())  # event counts


def test_parity_inputs_fall_back_to_random_frames_and_say_why(setup):
    model = setup[0]
    card = ModelCard(arch=model.config, classes=list("abcdefghij"), sensor_size=(128, 128), dataset="no-such-set")
    inputs = parity_inputs(card, 4, seed=3)
    assert inputs.kind == "random" and "'no-such-set' has no registered opener" in inputs.description
    assert torch.equal(inputs.frames, parity_inputs(card, 4, seed=3).frames)


def test_rate_coded_parity_inputs_are_binary_spike_trains():
    inputs = parity_inputs(official_mnist_card(), 2)
    assert inputs.kind == "random" and inputs.frames.shape == (2, 4, 1, 28, 28)
    assert set(inputs.frames.unique().tolist()) == {0.0, 1.0}
