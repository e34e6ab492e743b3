"""NIR export: the graph, simulated step by step as its metadata says, fires exactly like the frozen module."""

from __future__ import annotations

import nir
import numpy as np
import torch
import torch.nn.functional as F
from export_helpers import lively_model, random_frames, save_lively

from export.frozen import freeze
from export.manifest import Manifest, sha256_file
from export.nir_artifact import nir_graph
from export.repository import export_checkpoint


def simulate(graph: nir.NIRGraph, frames: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Run a chain-shaped NIR graph over ``[B, T, C, H, W]``: Euler LIF with dt=1, ``>=`` and reset to v_reset."""
    order = ["input"]
    following = dict(graph.edges)
    while order[-1] in following:
        order.append(following[order[-1]])
    state: dict[str, torch.Tensor] = {}
    counts = {name: 0 for name, node in graph.nodes.items() if isinstance(node, nir.LIF)}
    votes = []
    for t in range(frames.shape[1]):
        x = frames[:, t]
        for name in order[1:-1]:
            node = graph.nodes[name]
            if isinstance(node, nir.Conv2d):
                weight, bias = torch.from_numpy(node.weight), torch.from_numpy(node.bias)
                x = F.conv2d(x, weight, bias, int(node.stride[0]), int(node.padding[0]))
            elif isinstance(node, nir.LIF):
                decay = torch.from_numpy(1 - graph.metadata["dt"] / node.tau)
                gain = torch.from_numpy(graph.metadata["dt"] * node.r / node.tau)
                v = decay * state.get(name, torch.zeros_like(x)) + gain * x
                fired = v >= torch.from_numpy(node.v_threshold)
                state[name] = torch.where(fired, torch.from_numpy(node.v_reset), v)
                x = fired.float()
                counts[name] += x.flatten(1).sum(dim=1)
            elif isinstance(node, nir.SumPool2d):
                k = int(node.kernel_size[0])
                x = F.avg_pool2d(x, k, int(node.stride[0])) * k * k
            elif isinstance(node, nir.Threshold):
                x = (x - torch.from_numpy(node.threshold) > 0).float()
            elif isinstance(node, nir.Flatten):
                x = x.flatten(1)
            elif isinstance(node, nir.Linear):
                x = x @ torch.from_numpy(node.weight).T
        votes.append(x)
    return torch.stack(votes, dim=1).mean(dim=1), counts


def test_nir_graph_simulates_to_the_frozen_modules_spikes_and_scores():
    model = lively_model(41)
    frozen = freeze(model)
    frames = random_frames(4, model, seed=41)
    graph = nir_graph(frozen, (2, 32, 32))
    scores, counts = simulate(graph, frames)
    with torch.no_grad():
        expected_scores, expected_spikes, *_ = frozen(frames)
    assert torch.equal(torch.stack([counts[n] for n in frozen.lif_names()], dim=1).long(), expected_spikes)
    torch.testing.assert_close(scores, expected_scores, rtol=0, atol=1e-6)
    assert expected_spikes[:, -1].min() > 0


def test_nir_graph_holds_per_neuron_thresholds_folded_weights_and_its_rules():
    model = lively_model(42)
    frozen = freeze(model)
    graph = nir_graph(frozen, (2, 32, 32))
    assert np.array_equal(graph.nodes["lif1"].v_threshold, model.lif1.thresh.detach().numpy())
    assert graph.nodes["lif1"].v_threshold.shape == (4, 32, 32)
    assert np.array_equal(graph.nodes["conv1"].bias, frozen.layers["conv1"].bias.numpy())
    assert isinstance(graph.nodes["pool1_sum"], nir.SumPool2d) and isinstance(graph.nodes["pool1_any"], nir.Threshold)
    assert not any(type(node).__name__ in ("BatchNorm", "Dropout") for node in graph.nodes.values())
    assert graph.metadata["spike_rule"].startswith("spike when v >= v_threshold")
    assert graph.metadata["time_steps"] == 4 and "Euler" in graph.metadata["discretisation"]


def test_nir_is_an_opt_in_format_of_the_repository(tmp_path):
    checkpoint = save_lively(tmp_path / "ck", seed=43)
    manifest = export_checkpoint(checkpoint, tmp_path / "repo", formats=("torchscript", "nir"), parity_samples=2)
    version = tmp_path / "repo" / "ck" / "1"
    assert manifest.files == {name: sha256_file(version / name) for name in ("model.pt", "model.nir")}
    assert Manifest.read(version) == manifest
    graph = nir.read(str(version / "model.nir"))
    assert set(graph.nodes) >= {"input", "conv1", "lif1", "fc2", "lif4", "vote", "output"}
