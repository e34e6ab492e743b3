"""Parity: the training-code model vs the folded module vs TorchScript vs ONNX Runtime, same frames.

The reference is the unfolded ``SpikingNet`` in eval mode; its spike and SOP counts, per time
step, are taken independently of the frozen graph (forward hooks on the real layers; SOPs by an
all-ones conv over each layer's recorded input; per-step scores from the voting layer's input).
Scores and per-step scores must agree to ``SCORE_TOLERANCE``; spikes, SOPs and their per-step
counts must be identical integers, and each backend's totals must be the sums (scores: the mean)
of its own per-step outputs. Folding changes float rounding, so a membrane that lands within
``TIE_TOLERANCE`` of its threshold may fire in one backend and not in another. A differing
sample counts as a tie only when flipping one or two such near-threshold decisions in the
folded module reproduces both sides' counts exactly; ties are reported, any other difference
fails the export.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from events import FramingSpec
from export.frozen import FrozenRun, FrozenSNN
from export.onnx_artifact import OUTPUT_NAMES
from models.architectures import SpikingNet, rate_code
from models.checkpoint import ModelCard
from models.layers import Conv2d, Linear, Vote
from models.neuron import LIF

TIE_TOLERANCE = 1e-4
SCORE_TOLERANCE = 1e-5
RANDOM_EVENT_RATE = 0.3  # mean events per pixel, polarity and time bin of the random frames


class ParityError(RuntimeError):
    """A backend disagrees with the reference beyond what threshold ties explain."""


@dataclass
class ParityInputs:
    frames: torch.Tensor  # float32 [N, T, C, H, W]
    kind: str  # "dataset" | "random"
    description: str


@dataclass
class Outputs:
    """The graph's six outputs for a batch, as NumPy arrays, in ``OUTPUT_NAMES`` order."""

    scores: np.ndarray
    spikes: np.ndarray
    sops: np.ndarray
    step_scores: np.ndarray
    step_spikes: np.ndarray
    step_sops: np.ndarray

    def counts(self, i: int) -> np.ndarray:
        """Sample ``i``'s integer outputs in one vector: what must be identical across backends."""
        return np.concatenate([self.spikes[i], self.sops[i], self.step_spikes[i].ravel(), self.step_sops[i]])

    def totals_consistent(self) -> bool:
        """Whether the totals are the sums (scores: the mean) of the per-step outputs."""
        return bool(
            np.array_equal(self.spikes, self.step_spikes.sum(axis=1))
            and np.array_equal(self.sops.sum(axis=1), self.step_sops.sum(axis=1))
            and np.abs(self.scores - self.step_scores.mean(axis=1)).max(initial=0.0) <= SCORE_TOLERANCE
        )


Backend = Callable[[torch.Tensor], tuple]


def parity_inputs(card: ModelCard, samples: int, seed: int = 0) -> ParityInputs:
    """Test recordings of the card's dataset framed with its spec when available, else random frames."""
    arch = card.arch
    spec = card.framing_spec()
    dataset_note = _dataset_frames(card, spec, samples, seed)
    if isinstance(dataset_note, ParityInputs):
        return dataset_note
    generator = torch.Generator().manual_seed(seed)
    shape = (samples, arch.time_steps, arch.in_channels, arch.height, arch.width)
    if card.input_encoding == "rate-coded":
        images = torch.rand((samples, arch.in_channels, arch.height, arch.width), generator=generator)
        frames = rate_code(images, arch.time_steps, generator)
        what = f"rate-coded random images (Bernoulli, seed {seed})"
    else:
        frames = torch.poisson(torch.full(shape, RANDOM_EVENT_RATE), generator=generator)
        what = f"random event frames (Poisson counts, mean {RANDOM_EVENT_RATE}, seed {seed})"
    return ParityInputs(frames.float(), "random", f"{what}; {dataset_note}")


def _dataset_frames(card: ModelCard, spec: FramingSpec, samples: int, seed: int) -> ParityInputs | str:
    """The card dataset's test split (needs an opener that works without a data folder), or why not."""
    import models.datasets as datasets

    opener = datasets.DATASETS.get(card.dataset)
    if opener is None:
        return f"dataset {card.dataset!r} has no registered opener"
    accepted = inspect.signature(opener).parameters
    # no disk cache: an export job may not write beside the code (a read-only image)
    wanted = {"size": samples, "seed": seed, "cache_dir": None}
    options = {k: v for k, v in wanted.items() if k in accepted}
    try:
        dataset = opener(None, "test", spec, **options)
        count = min(samples, len(dataset))
        if count == 0:
            return f"dataset {card.dataset!r} test split is empty"
        frames = torch.stack([dataset.frames(i).float() for i in range(count)])
    except Exception as error:  # a dataset that needs files on disk: fall back to random frames
        return f"dataset {card.dataset!r} unavailable ({type(error).__name__}: {error})"
    options_text = ", ".join(f"{k}={v}" for k, v in options.items() if k != "cache_dir")
    return ParityInputs(frames, "dataset", f"{card.dataset} test split ({options_text}), first {count} recordings")


def reference_outputs(model: SpikingNet, frames: torch.Tensor) -> Outputs:
    """The training-code model's outputs, with spikes and SOPs per step counted by hooks on its layers."""
    spikes: list[torch.Tensor] = []  # each [B, T]
    sops: list[torch.Tensor] = []  # each [B, T]
    votes: list[torch.Tensor] = []

    def count_spikes(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        spikes.append(output.double().flatten(2).sum(dim=2))

    def count_sops(module: nn.Module, inputs: tuple) -> None:
        sops.append(step_connection_count(module, inputs[0]))

    def keep_votes(module: Vote, inputs: tuple) -> None:
        b, t, n = inputs[0].shape
        votes.append(inputs[0].reshape(b, t, n // module.population, module.population).mean(dim=3))

    hooks = []
    for module in model.modules():
        if isinstance(module, LIF):
            hooks.append(module.register_forward_hook(count_spikes))
        elif isinstance(module, Conv2d | Linear):
            hooks.append(module.register_forward_pre_hook(count_sops))
        elif isinstance(module, Vote):
            hooks.append(module.register_forward_pre_hook(keep_votes))
    try:
        with torch.no_grad():
            scores = model.eval()(frames)
    finally:
        for hook in hooks:
            hook.remove()
    step_spikes = torch.stack(spikes, dim=2).round().long()
    layer_sops = torch.stack(sops, dim=2).round().long()  # [B, T, S]
    return Outputs(
        scores.numpy(),
        step_spikes.sum(dim=1).numpy(),
        layer_sops.sum(dim=1).numpy(),
        votes[0].numpy(),
        step_spikes.numpy(),
        layer_sops.sum(dim=2).numpy(),
    )


def connection_count(layer: nn.Module, activity: torch.Tensor) -> torch.Tensor:
    """``[B]`` synaptic events of one layer over all time steps (see ``step_connection_count``)."""
    return step_connection_count(layer, activity).sum(dim=1)


def step_connection_count(layer: nn.Module, activity: torch.Tensor) -> torch.Tensor:
    """``[B, T]`` synaptic events of one layer at each step, by running it with all-ones weights over its input.

    A conv with ones of shape ``[1, 1, k, k]`` over the channel-summed activity counts, for every
    output position, the active inputs it reads; times the output channels, that is every
    connection that carried a spike (an event count, for the first layer).
    """
    batch = activity.shape[0]
    flat = activity.double().flatten(0, 1)
    if isinstance(layer, Conv2d):
        kernel = torch.ones(1, 1, *layer.kernel_size, dtype=torch.float64)
        reads = F.conv2d(flat.sum(dim=1, keepdim=True), kernel, stride=layer.stride, padding=layer.padding)
        per_step = reads.flatten(1).sum(dim=1) * layer.out_channels
    else:
        per_step = flat.sum(dim=1) * layer.out_features
    return per_step.reshape(batch, -1)


def _in_batches(fn: Backend, frames: torch.Tensor, batch_size: int) -> Outputs:
    parts = [fn(frames[i : i + batch_size]) for i in range(0, len(frames), batch_size)]
    return Outputs(*(np.concatenate([np.asarray(p[k]) for p in parts]) for k in range(len(OUTPUT_NAMES))))


def check_parity(
    model: SpikingNet,
    frozen: FrozenSNN,
    backends: dict[str, Backend],
    inputs: ParityInputs,
    batch_size: int = 8,
) -> dict:
    """Compare every backend with the reference; returns the manifest's ``parity`` record or raises."""
    frames = inputs.frames
    reference = _in_batches(lambda x: _as_tuple(reference_outputs(model, x)), frames, batch_size)
    report = {
        "reference": "training-code SpikingNet, eval mode (BatchNorm unfolded, autograd spike function)",
        "inputs": {"kind": inputs.kind, "description": inputs.description, "samples": len(frames)},
        "batch_size": batch_size,
        "score_tolerance": SCORE_TOLERANCE,
        "tie_tolerance": TIE_TOLERANCE,
        "count_dtype": "int64",
        "reference_spikes_mean": [round(float(v), 2) for v in reference.spikes.mean(axis=0)],
        "reference_sops_mean": [round(float(v), 1) for v in reference.sops.mean(axis=0)],
        "backends": {},
    }
    failures = []
    for name, backend in backends.items():
        with torch.no_grad():
            got = _in_batches(backend, frames, batch_size)
        figures = _compare(reference, got, frozen, frames)
        report["backends"][name] = figures
        if figures["unexplained_samples"]:
            failures.append(f"{name}: {figures['unexplained_samples']} sample(s) differ in spikes/sops, not by a tie")
        if figures["scores_max_abs_diff"] > SCORE_TOLERANCE:
            failures.append(f"{name}: scores differ by {figures['scores_max_abs_diff']:.3g} > {SCORE_TOLERANCE}")
        if not figures["totals_are_step_sums"]:
            failures.append(f"{name}: scores/spikes/sops are not the mean/sums of its per-step outputs")
    report["ties"] = max((b["tie_samples"] for b in report["backends"].values()), default=0)
    report["passed"] = not failures
    if failures:
        raise ParityError("parity failed: " + "; ".join(failures))
    return report


def _as_tuple(outputs: Outputs) -> tuple:
    return tuple(getattr(outputs, name) for name in OUTPUT_NAMES)


def _compare(reference: Outputs, got: Outputs, frozen: FrozenSNN, frames: torch.Tensor) -> dict:
    """Figures of one backend against the reference; each differing sample is replayed for a tie."""
    differs = np.array([not np.array_equal(reference.counts(i), got.counts(i)) for i in range(len(frames))])
    agree = ~differs
    score_diff = np.maximum(
        np.abs(reference.scores - got.scores).max(axis=1),
        np.abs(reference.step_scores - got.step_scores).max(axis=(1, 2)),
    )
    ties = 0
    for i in np.flatnonzero(differs):
        frame = frames[i : i + 1]
        ties += all(_reachable(frozen, frame, side.counts(i)) for side in (reference, got))
    mismatched = int(differs.sum())
    return {
        "scores_max_abs_diff": float(score_diff[agree].max()) if agree.any() else 0.0,
        "scores_max_abs_diff_all": float(score_diff.max()),
        "spikes_identical": bool((reference.spikes == got.spikes).all()),
        "sops_identical": bool((reference.sops == got.sops).all()),
        "step_counts_identical": bool(
            (reference.step_spikes == got.step_spikes).all() and (reference.step_sops == got.step_sops).all()
        ),
        "totals_are_step_sums": got.totals_consistent(),
        "mismatched_samples": mismatched,
        "tie_samples": ties,
        "unexplained_samples": mismatched - ties,
    }


def _run_counts(run: FrozenRun) -> np.ndarray:
    """The first sample's integer outputs of a frozen run, laid out as ``Outputs.counts``."""
    return Outputs(*(getattr(run, name).numpy() for name in OUTPUT_NAMES)).counts(0)


def _reachable(frozen: FrozenSNN, frame: torch.Tensor, counts: np.ndarray) -> bool:
    """Whether the folded module gives these counts, as is or with near-threshold decisions flipped."""
    with torch.no_grad():
        own = _run_counts(frozen.run(frame, record=False))
    return np.array_equal(own, counts) or tie_flips(frozen, frame, counts) is not None


def tie_flips(frozen: FrozenSNN, frame: torch.Tensor, counts: np.ndarray, candidates: int = 8) -> int | None:
    """How many near-threshold spike decisions (1 or 2) must flip for ``frozen`` to give these counts.

    ``counts`` is one sample's integer outputs as ``Outputs.counts`` lays them out.

    Candidates are the decisions whose membrane was within ``TIE_TOLERANCE`` of its threshold
    in the folded module's run of this one sample; ``None`` when no flip reproduces the counts
    exactly, i.e. the difference is not a rounding tie.
    """
    with torch.no_grad():
        run = frozen.run(frame, record=True)
        near = []
        for name, gap in run.gaps.items():
            closest, index = gap.abs().flatten().topk(min(candidates, gap.numel()), largest=False)
            near += [(float(v), name, int(i)) for v, i in zip(closest, index, strict=True) if v <= TIE_TOLERANCE]
        near = sorted(near)[:candidates]
        trials = [*combinations(near, 1), *combinations(near[:4], 2)]
        for trial in trials:
            flips = {}
            for _, name, index in trial:
                mask = flips.setdefault(name, torch.zeros_like(run.gaps[name], dtype=torch.bool))
                mask.view(-1)[index] = True
            if np.array_equal(_run_counts(frozen.run(frame, record=False, flips=flips)), counts):
                return len(trial)
    return None
