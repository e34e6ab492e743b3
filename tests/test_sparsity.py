"""Energy-aware training's pieces, with the numbers worked out by hand.

The pricing is the service's (``models.energy``): the same two-layer example as
``test_energy.py`` (``conv1`` fed event counts, 100 dense MACs; ``fc1`` fed spikes, 40 MACs;
T = 3; 2 pJ per accumulate, 10 pJ per MAC) must give training's ratio as the inverse of the
response's ``ratio``. The SOP counts are the exporter's, checked on a strided stem by hand.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from export.frozen import freeze
from export.manifest import Manifest
from models.architectures import ArchConfig, LIFSpec, SpikingNet, layer_specs, preset
from models.energy import EnergyProfile
from models.sops import ActivityMeter, fanouts
from models.sparsity import RateTarget, SopEnergy
from service.energy import estimate

SYNAPTIC = [
    {"name": "conv1", "kind": "conv", "fan_in": 18, "fan_out": 4, "macs": 100, "binary_input": False},
    {"name": "fc1", "kind": "linear", "fan_in": 10, "fan_out": 4, "macs": 40, "binary_input": True},
]


def profile(nonbinary_input: str) -> EnergyProfile:
    return EnergyProfile("p", 2.0, 10.0, nonbinary_input, "hand-made", ())


@pytest.fixture(scope="module")
def manifest() -> Manifest:
    return Manifest.from_dict(
        {
            "name": "m",
            "version": 1,
            "classes": ["a"],
            "time_steps": 3,
            "input": {"width": 4, "height": 4, "sensor_width": 4, "sensor_height": 4},
            "layers": {"lif": [], "synaptic": SYNAPTIC},
        }
    )


@pytest.mark.parametrize(("rule", "snn_pj"), [("ac", 2.0 * 7 + 2.0 * 5), ("mac", 10.0 * 100 * 3 + 2.0 * 5)])
def test_training_prices_sops_exactly_as_the_service_does(manifest, rule, snn_pj):
    energy = SopEnergy(manifest.synaptic_layers, profile(rule), time_steps=3)
    ratios = energy.ratios(np.array([[7, 5], [0, 0]]))
    assert ratios[0] == pytest.approx(snn_pj / 1400)
    assert ratios[0] == pytest.approx(1 / estimate(manifest, np.array([7, 5]), profile(rule))["ratio"])
    assert ratios[1] == pytest.approx((0.0 if rule == "ac" else 3000.0) / 1400)


def test_the_penalty_is_the_sop_priced_part_of_the_ratio_and_skips_layers_charged_as_macs(manifest):
    sops = torch.tensor([[7.0, 5.0], [1.0, 3.0]], requires_grad=True)
    ac = SopEnergy(manifest.synaptic_layers, profile("ac"), 3).penalty(sops)
    assert float(ac) == pytest.approx(((7 + 5) * 2 / 1400 + (1 + 3) * 2 / 1400) / 2)
    mac = SopEnergy(manifest.synaptic_layers, profile("mac"), 3).penalty(sops)
    assert float(mac) == pytest.approx((5 * 2 / 1400 + 3 * 2 / 1400) / 2)
    mac.backward()
    assert sops.grad.flatten().tolist() == pytest.approx([0.0, 2 / 1400 / 2, 0.0, 2 / 1400 / 2])


def test_a_rate_target_penalises_only_firing_above_it():
    target = RateTarget(torch.tensor([0.2, 0.2]))
    assert float(target.penalty(torch.tensor([0.3, 0.1]))) == pytest.approx(0.1**2)
    assert float(target.penalty(torch.tensor([0.05, 0.2]))) == 0.0


def test_a_strided_stem_halves_the_first_layer_and_feeds_each_pixel_to_fewer_outputs():
    config = preset("demo", width=64, height=64, stem_stride=2)
    shapes = {s.name: s.shape for s in layer_specs(config) if isinstance(s, LIFSpec)}
    assert shapes == {"lif1": (8, 32, 32), "lif2": (16, 16, 16), "lif3": (128,), "lif4": (50,)}
    fanout = fanouts(config, layer_specs(config))["conv1"]
    # 3x3 kernel, stride 2, padding 1: output o reads rows 2o-1..2o+1, so row 0 is read by o=0 only and
    # row 1 by o=0 and o=1; 8 output channels each.
    assert fanout[0, 0] == 1 * 1 * 8 and fanout[1, 1] == 2 * 2 * 8 and fanout[1, 2] == 2 * 1 * 8
    assert ArchConfig.from_dict({"channels": [8]}).stem_stride == 1  # cards written before the field


def test_training_counts_the_sops_the_exported_graph_counts():
    torch.manual_seed(0)
    model = SpikingNet(preset("demo", width=32, height=32, stem_stride=2, thresh_init=0.3)).eval()
    frames = torch.poisson(torch.full((3, 8, 2, 32, 32), 0.4))
    run = ActivityMeter(model)(frames)
    exported = freeze(model)(frames)
    assert torch.equal(run.sops.round().long(), exported[2])
    assert torch.allclose(run.scores, exported[0], atol=1e-6)
    assert run.sops[:, 1:].sum() > 0, "the hidden layers fired: the comparison saw more than the input"
    spikes = exported[1].sum(0).double()
    neurons = torch.tensor([float(np.prod(s.shape)) for s in model.specs if isinstance(s, LIFSpec)])
    assert torch.allclose(run.rates.double(), spikes / (neurons * 8 * 3))


def test_sop_counts_that_do_not_match_the_layers_are_refused_not_truncated(manifest):
    energy = SopEnergy(manifest.synaptic_layers, profile("ac"), 3)
    with pytest.raises(ValueError):
        energy.ratios(np.array([[7]]))
    with pytest.raises(ValueError):
        energy.ratios(np.array([[7, 5, 1]]))
