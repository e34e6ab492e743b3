"""STL learns weights and thresholds, SL only weights, TL only thresholds (weights stay at init)."""

import pytest
import torch
import torch.nn.functional as F

from models.architectures import apply_learning_mode, build_model, preset


def backward_once(mode: str) -> dict[str, torch.Tensor | None]:
    torch.manual_seed(0)
    model = build_model(preset("demo", height=16, width=16, time_steps=4, thresh_init=0.3))
    apply_learning_mode(model, mode)
    x = torch.rand(4, 4, 2, 16, 16) * 4
    loss = F.mse_loss(model(x), F.one_hot(torch.tensor([0, 1, 2, 3]), 10).float())
    loss.backward()
    return {name: p.grad for name, p in model.named_parameters()}


THRESHOLDS = {"lif1.thresh", "lif2.thresh", "lif3.thresh", "lif4.thresh"}
WEIGHTS = {"conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight"} | {
    f"bn{i}.{k}" for i in (1, 2) for k in ("weight", "bias")
}


@pytest.mark.parametrize(
    ("mode", "learning"),
    [("stl", THRESHOLDS | WEIGHTS), ("sl", WEIGHTS), ("tl", THRESHOLDS)],
)
def test_gradients_reach_exactly_the_learning_parameters(mode, learning):
    grads = backward_once(mode)
    assert set(grads) == THRESHOLDS | WEIGHTS
    with_grad = {name for name, g in grads.items() if g is not None}
    assert with_grad == learning
    for name in with_grad:
        assert grads[name].abs().sum() > 0, f"{name} got an all-zero gradient in {mode}"


def test_apply_learning_mode_returns_what_the_optimiser_should_update():
    model = build_model("demo")
    assert len(apply_learning_mode(model, "tl")) == 4
    assert len(apply_learning_mode(model, "sl")) == 8
    assert len(apply_learning_mode(model, "stl")) == 12
    with pytest.raises(KeyError):
        apply_learning_mode(model, "weights")
