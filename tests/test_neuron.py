"""The STL-SNN LIF neuron: dynamics per time step and the arctan surrogate gradient."""

import math

import pytest
import torch

from models.neuron import LIF, arctan_surrogate_grad


def lif_with(thresholds: list[float], tau: float = 0.5) -> LIF:
    lif = LIF((len(thresholds),), tau=tau)
    with torch.no_grad():
        lif.thresh.copy_(torch.tensor(thresholds))
    return lif


def run(lif: LIF, currents: list[list[float]]) -> list[list[int]]:
    """Feed ``currents[t][neuron]`` for one sample; return ``spikes[t][neuron]`` as ints."""
    out = lif(torch.tensor([currents], dtype=torch.float32))
    return out[0].int().tolist()


def test_each_neuron_integrates_against_its_own_threshold():
    # Constant current 0.6, tau 0.5: mem goes 0.6, 0.9, 1.05 -> fires at t=2 for thresh 1.0,
    # every step for thresh 0.5, never for thresh 2.0.
    lif = lif_with([1.0, 0.5, 2.0])
    spikes = run(lif, [[0.6, 0.6, 0.6]] * 4)
    assert [s[0] for s in spikes] == [0, 0, 1, 0]
    assert [s[1] for s in spikes] == [1, 1, 1, 1]
    assert [s[2] for s in spikes] == [0, 0, 0, 0]


def test_fires_at_exact_equality_and_decays_by_tau():
    # 0.75 then 0.625 with tau 0.5: mem = 0.375 + 0.625 = 1.0 == thresh -> spike.
    # With tau 0.25 the same input peaks at 0.8125 and stays silent.
    assert run(lif_with([1.0]), [[0.75], [0.625]]) == [[0], [1]]
    assert run(lif_with([1.0], tau=0.25), [[0.75], [0.625]]) == [[0], [0]]
    assert run(lif_with([1.5]), [[1.0]] * 4) == [[0], [1], [0], [1]]


def test_hard_reset_to_zero_discards_the_overshoot():
    # 1.5 fires (thresh 1.0); a subtractive reset would keep 0.5 and fire again on 0.75,
    # the hard reset to 0 leaves 0.75 < 1.0.
    assert run(lif_with([1.0]), [[1.5], [0.75], [0.0], [0.0]]) == [[1], [0], [0], [0]]


def test_membrane_starts_at_zero_for_every_sample():
    lif = lif_with([1.0])
    batch = torch.tensor([[[0.9], [0.9]], [[0.5], [0.5]]])
    assert lif(batch)[:, :, 0].tolist() == [[0.0, 1.0], [0.0, 0.0]]


def test_spike_rate_is_the_mean_of_the_last_output():
    lif = lif_with([1.0, 0.5, 2.0])
    run(lif, [[0.6, 0.6, 0.6]] * 4)
    assert lif.spike_rate == pytest.approx(5 / 12)


def test_threshold_init_follows_the_official_code():
    torch.manual_seed(0)
    lif = LIF((64, 8, 8), init=2.0, heterogeneity=0.01)
    assert lif.thresh.shape == (64, 8, 8)
    assert lif.thresh.requires_grad
    assert float(lif.thresh.detach().mean()) == pytest.approx(2.0, abs=1e-4)
    assert 0 < float(lif.thresh.detach().std()) < 2e-4  # 0.01 * randn / 100


@pytest.mark.parametrize(("x", "expected"), [(0.0, 1.0), (0.5, 0.288400439), (-1.0, 0.091999668), (2.0, 0.024704523)])
def test_surrogate_gradient_matches_the_arctan_formula(x, expected):
    # alpha = 2: (alpha/2) / (1 + (alpha*pi/2 * x)^2) = 1 / (1 + (pi*x)^2)
    assert expected == pytest.approx(1 / (1 + (math.pi * x) ** 2))
    assert float(arctan_surrogate_grad(torch.tensor(x))) == pytest.approx(expected, rel=1e-6)
    lif = lif_with([1.0])
    current = torch.tensor([[[1.0 + x]]], requires_grad=True)
    lif(current).sum().backward()
    assert float(current.grad) == pytest.approx(expected, rel=1e-6)
    assert float(lif.thresh.grad) == pytest.approx(-expected, rel=1e-6)
