"""Freezing: BatchNorm folds exactly, the frozen module fires like the training model, counts are right."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from export_helpers import lively_model, random_frames, synthetic_frames

from export.fold import fold_batchnorm
from export.frozen import FrozenConv, FrozenLIF, FrozenLinear, freeze
from export.parity import connection_count, reference_outputs, tie_flips
from models.layers import BatchNorm2d, Conv2d
from models.neuron import LIF
from models.sops import conv_fanout_map


def spike_trains(model, frames: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every LIF layer's ``[B, T, ...]`` output in the training-code model, via forward hooks."""
    trains = {}
    hooks = [
        module.register_forward_hook(lambda _m, _i, out, name=name: trains.__setitem__(name, out))
        for name, module in model.named_modules()
        if isinstance(module, LIF)
    ]
    with torch.no_grad():
        model(frames)
    for hook in hooks:
        hook.remove()
    return trains


def test_folded_conv_equals_conv_then_batchnorm():
    torch.manual_seed(1)
    conv, bn = Conv2d(3, 6, 3, 1, 1), BatchNorm2d(6).eval()
    bn.running_mean.normal_(0, 0.5)
    bn.running_var.uniform_(0.2, 3.0)
    bn.weight.data.uniform_(-2, 2)
    bn.bias.data.normal_(0, 1)
    x = torch.randn(2, 5, 3, 9, 9)
    weight, bias = fold_batchnorm(conv.weight, bn)
    folded = F.conv2d(x.flatten(0, 1), weight, bias, padding=1).unflatten(0, (2, 5))
    with torch.no_grad():
        torch.testing.assert_close(folded, bn(conv(x)), rtol=1e-5, atol=1e-5)


def test_frozen_module_holds_no_batchnorm_dropout_or_autograd_function():
    frozen = freeze(lively_model())
    kinds = [type(m).__name__ for m in frozen.layers.values()]
    assert kinds == ["FrozenConv", "FrozenLIF", "MaxPool"] * 2 + ["Flatten"] + ["FrozenLinear", "FrozenLIF"] * 2
    assert not any(isinstance(m, torch.nn.BatchNorm2d | torch.nn.Dropout) for m in frozen.modules())
    assert frozen.lif_names() == ["lif1", "lif2", "lif3", "lif4"]
    assert frozen.synaptic_names() == ["conv1", "conv2", "fc1", "fc2"]
    assert list(dict(frozen.named_parameters())) == []  # thresholds and weights are constant buffers


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_folded_spike_trains_equal_the_training_model_on_many_inputs(seed):
    model = lively_model(seed, channels=(8, 16), fc=(64,), time_steps=6)
    frozen = freeze(model)
    frames = random_frames(48, model, seed=seed)
    reference = spike_trains(model, frames)
    with torch.no_grad():
        run = frozen.run(frames)
    differing = set()
    for name, train in reference.items():
        assert train.mean() > 0.02, f"{name} barely fires: the comparison would prove little"
        differing |= set(torch.nonzero((train != run.spike_trains[name]).flatten(1).any(dim=1)).flatten().tolist())
    ref = reference_outputs(model, frames)
    ties = [i for i in differing if tie_flips(frozen, frames[i : i + 1], ref.counts(i)) is not None]
    assert ties == sorted(differing), "every folded/unfolded difference must be a threshold tie"
    assert len(ties) <= 2, f"{len(ties)} of 48 samples hit a tie: far more than float rounding explains"


def test_real_recordings_fire_the_same_in_the_folded_module():
    model = lively_model(3)
    frames = synthetic_frames(6, model)
    reference = spike_trains(model, frames)
    with torch.no_grad():
        run = freeze(model).run(frames)
    for name, train in reference.items():
        assert torch.equal(train, run.spike_trains[name]), name


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "padding"), [(7, 3, 1, 1), (8, 3, 2, 1), (9, 5, 2, 0), (6, 5, 1, 2)]
)
def test_fanout_map_matches_a_brute_force_count_of_connections(size, kernel, stride, padding):
    out_channels = 3
    counts = torch.zeros(size, size, dtype=torch.int64)
    out_size = (size + 2 * padding - kernel) // stride + 1
    for oy, ox, ky, kx in itertools.product(range(out_size), range(out_size), range(kernel), range(kernel)):
        y, x = oy * stride - padding + ky, ox * stride - padding + kx
        if 0 <= y < size and 0 <= x < size:
            counts[y, x] += out_channels
    assert torch.equal(conv_fanout_map(size, size, out_channels, kernel, stride, padding), counts)


def test_fanout_map_counts_borders_and_padding():
    fanout = conv_fanout_map(5, 5, 2, 3, 1, 1)
    assert fanout[2, 2] == 2 * 9 and fanout[0, 0] == 2 * 4 and fanout[0, 2] == 2 * 6


def test_sops_equal_an_all_ones_conv_over_each_layers_recorded_input():
    model = lively_model(4)
    frozen = freeze(model)
    frames = random_frames(5, model, seed=4, rate=0.8)
    inputs = {}
    hooks = [
        module.register_forward_pre_hook(lambda _m, args, name=name: inputs.__setitem__(name, args[0]))
        for name, module in model.named_modules()
        if name.startswith(("conv", "fc"))
    ]
    with torch.no_grad():
        model(frames)
        _, _, sops, *_ = frozen(frames)
    for hook in hooks:
        hook.remove()
    for column, name in enumerate(frozen.synaptic_names()):
        activity = inputs[name].double()
        if name.startswith("conv"):
            layer = getattr(model, name)
            ones = torch.ones_like(layer.weight, dtype=torch.float64)
            out = F.conv2d(activity.flatten(0, 1), ones, stride=layer.stride, padding=layer.padding)
            expected = out.flatten(1).sum(dim=1).reshape(5, -1).sum(dim=1)
        else:
            expected = F.linear(activity, torch.ones_like(getattr(model, name).weight, dtype=torch.float64)).sum((1, 2))
        assert torch.equal(sops[:, column], expected.long()), name
        assert torch.equal(connection_count(getattr(model, name), inputs[name]).long(), expected.long())
    assert sops[:, 0].min() > 0 and sops[:, 1:].min() > 0


def test_first_layer_sops_weight_event_counts_not_just_activity():
    model = lively_model(5)
    frozen = freeze(model)
    frames = torch.zeros(1, 4, 2, 32, 32)
    frames[0, 0, 1, 10, 10] = 7  # seven events on one interior pixel, one time bin
    frames[0, 2, 0, 0, 0] = 1  # one event in a corner
    _, _, sops, *_ = frozen(frames)
    assert sops[0, 0].item() == 7 * 4 * 9 + 1 * 4 * 4  # 4 output channels, 3x3 kernel, padding 1


def test_spike_counts_sum_each_layer_over_neurons_and_time():
    model = lively_model(6)
    frozen = freeze(model)
    frames = random_frames(3, model, seed=6)
    with torch.no_grad():
        run = frozen.run(frames)
    expected = torch.stack([run.spike_trains[n].flatten(1).sum(dim=1) for n in frozen.lif_names()], dim=1)
    assert run.spikes.dtype == torch.int64 and run.sops.dtype == torch.int64
    assert torch.equal(run.spikes, expected.long())
    assert torch.equal(run.spikes, torch.from_numpy(reference_outputs(model, frames).spikes))


def test_per_step_outputs_are_counted_independently_and_sum_to_the_totals():
    model = lively_model(8, time_steps=5)
    frozen = freeze(model)
    frames = random_frames(4, model, seed=8)
    with torch.no_grad():
        run = frozen.run(frames)
    trains = spike_trains(model, frames)  # the training model's own LIF outputs, [B, T, ...]
    expected_steps = torch.stack([trains[n].flatten(2).sum(dim=2) for n in frozen.lif_names()], dim=2)
    assert run.step_spikes.shape == (4, 5, 4) and run.step_spikes.dtype == torch.int64
    assert torch.equal(run.step_spikes, expected_steps.long())
    reference = reference_outputs(model, frames)  # SOPs per step by all-ones convolutions
    assert run.step_sops.shape == (4, 5) and torch.equal(run.step_sops, torch.from_numpy(reference.step_sops))
    assert torch.equal(run.spikes, run.step_spikes.sum(dim=1))
    assert torch.equal(run.sops.sum(dim=1), run.step_sops.sum(dim=1))
    with torch.no_grad():
        torch.testing.assert_close(run.scores, model(frames), rtol=0, atol=1e-6)
    torch.testing.assert_close(run.step_scores, torch.from_numpy(reference.step_scores), rtol=0, atol=1e-6)
    torch.testing.assert_close(run.scores, run.step_scores.mean(dim=1), rtol=0, atol=0)


def test_per_step_sops_of_the_first_layer_follow_the_events_by_hand():
    model = lively_model(5)
    conv1 = freeze(model).layers["conv1"]
    frames = torch.zeros(1, 4, 2, 32, 32)
    frames[0, 0, 1, 10, 10] = 7  # step 0: seven events on an interior pixel
    frames[0, 2, 0, 0, 0] = 1  # step 2: one event in a corner
    frames[0, 3, 0, 31, 5] = 2  # step 3: two events on the bottom edge
    sops = conv1.step_sops(frames.flatten(0, 1), 4)
    assert sops.tolist() == [[7 * 4 * 9, 0, 1 * 4 * 4, 2 * 4 * 6]]  # 4 output channels, 3x3 kernel, padding 1


def test_lif_fires_at_exactly_the_threshold():
    lif = FrozenLIF(torch.tensor([1.0, 1.0]), tau=0.5, time_steps=2)
    current = torch.tensor([[1.0, 0.5], [0.0, 0.75]])  # [B*T=2, neurons]: mem hits 1.0 exactly for neuron 0
    spikes = lif(current).reshape(1, 2, 2)
    assert spikes[0, 0].tolist() == [1.0, 0.0]
    assert spikes[0, 1].tolist() == [0.0, 1.0]  # 0.5 * 0.5 + 0.75 = 1.0: the >= rule fires


def test_frozen_layers_are_plain_modules():
    frozen = freeze(lively_model())
    assert isinstance(frozen.layers["conv1"], FrozenConv) and isinstance(frozen.layers["fc1"], FrozenLinear)
    assert frozen.layers["conv1"].bias.abs().sum() > 0  # BN's shift landed in the conv bias
