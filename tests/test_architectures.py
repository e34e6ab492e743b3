"""Architectures: an official ``MNIST`` state_dict loads and computes what the official forward does."""

import pytest
import torch
import torch.nn.functional as F

from models.architectures import PRESETS, build_model, layer_specs, preset, rate_code
from models.checkpoint import load_checkpoint

OFFICIAL_MNIST_SHAPES = {
    "conv1.weight": (128, 1, 5, 5),
    "bn1.weight": (128,),
    "bn1.bias": (128,),
    "bn1.running_mean": (128,),
    "bn1.running_var": (128,),
    "bn1.num_batches_tracked": (),
    "lif1.thresh": (128, 28, 28),
    "conv2.weight": (128, 128, 5, 5),
    "bn2.weight": (128,),
    "bn2.bias": (128,),
    "bn2.running_mean": (128,),
    "bn2.running_var": (128,),
    "bn2.num_batches_tracked": (),
    "lif2.thresh": (128, 14, 14),
    "fc1.weight": (2048, 6272),
    "lif3.thresh": (2048,),
    "fc2.weight": (100, 2048),
    "lif4.thresh": (100,),
}


def official_state_dict() -> dict[str, torch.Tensor]:
    """Random tensors with the key names and shapes of the official ``MNIST`` class."""
    g = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in OFFICIAL_MNIST_SHAPES.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(100)
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(shape, generator=g)
        elif key.endswith("thresh"):
            state[key] = 0.3 + 0.2 * torch.rand(shape, generator=g)
        elif key.startswith("bn") and key.endswith("weight"):
            state[key] = 1 + 0.1 * torch.randn(shape, generator=g)
        elif key.startswith("bn"):
            state[key] = 0.1 * torch.randn(shape, generator=g)
        else:
            state[key] = torch.randn(shape, generator=g) * (0.2 if key.startswith("conv") else 0.05)
    return state


def official_forward(state: dict[str, torch.Tensor], spikes: torch.Tensor, tau: float = 0.5) -> torch.Tensor:
    """The official forward in eval mode, written out with plain functional ops, step by step."""

    def lif(current, thresh):
        mem, out = torch.zeros_like(current[0]), []
        for step in current:
            mem = mem * tau + step
            spike = (mem - thresh >= 0).float()
            mem = (1 - spike) * mem
            out.append(spike)
        return torch.stack(out)

    def bn(x, name):
        return F.batch_norm(
            x, state[f"{name}.running_mean"], state[f"{name}.running_var"], state[f"{name}.weight"],
            state[f"{name}.bias"], False, 0.0, 1e-5,
        )  # fmt: skip

    results = []
    for sample in spikes:  # [T, 1, 28, 28]
        x = bn(F.conv2d(sample, state["conv1.weight"], padding=2), "bn1")
        x = F.adaptive_max_pool2d(lif(x, state["lif1.thresh"]), 14)
        x = bn(F.conv2d(x, state["conv2.weight"], padding=2), "bn2")
        x = F.adaptive_max_pool2d(lif(x, state["lif2.thresh"]), 7).flatten(1)
        x = lif(F.linear(x, state["fc1.weight"]), state["lif3.thresh"])
        x = lif(F.linear(x, state["fc2.weight"]), state["lif4.thresh"])
        results.append(F.avg_pool1d(x.unsqueeze(1), 10, 10).squeeze(1).mean(0))
    return torch.stack(results)


def test_official_mnist_state_dict_loads_and_matches_the_official_forward(tmp_path):
    state = official_state_dict()
    path = tmp_path / "official_mnist.pth"
    torch.save(state, path)
    model, card = load_checkpoint(path)
    assert card.arch == preset("mnist")
    assert card.input_encoding == "rate-coded"
    assert card.classes == [str(i) for i in range(10)]
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    images = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    spikes = rate_code(images, 4, torch.Generator().manual_seed(2))
    with torch.no_grad():
        ours = model(spikes)
    expected = official_forward(state, spikes)
    assert ours.shape == (3, 10)
    assert ours.sum() > 0, "the test weights should make the output layer fire"
    torch.testing.assert_close(ours, expected)


def test_official_state_dict_wrapped_in_a_training_checkpoint_loads(tmp_path):
    path = tmp_path / "ckpt.pt"
    torch.save({"state_dict": official_state_dict(), "epoch": 3}, path)
    model, _ = load_checkpoint(path)
    assert model.lif4.thresh.shape == (100,)


def test_a_state_dict_without_card_that_is_not_mnist_is_refused(tmp_path):
    path = tmp_path / "other.pt"
    torch.save(build_model("demo").state_dict(), path)
    with pytest.raises(ValueError, match="no model card"):
        load_checkpoint(path)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_build_and_run(name):
    config = PRESETS[name]
    model = build_model(name).eval()
    x = torch.rand(1, config.time_steps, config.in_channels, config.height, config.width) * 3
    with torch.no_grad():
        out = model(x)
    assert out.shape == (1, config.classes)
    assert ((out >= 0) & (out <= 1)).all(), "the output is a firing rate"
    fc = [s for s in layer_specs(config) if s.name.startswith("fc")]
    assert fc[-1].out_features == config.classes * config.population


def test_preset_overrides_and_unknown_names():
    config = preset("demo", channels=(4, 8), width=16, height=16, time_steps=4, population=3, classes=7)
    model = build_model(config)
    assert model.conv2.weight.shape == (8, 4, 3, 3)
    assert model.lif1.thresh.shape == (4, 16, 16)
    assert model.lif2.thresh.shape == (8, 8, 8)
    assert model.fc1.weight.shape == (128, 8 * 4 * 4)
    assert model.fc2.weight.shape == (21, 128)
    with pytest.raises(KeyError, match="unknown architecture"):
        preset("resnet")
