"""``python -m models.train`` end to end at a tiny size, and ``models.evaluate`` on what it wrote."""

import json
from dataclasses import asdict

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from events import FramingSpec
from export.frozen import freeze
from export.layer_inventory import layer_inventory
from export.manifest import Manifest
from models.checkpoint import ModelCard, load_checkpoint
from models.datasets.sensor_noise import SensorNoise
from models.datasets.synthetic import CameraParams, noisy_recording, split_seed
from models.evaluate import main as evaluate_main
from models.evaluate import run as evaluate_checkpoint
from models.train import evaluate, open_split, train
from service.energy import estimate, load_profiles

TINY = [
    "--arch", "demo", "--input-size", "16", "16", "-T", "4", "--channels", "8", "16",
    "--train-size", "200", "--test-size", "60", "--duration-s", "0.15", "0.3",
    "--epochs", "4", "--batch-size", "16", "--lr", "3e-3", "--seed", "0",
    "--denoise-us", "2000", "--hot-pixels", "--noise-max-hz", "5", "--hot-density", "0.001", "--quiet",
]  # fmt: skip


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("train")


@pytest.fixture(scope="module")
def trained(folder):
    return train([*TINY, "--cache-dir", str(folder / "cache"), "--out", str(folder / "tiny.safetensors")])


@pytest.fixture(scope="module")
def penalised(folder, trained):
    out = folder / "sparse.safetensors"
    return train([*TINY, "--sop-penalty", "3", "--cache-dir", str(folder / "cache"), "--out", str(out)])


def test_a_short_run_learns_far_above_chance(trained):
    _, history = trained
    assert len(history) == 4
    assert history[-1].loss < history[0].loss
    assert history[-1].test_accuracy >= 0.4, "chance is 0.1"
    assert set(history[-1].spike_rates) == {"lif1", "lif2", "lif3", "lif4"}
    assert all(0 < rate < 1 for rate in history[-1].spike_rates.values())


def test_the_checkpoint_loads_with_a_complete_card(trained):
    path, history = trained
    assert path.suffix == ".safetensors" and path.with_suffix(".json").exists()
    model, card = load_checkpoint(path)
    assert card.arch.width == card.arch.height == 16 and card.arch.time_steps == 4
    assert card.arch.classes == 10 and len(card.classes) == 10 and card.classes[0] == "swipe_left"
    assert card.sensor_size == (128, 128) and card.split_by == "number"
    assert card.learning_mode == "stl" and card.dataset == "synthetic"
    assert card.metrics["test_accuracy"] == round(history[-1].test_accuracy, 4)
    assert card.training["epochs"] == 4 and card.training["seed"] == 0
    assert card.training["command"].startswith("python -m models.train --arch demo")
    assert card.training["wall_time_s"] > 0
    assert (card.denoise_us, card.hot_pixels) == (2000, True)
    assert card.framing_spec() == FramingSpec(4, 16, 16, "number", denoise_us=2000, hot_pixels=True)
    assert card.training["noise_augmentation"] == {
        "rate_hz": [0.0, 5.0],
        "hot_density": 0.001,
        "hot_rate_hz": [200.0, 2000.0],
    }
    assert json.loads(path.with_suffix(".json").read_text())["arch"]["channels"] == [8, 16]
    assert not model.training


def test_the_card_records_the_median_training_recording_duration_and_events_for_streams(trained):
    path, _ = trained
    _, card = load_checkpoint(path)
    params, noise = CameraParams(duration_s=(0.15, 0.3)), SensorNoise.up_to(5.0, 0.001)
    spans, counts = [], []
    for i in range(200):  # every training recording as trained on (augmentation noise added): label i % 10
        t = noisy_recording(i % 10, split_seed(0, "train"), i, params, noise)["t"]
        spans.append(int(t[-1]) - int(t[0]))
        counts.append(len(t))
    assert card.window_us == int(np.median(spans)) and card.window_events == int(np.median(counts))
    assert 150_000 * 0.9 < card.window_us < 300_000


def test_evaluate_reproduces_the_reported_accuracy_on_the_same_split(trained, tmp_path):
    path, history = trained
    result = evaluate_checkpoint(path, size=60, seed=0, cache_dir=path.parent / "cache")
    assert result.recordings == 60
    assert result.accuracy == pytest.approx(history[-1].test_accuracy)
    assert set(result.per_class) == set(load_checkpoint(path)[1].classes)


def test_cards_written_before_the_noise_filters_load_with_them_off(trained):
    path, _ = trained
    card = json.loads(path.with_suffix(".json").read_text())
    del card["denoise_us"], card["hot_pixels"]
    old = ModelCard.from_dict(card)
    assert (old.denoise_us, old.hot_pixels) == (0, False)
    assert old.framing_spec() == FramingSpec(4, 16, 16)


def test_evaluate_prints_accuracy_per_noise_level_on_the_same_recordings(trained, capsys):
    path, _ = trained
    clean = evaluate_checkpoint(path, size=30, seed=0, cache_dir=None)
    evaluate_main(
        [
            str(path),
            "--size",
            "30",
            "--seed",
            "0",
            "--noise-hz",
            "0",
            "--noise-hz",
            "40",
            "--json",
            "--cache-dir",
            str(path.parent / "eval-cache"),
        ]
    )
    levels = json.loads(capsys.readouterr().out)
    assert [level["noise"] for level in levels] == [
        None,
        {"rate_hz": [40.0, 40.0], "hot_density": 0.0, "hot_rate_hz": [200.0, 2000.0]},
    ]
    assert levels[0]["accuracy"] == clean.accuracy
    assert all(level["framing"]["denoise_us"] == 2000 and level["framing"]["hot_pixels"] for level in levels)
    unfiltered = evaluate_checkpoint(path, size=30, seed=0, cache_dir=None, denoise_us=0, hot_pixels=False)
    assert unfiltered.framing == {**levels[0]["framing"], "denoise_us": 0, "hot_pixels": False}


def test_a_sop_penalty_buys_fewer_hidden_sops_and_a_lower_energy_ratio(trained, penalised, folder):
    (plain_path, plain), (path, sparse) = trained, penalised
    assert sparse[-1].penalty > 0 and plain[-1].penalty == 0
    assert sparse[-1].energy_ratio < plain[-1].energy_ratio
    hidden = {}
    for name, checkpoint in (("plain", plain_path), ("sparse", path)):
        model, card = load_checkpoint(checkpoint)
        split = open_split(
            "synthetic", None, "test", card.framing_spec(), size=60, seed=0, cache_dir=folder / "cache",
            params=CameraParams(duration_s=(0.15, 0.3)),
        )  # fmt: skip
        sops = evaluate(model, DataLoader(split, batch_size=60)).sops
        hidden[name] = float(np.median(sops[:, 1:].sum(axis=1)))  # the input layer's SOPs are the events'
    assert hidden["sparse"] < 0.75 * hidden["plain"]  # 0.62 when written (4 epochs)
    assert sparse[-1].test_accuracy >= 0.3, "chance is 0.1"
    _, card = load_checkpoint(path)
    assert card.metrics["energy_ratio"] == round(sparse[-1].energy_ratio, 4)
    assert (card.metrics["energy_profile"], card.training["sop_penalty"]) == ("45nm-fp32", 3.0)


def test_the_reported_energy_ratio_is_what_the_exported_graph_and_the_service_estimate_give(penalised, folder):
    path, history = penalised
    model, card = load_checkpoint(path)
    lif, synaptic = layer_inventory(card.arch, model.specs, binary_first_input=False)
    manifest = Manifest.from_dict(
        {
            "name": "tiny",
            "version": 1,
            "classes": card.classes,
            "time_steps": card.arch.time_steps,
            "input": {"width": 16, "height": 16, "sensor_width": 128, "sensor_height": 128},
            "layers": {"lif": [asdict(x) for x in lif], "synaptic": [asdict(x) for x in synaptic]},
        }
    )
    split = open_split(
        "synthetic", None, "test", card.framing_spec(), size=60, seed=0, cache_dir=folder / "cache",
        params=CameraParams(duration_s=(0.15, 0.3)),
    )  # fmt: skip
    frames = torch.stack([f for f, _ in split])
    sops = freeze(model)(frames)[2].numpy()
    profile = load_profiles()["45nm-fp32"]
    ratios = [1 / estimate(manifest, row, profile)["ratio"] for row in sops]
    assert float(np.median(ratios)) == pytest.approx(history[-1].energy_ratio, rel=1e-6)
