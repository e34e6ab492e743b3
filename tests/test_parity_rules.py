"""The parity check's rules (``export.parity``) on a network small enough to run by hand.

``tiny_net`` is a one-block STL-SNN with its weights and thresholds set by hand: two input
channels (OFF, ON) of 2 x 2 pixels, a 1 x 1 conv whose first output channel adds both polarities
and whose second never fires, LIFs with threshold 0.5, a 2 x 2 max pool, and a linear layer into
two classes of two voting neurons. ``SAMPLE`` drives it through two time steps; every count below
was worked out on paper from those numbers (tau 0.5, hard reset), not by running the code:

- lif1 fires where an event arrived: 2 spikes at t0 ((0, 0) OFF, (1, 1) ON), 1 at t1 ((1, 1) ON).
- conv1 reads 2 events at t0 and 1 at t1, each feeding its 2 output channels: SOPs 4 and 2.
- pool1 passes one spike per step from channel 0 (channel 1 is silent), fanned out to fc1's 4
  neurons: SOPs 4 and 4.
- fc1's currents per pooled spike are (1, 0.3, 0.3, 0.4) against thresholds
  (0.5, 0.45 + 5e-5, 0.45 + 7e-5, 0.5). At t0 only neuron 0 fires; at t1 the membranes are
  (1, 0.45, 0.45, 0.6), so neurons 0 and 3 fire, and neurons 1 and 2 miss by 5e-5 and 7e-5: the
  near-threshold decisions a rounding backend could take the other way (TIE_TOLERANCE is 1e-4).
- votes: class 0 = neurons (0, 1), class 1 = neurons (2, 3): 0.5 and 0 at t0, 0.5 and 0.5 at t1.

The second sample is silent: every count and score is 0.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

import models.datasets as datasets
from events import FramingSpec
from export.frozen import Flatten, FrozenLIF, FrozenLinear, FrozenSNN, freeze
from export.onnx_artifact import OUTPUT_NAMES
from export.parity import (
    RANDOM_EVENT_RATE,
    Outputs,
    ParityError,
    ParityInputs,
    _compare,
    _in_batches,
    check_parity,
    connection_count,
    parity_inputs,
    reference_outputs,
    step_connection_count,
    tie_flips,
)
from models.architectures import ArchConfig, SpikingNet, build_model
from models.checkpoint import ModelCard
from models.layers import Conv2d, Linear

CONFIG = ArchConfig(
    in_channels=2,
    height=2,
    width=2,
    channels=(2,),
    kernel_size=1,
    fc=(),
    classes=2,
    population=2,
    time_steps=2,
    tau=0.5,
    heterogeneity=0.0,
    dropout=0.0,
)
NEAR = {1: 5e-5, 2: 7e-5}  # fc1 neuron -> how far below its threshold its membrane is at t1


def tiny_net() -> SpikingNet:
    model = build_model(CONFIG).eval()
    with torch.no_grad():
        model.conv1.weight.zero_()
        model.conv1.weight[0] = 1.0  # channel 0 adds OFF and ON; channel 1 stays silent
        model.bn1.running_mean.zero_()
        model.bn1.running_var.fill_(1.0)
        model.bn1.weight.fill_(1.0)
        model.bn1.bias.zero_()
        model.lif1.thresh.fill_(0.5)
        model.fc1.weight.copy_(torch.tensor([[1.0, 0.0], [0.3, 0.0], [0.3, 0.0], [0.4, 0.0]]))
        model.lif2.thresh.copy_(torch.tensor([0.5, 0.45 + NEAR[1], 0.45 + NEAR[2], 0.5]))
    return model


def sample() -> torch.Tensor:
    """``[2, T=2, C=2, 2, 2]``: sample 0 as in the module docstring, sample 1 silent."""
    frames = torch.zeros(2, 2, 2, 2, 2)
    frames[0, 0, 0, 0, 0] = 1  # t0, OFF at (0, 0)
    frames[0, 0, 1, 1, 1] = 1  # t0, ON at (1, 1)
    frames[0, 1, 1, 1, 1] = 1  # t1, ON at (1, 1)
    return frames


SAMPLE = sample()
# sample 0's outputs, by hand (see the module docstring)
SCORES = [0.5, 0.25]
STEP_SCORES = [[0.5, 0.0], [0.5, 0.5]]
STEP_SPIKES = [[2, 1], [1, 2]]  # [T, layer]: lif1, lif2
SPIKES = [3, 3]
SOPS = [6, 8]  # conv1 4 + 2, fc1 4 + 4
STEP_SOPS = [8, 6]  # t0 4 + 4, t1 2 + 4


@pytest.fixture(scope="module")
def net():
    model = tiny_net()
    return model, freeze(model)


def counts(spikes, sops, step_spikes, step_sops) -> list[int]:
    """One sample's integer outputs laid out as ``Outputs.counts`` promises."""
    return [*spikes, *sops, *np.ravel(step_spikes), *step_sops]


def flipped(frozen, frames: torch.Tensor, neurons: list[int]) -> tuple:
    """The six outputs of a backend that took sample 0's t1 decisions of these fc1 neurons the other way."""
    with torch.no_grad():
        mask = torch.zeros(1, 2, 4, dtype=torch.bool)
        mask[0, 1, neurons] = True
        changed = frozen.run(frames[:1], record=False, flips={"lif2": mask})
        outputs = frozen(frames)
    return tuple(torch.cat([getattr(changed, name), old[1:]]) for name, old in zip(OUTPUT_NAMES, outputs, strict=True))


# --- counting synaptic events -------------------------------------------------------------------


def test_a_conv_counts_every_active_input_each_output_position_reads_times_its_channels():
    # 3 x 3 input, summed over its 2 channels: [[1, 0, 0], [0, 3, 0], [0, 0, 1]] at t0, nothing at t1;
    # a 2 x 2 kernel at stride 1 reads 4, 3, 3 and 4 of them at its four positions: 14, times 3 channels
    activity = torch.zeros(2, 2, 2, 3, 3)
    activity[0, 0, 0] = torch.eye(3)
    activity[0, 0, 1, 1, 1] = 2
    activity[1, 0, 0] = 1  # every pixel: each position reads 4, 16 in all
    activity[1, 1, 1, 0, 0] = 1  # a corner only the first position reads
    layer = Conv2d(2, 3, kernel_size=2)
    assert step_connection_count(layer, activity).tolist() == [[42, 0], [48, 3]]
    assert connection_count(layer, activity).tolist() == [42, 51]


def test_a_conv_with_stride_and_padding_reads_only_the_positions_it_visits():
    # 3 x 3 input, a 3 x 3 kernel, padding 1, stride 2: 2 x 2 positions centred on the corners.
    # The centre pixel lies under all four; the corner (0, 0) under the first only; (0, 1) under two.
    activity = torch.zeros(1, 3, 1, 3, 3)
    activity[0, 0, 0, 1, 1] = 1
    activity[0, 1, 0, 0, 0] = 1
    activity[0, 2, 0, 0, 1] = 1
    layer = Conv2d(1, 5, kernel_size=3, stride=2, padding=1)
    assert step_connection_count(layer, activity).tolist() == [[4 * 5, 1 * 5, 2 * 5]]


def test_a_linear_layer_fans_every_active_input_out_to_all_its_outputs():
    activity = torch.tensor([[[1.0, 0, 2, 0], [0, 0, 0, 0], [1, 1, 1, 1]]])  # [B=1, T=3, 4 features]
    layer = Linear(4, 5)
    assert step_connection_count(layer, activity).tolist() == [[15, 0, 20]]
    assert connection_count(layer, activity).tolist() == [35]


# --- the reference ------------------------------------------------------------------------------


def test_the_reference_counts_spikes_sops_and_votes_per_step_as_worked_out_by_hand(net):
    model, _ = net
    reference = reference_outputs(model, SAMPLE)
    assert reference.scores.tolist() == [SCORES, [0.0, 0.0]]
    assert reference.step_scores.tolist() == [STEP_SCORES, [[0.0, 0.0], [0.0, 0.0]]]
    assert reference.spikes.tolist() == [SPIKES, [0, 0]]
    assert reference.step_spikes.tolist() == [STEP_SPIKES, [[0, 0], [0, 0]]]
    assert reference.sops.tolist() == [SOPS, [0, 0]]
    assert reference.step_sops.tolist() == [STEP_SOPS, [0, 0]]
    assert reference.spikes.dtype == reference.sops.dtype == np.int64
    assert reference.counts(0).tolist() == counts(SPIKES, SOPS, STEP_SPIKES, STEP_SOPS)
    assert reference.totals_consistent()
    assert not any(module._forward_hooks or module._forward_pre_hooks for module in model.modules())


def test_the_reference_leaves_the_model_in_eval_mode_and_unhooked_when_it_fails(net):
    model, _ = net
    model.train()
    with pytest.raises(RuntimeError):
        reference_outputs(model, torch.zeros(1, 2, 3, 2, 2))  # three input channels: the conv refuses
    assert not model.training
    assert not any(module._forward_hooks or module._forward_pre_hooks for module in model.modules())


def test_totals_must_be_the_sums_of_the_steps_and_scores_their_mean_within_the_tolerance():
    def outputs(
        scores=SCORES, spikes=SPIKES, sops=SOPS, step_scores=STEP_SCORES, step_spikes=STEP_SPIKES, step_sops=STEP_SOPS
    ) -> Outputs:
        floats = [np.array([v], np.float64) for v in (scores, step_scores)]
        ints = [np.array([v], np.int64) for v in (spikes, sops, step_spikes, step_sops)]
        return Outputs(floats[0], *ints[:2], floats[1], *ints[2:])

    assert outputs().totals_consistent()
    silent = [[0.0, 0.0], [0.0, 0.0]]
    assert outputs(scores=[1e-5, 0.0], step_scores=silent).totals_consistent()  # exactly SCORE_TOLERANCE off
    assert outputs(scores=[0.0, -1e-5], step_scores=silent).totals_consistent()
    assert not outputs(scores=[2e-5, 0.0], step_scores=silent).totals_consistent()
    assert not outputs(scores=[0.0, -2e-5], step_scores=silent).totals_consistent()
    assert not outputs(scores=[0.5, 0.5]).totals_consistent()  # the last step's votes, not their mean
    assert not outputs(spikes=[3, 4]).totals_consistent()
    assert not outputs(step_spikes=[[2, 1], [2, 1]]).totals_consistent()  # per layer, not only in all
    assert outputs(sops=[7, 7]).totals_consistent()  # only the sum over layers is per step
    assert not outputs(sops=[6, 9]).totals_consistent()
    assert not outputs(step_sops=[8, 7]).totals_consistent()


# --- ties ---------------------------------------------------------------------------------------


def test_tie_flips_finds_how_many_near_threshold_decisions_reproduce_the_counts(net):
    _, frozen = net
    frame = SAMPLE[:1]
    one = counts([3, 4], SOPS, [[2, 1], [1, 3]], STEP_SOPS)  # neuron 1 fired at t1
    two = counts([3, 5], SOPS, [[2, 1], [1, 4]], STEP_SOPS)  # neurons 1 and 2 fired at t1
    assert tie_flips(frozen, frame, np.array(one)) == 1
    assert tie_flips(frozen, frame, np.array(two)) == 2
    assert tie_flips(frozen, frame, np.array(two), candidates=1) is None  # only the closest is a candidate


def test_tie_flips_refuses_what_no_near_threshold_flip_explains(net):
    _, frozen = net
    frame = SAMPLE[:1]
    as_is = counts(SPIKES, SOPS, STEP_SPIKES, STEP_SOPS)
    missing_spike = counts([3, 2], SOPS, [[2, 1], [1, 1]], STEP_SOPS)  # neuron 0 or 3 silent: far over threshold
    one_more_sop = counts(SPIKES, [6, 9], STEP_SPIKES, [8, 7])
    for wanted in (as_is, missing_spike, one_more_sop):  # flips only; the unflipped run is not a tie
        assert tie_flips(frozen, frame, np.array(wanted)) is None


# --- the check ----------------------------------------------------------------------------------


class BatchCounter:
    """The folded module as a backend that notes the size of each batch it is given."""

    def __init__(self, frozen) -> None:
        self.frozen, self.sizes = frozen, []

    def __call__(self, frames: torch.Tensor) -> tuple:
        self.sizes.append(len(frames))
        return self.frozen(frames)


def test_an_equal_backend_passes_with_every_figure_of_the_record(net):
    model, frozen = net
    folded = BatchCounter(frozen)
    inputs = parity_inputs_of(SAMPLE.repeat(3, 1, 1, 1, 1))  # samples 0, 2, 4 fire, 1, 3, 5 are silent
    report = check_parity(model, frozen, {"folded": folded}, inputs, batch_size=4)
    assert folded.sizes == [4, 2]
    assert report == {
        "reference": "training-code SpikingNet, eval mode (BatchNorm unfolded, autograd spike function)",
        "inputs": {"kind": "random", "description": "by hand", "samples": 6},
        "batch_size": 4,
        "score_tolerance": 1e-5,
        "tie_tolerance": 1e-4,
        "count_dtype": "int64",
        "reference_spikes_mean": [1.5, 1.5],
        "reference_sops_mean": [3.0, 4.0],
        "backends": {
            "folded": {
                "scores_max_abs_diff": pytest.approx(0.0, abs=1e-6),
                "scores_max_abs_diff_all": pytest.approx(0.0, abs=1e-6),
                "spikes_identical": True,
                "sops_identical": True,
                "step_counts_identical": True,
                "totals_are_step_sums": True,
                "mismatched_samples": 0,
                "tie_samples": 0,
                "unexplained_samples": 0,
            }
        },
        "ties": 0,
        "passed": True,
    }


def parity_inputs_of(frames: torch.Tensor) -> ParityInputs:
    return ParityInputs(frames, "random", "by hand")


def test_a_backend_that_rounds_one_near_threshold_decision_the_other_way_passes_with_a_tie(net):
    model, frozen = net
    outputs = flipped(frozen, SAMPLE, [1])
    report = check_parity(model, frozen, {"ort-like": lambda frames: outputs}, parity_inputs_of(SAMPLE))
    figures = report["backends"]["ort-like"]
    assert report["passed"] and report["ties"] == 1
    assert figures["mismatched_samples"] == 1 and figures["tie_samples"] == 1 and figures["unexplained_samples"] == 0
    assert not figures["spikes_identical"] and figures["sops_identical"] and not figures["step_counts_identical"]
    # neuron 1 firing at t1 moves class 0's t1 vote from 0.5 to 1: scores differ in the tied sample only
    assert figures["scores_max_abs_diff_all"] == pytest.approx(0.5)
    assert figures["scores_max_abs_diff"] == pytest.approx(0.0, abs=1e-6)
    assert figures["totals_are_step_sums"]


def spikes_plus_one(o: dict) -> None:
    o["spikes"][1, 1] += 1
    o["step_spikes"][1, 1, 1] += 1


def sops_plus_one(o: dict) -> None:
    o["sops"][1, 0] += 1
    o["step_sops"][1, 0] += 1


def spike_moved_a_step(o: dict) -> None:
    o["step_spikes"][0, 0, 0] += 1
    o["step_spikes"][0, 1, 0] -= 1


def sop_moved_a_step(o: dict) -> None:
    o["step_sops"][0, 0] += 1
    o["step_sops"][0, 1] -= 1


@pytest.mark.parametrize(
    ("change", "identical"),
    [
        (spikes_plus_one, {"sops_identical"}),
        (sops_plus_one, {"spikes_identical"}),
        (spike_moved_a_step, {"spikes_identical", "sops_identical"}),
        (sop_moved_a_step, {"spikes_identical", "sops_identical"}),
    ],
)
def test_a_backend_one_count_off_in_one_sample_fails_the_export(net, change, identical):
    """Totals and steps stay consistent, so the one failure is the count."""
    model, frozen = net
    outputs = {name: value.clone() for name, value in zip(OUTPUT_NAMES, frozen(SAMPLE), strict=True)}
    change(outputs)
    backend = {"off-by-one": lambda frames: tuple(outputs[name] for name in OUTPUT_NAMES)}
    refused = r"^parity failed: off-by-one: 1 sample\(s\) differ in spikes/sops, not by a tie$"
    with pytest.raises(ParityError, match=refused):
        check_parity(model, frozen, backend, parity_inputs_of(SAMPLE))
    figures = _figures(model, frozen, backend)
    assert figures["mismatched_samples"] == 1 and figures["tie_samples"] == 0 and figures["unexplained_samples"] == 1
    flags = {"spikes_identical", "sops_identical", "step_counts_identical"}
    assert {name for name in flags if figures[name]} == identical


def _figures(model, frozen, backend) -> dict:
    """One backend's figures, whether or not the check passes."""
    reference = reference_outputs(model, SAMPLE)
    return _compare(reference, _in_batches(next(iter(backend.values())), SAMPLE, 8), frozen, SAMPLE)


def test_scores_beyond_the_tolerance_in_an_agreeing_sample_fail_the_export(net):
    model, frozen = net
    scores, *rest = frozen(SAMPLE)
    step_scores = rest[2]

    def drift(by: float):
        return lambda frames: (scores + by, *rest[:2], step_scores + by, *rest[3:])

    assert check_parity(model, frozen, {"close": drift(9e-6)}, parity_inputs_of(SAMPLE))["passed"]
    with pytest.raises(ParityError, match=r"^parity failed: far: scores differ by 2e-05 > 1e-05$"):
        check_parity(model, frozen, {"far": drift(2e-5)}, parity_inputs_of(SAMPLE))


def test_per_step_scores_alone_beyond_the_tolerance_fail_the_export(net):
    model, frozen = net
    scores, spikes, sops, step_scores, *steps = frozen(SAMPLE)
    moved = step_scores.clone()
    moved[:, 0] += 1e-3
    moved[:, 1] -= 1e-3  # the same mean over time
    backend = {"moved": lambda frames: (scores, spikes, sops, moved, *steps)}
    with pytest.raises(ParityError, match=r"moved: scores differ by 0\.001 > 1e-05$"):
        check_parity(model, frozen, backend, parity_inputs_of(SAMPLE))


def test_totals_that_are_not_the_sums_of_a_backends_steps_fail_the_export_naming_every_failure(net):
    model, frozen = net
    scores, spikes, sops, step_scores, step_spikes, step_sops = frozen(SAMPLE)
    backends = {
        "good": frozen,
        "bad": lambda frames: (scores + 1e-3, spikes, sops, step_scores, step_spikes, step_sops),
    }
    with pytest.raises(ParityError) as raised:
        check_parity(model, frozen, backends, parity_inputs_of(SAMPLE))
    assert str(raised.value) == (
        "parity failed: bad: scores differ by 0.001 > 1e-05; "
        "bad: scores/spikes/sops are not the mean/sums of its per-step outputs"
    )


# --- the inputs ---------------------------------------------------------------------------------


class FakeSplit:
    """A dataset whose recording ``i`` is frames filled with ``i + 1``."""

    def __init__(self, size: int, shape: tuple[int, ...]):
        self.size, self.shape = size, shape

    def __len__(self) -> int:
        return self.size

    def frames(self, i: int) -> torch.Tensor:
        return torch.full(self.shape, i + 1, dtype=torch.float64)


def card_of(dataset: str, **fields) -> ModelCard:
    return ModelCard(arch=CONFIG, classes=["a", "b"], sensor_size=(8, 8), dataset=dataset, **fields)


SHAPE = (2, 2, 2, 2)  # T, C, H, W of CONFIG


def test_parity_inputs_take_the_cards_test_split_framed_with_its_spec(monkeypatch):
    calls = []

    def opener(root, split, spec, size=100, seed=0, cache_dir="disk"):
        calls.append((root, split, spec, size, seed, cache_dir))
        return FakeSplit(5, SHAPE)

    monkeypatch.setitem(datasets.DATASETS, "fake", opener)
    card = card_of("fake", split_by="time", denoise_us=300)
    inputs = parity_inputs(card, 3, seed=7)
    assert calls == [(None, "test", FramingSpec(2, 2, 2, "time", 300), 3, 7, None)]
    assert inputs.kind == "dataset"
    assert inputs.description == "fake test split (size=3, seed=7), first 3 recordings"
    assert inputs.frames.dtype == torch.float32 and inputs.frames.shape == (3, *SHAPE)
    assert [float(f.mean()) for f in inputs.frames] == [1.0, 2.0, 3.0]


def test_parity_inputs_pass_only_the_options_the_opener_takes_and_stop_at_the_split_end(monkeypatch):
    def opener(root, split, spec, size):
        return FakeSplit(2, SHAPE)

    assert "seed" not in inspect.signature(opener).parameters
    monkeypatch.setitem(datasets.DATASETS, "fake", opener)
    inputs = parity_inputs(card_of("fake"), 4)
    assert inputs.kind == "dataset" and inputs.frames.shape == (2, *SHAPE)
    assert inputs.description == "fake test split (size=4), first 2 recordings"


@pytest.mark.parametrize(
    ("opener", "why"),
    [
        (lambda root, split, spec: FakeSplit(0, SHAPE), "dataset 'fake' test split is empty"),
        (lambda *args: (_ for _ in ()).throw(FileNotFoundError("no data folder")),
         "dataset 'fake' unavailable (FileNotFoundError: no data folder)"),
    ],
    ids=["empty", "needs-files"],
)  # fmt: skip
def test_parity_inputs_fall_back_to_random_event_frames_saying_why(monkeypatch, opener, why):
    monkeypatch.setitem(datasets.DATASETS, "fake", opener)
    inputs = parity_inputs(card_of("fake"), 64, seed=3)
    assert inputs.kind == "random"
    assert inputs.description == f"random event frames (Poisson counts, mean {RANDOM_EVENT_RATE}, seed 3); {why}"
    assert inputs.frames.dtype == torch.float32 and inputs.frames.shape == (64, *SHAPE)
    assert torch.equal(inputs.frames, inputs.frames.round()) and inputs.frames.min() >= 0
    assert abs(float(inputs.frames.mean()) - RANDOM_EVENT_RATE) < 0.05  # 1024 Poisson draws
    again, other = parity_inputs(card_of("fake"), 64, seed=3), parity_inputs(card_of("fake"), 64, seed=4)
    assert torch.equal(inputs.frames, again.frames) and not torch.equal(inputs.frames, other.frames)


def test_rate_coded_parity_inputs_are_bernoulli_trains_of_random_images():
    card = card_of("no-such-set", input_encoding="rate-coded")
    inputs = parity_inputs(card, 64, seed=2)
    assert inputs.kind == "random"
    assert inputs.description == (
        "rate-coded random images (Bernoulli, seed 2); dataset 'no-such-set' has no registered opener"
    )
    assert inputs.frames.dtype == torch.float32 and inputs.frames.shape == (64, *SHAPE)
    assert set(inputs.frames.unique().tolist()) == {0.0, 1.0}
    assert abs(float(inputs.frames.mean()) - 0.5) < 0.05  # uniform intensities fire half the time on average
    assert torch.equal(inputs.frames, parity_inputs(card, 64, seed=2).frames)


def test_the_record_reports_default_batches_of_eight_and_means_rounded_as_the_manifest_shows(net):
    model, frozen = net
    folded = BatchCounter(frozen)
    frames = torch.cat([SAMPLE[:1], SAMPLE[1:].repeat(8, 1, 1, 1, 1)])
    report = check_parity(model, frozen, {"folded": folded}, parity_inputs_of(frames))
    assert folded.sizes == [8, 1] and report["batch_size"] == 8
    # 9 samples, 1 firing: spikes 3/9 = 0.33 per layer; SOPs 6/9 = 0.7 and 8/9 = 0.9
    assert report["reference_spikes_mean"] == [0.33, 0.33]
    assert report["reference_sops_mean"] == [0.7, 0.9]


def test_scores_exactly_at_the_tolerance_pass(net):
    model, frozen = net
    scores, *rest = frozen(SAMPLE)
    nudged = scores.double()
    nudged[1, 0] += 1e-5  # the silent sample: 0 -> exactly SCORE_TOLERANCE
    report = check_parity(model, frozen, {"nudged": lambda frames: (nudged, *rest)}, parity_inputs_of(SAMPLE))
    assert report["passed"] and report["backends"]["nudged"]["scores_max_abs_diff"] == 1e-5


def test_with_no_backend_to_compare_there_are_no_ties_and_nothing_fails(net):
    model, frozen = net
    report = check_parity(model, frozen, {}, parity_inputs_of(SAMPLE))
    assert report["backends"] == {} and report["ties"] == 0 and report["passed"]


def test_every_tied_sample_is_counted_and_scores_of_tied_samples_alone_are_not_compared(net):
    model, frozen = net
    twice = torch.cat([SAMPLE[:1], SAMPLE[:1]])
    with torch.no_grad():
        mask = torch.zeros(2, 2, 4, dtype=torch.bool)
        mask[:, 1, 1] = True  # both samples: neuron 1 at t1
        run = frozen.run(twice, record=False, flips={"lif2": mask})
    outputs = tuple(getattr(run, name) for name in OUTPUT_NAMES)
    report = check_parity(model, frozen, {"ort-like": lambda frames: outputs}, parity_inputs_of(twice))
    figures = report["backends"]["ort-like"]
    assert figures["mismatched_samples"] == 2 and figures["tie_samples"] == 2 and report["ties"] == 2
    assert figures["scores_max_abs_diff"] == 0.0  # no sample agrees: nothing to compare
    assert figures["scores_max_abs_diff_all"] == pytest.approx(0.5) and report["passed"]


def test_parity_inputs_use_seed_zero_unless_told(monkeypatch):
    card = card_of("no-such-set")
    inputs = parity_inputs(card, 4)
    assert "seed 0" in inputs.description
    assert torch.equal(inputs.frames, parity_inputs(card, 4, seed=0).frames)


def one_layer(weights: list[float], thresholds: list[float]) -> FrozenSNN:
    """A frozen net of one input feature, one linear layer and one LIF layer, one time step, voting
    pairs: neuron ``k``'s membrane is ``input * weights[k]``, compared with ``thresholds[k]``."""
    layers = {
        "flatten": Flatten(),
        "fc1": FrozenLinear(torch.tensor(weights).reshape(-1, 1)),
        "lif1": FrozenLIF(torch.tensor(thresholds), 0.5, 1),
    }
    return FrozenSNN(layers, time_steps=1, classes=len(weights) // 2, population=2).eval()


def test_each_differing_sample_is_replayed_on_its_own(net):
    """Sample 1's four decisions are closer to threshold than sample 0's two, which a backend took the
    other way: replayed with sample 1 beside it, sample 0's pair would not be among the candidates."""
    # neuron k: sample 0 (input 1) misses by g, sample 1 (input 2) fires by h: weight g + h, threshold 2g + h
    g, h = [5e-5, 7e-5, 1e-2, 1e-2], [1e-6, 2e-6, 3e-6, 4e-6]
    frozen = one_layer([a + b for a, b in zip(g, h, strict=True)], [2 * a + b for a, b in zip(g, h, strict=True)])
    frames = torch.tensor([1.0, 2.0]).reshape(2, 1, 1, 1, 1)
    reference = _in_batches(frozen, frames, 8)
    got = _in_batches(frozen, frames, 8)
    assert reference.spikes.tolist() == [[0], [4]]
    got.spikes[0, 0] = got.step_spikes[0, 0, 0] = 2  # neurons 0 and 1 fired in sample 0
    figures = _compare(reference, got, frozen, frames)
    assert figures["mismatched_samples"] == 1 and figures["tie_samples"] == 1


CROWDED = torch.ones(1, 1, 1, 1, 1)  # one sample, input 1: membranes are the weights


def test_only_the_eight_closest_decisions_are_candidates():
    # eight neurons fire by 1..8 e-6, the ninth misses by 9e-6, the tenth by far
    gaps = [k * 1e-6 for k in range(1, 9)] + [-9e-6, -0.5]
    frozen = one_layer([0.5 + gap for gap in gaps], [0.5] * 10)
    ninth_fired = np.array([9, 10, 9, 10])  # spikes, SOPs (1 input x 10), per step the same
    assert tie_flips(frozen, CROWDED, ninth_fired) is None
    assert tie_flips(frozen, CROWDED, ninth_fired, candidates=9) == 1


def test_pairs_are_tried_among_the_four_closest_decisions_only():
    # four neurons fire by 1..4 e-6, the fifth misses by 5e-6: turning the first off and the fifth on
    # keeps 4 spikes, but the fifth is not among the four that pairs are made of
    gaps = [1e-6, 2e-6, 3e-6, 4e-6, -5e-6] + [-0.5] * 5
    frozen = one_layer([0.5 + gap for gap in gaps], [0.5] * 10)
    assert tie_flips(frozen, CROWDED, np.array([4, 10, 4, 10])) is None
    assert tie_flips(frozen, CROWDED, np.array([2, 10, 2, 10])) == 2  # two of the four turned off
