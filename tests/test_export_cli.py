"""``python -m export``: batch export over folders, failures reported, unchanged checkpoints skipped."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from export_helpers import save_lively

from export.__main__ import find_checkpoints, main
from export.manifest import Manifest
from export.onnx_artifact import onnx_session, run_onnx
from models.architectures import build_model, rate_code


@pytest.fixture(scope="module")
def batch_run(tmp_path_factory):
    """One folder: a good checkpoint, a broken one and an official MNIST state_dict, exported once."""
    root = tmp_path_factory.mktemp("cli")
    folder = root / "checkpoints"
    save_lively(folder / "alpha", seed=21)
    save_lively(folder / "broken", seed=22)
    (folder / "broken.safetensors").write_bytes(b"not a safetensors file")
    torch.manual_seed(23)
    official = build_model("mnist")
    torch.save(official.state_dict(), folder / "official_mnist.pt")
    return root, folder, official


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main([*args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_find_checkpoints_lists_weights_in_a_folder_in_order(batch_run):
    _, folder, _ = batch_run
    assert [p.name for p in find_checkpoints([str(folder)])] == [
        "alpha.safetensors",
        "broken.safetensors",
        "official_mnist.pt",
    ]


def test_a_broken_checkpoint_fails_while_the_others_export(batch_run, capsys):
    root, folder, _ = batch_run
    code, out, err = run_cli(capsys, str(folder), "--out", str(root / "repo"), "--parity-samples", "4")
    assert code == 1
    assert "FAILED" in err and "broken.safetensors" in err and "1 of 3 checkpoint(s) failed" in err
    for name in ("alpha", "official_mnist"):
        assert (root / "repo" / name / "1" / "manifest.json").exists()
        assert (root / "repo" / name / "config.pbtxt").exists()
    assert not (root / "repo" / "broken").exists() or not any((root / "repo" / "broken").rglob("*.onnx"))
    assert "alpha/1" in out and "exported" in out and "identical" in out
    header = out.splitlines()[0].split()
    assert header == ["model", "status", "params", "neurons", "T", "files", "parity", "time"]


def test_an_unchanged_checkpoint_is_skipped_unless_forced(batch_run, capsys):
    root, folder, _ = batch_run
    manifest_path = root / "repo" / "alpha" / "1" / "manifest.json"
    before = json.loads(manifest_path.read_text())
    code, out, _ = run_cli(capsys, str(folder / "alpha.safetensors"), "--out", str(root / "repo"))
    assert code == 0 and "skipped (unchanged)" in out
    assert json.loads(manifest_path.read_text()) == before
    code, out, _ = run_cli(
        capsys,
        str(folder / "alpha.safetensors"),
        "--out",
        str(root / "repo"),
        "--force",
        "--formats",
        "onnx",
        "--parity-samples",
        "2",
    )
    after = Manifest.read(manifest_path)
    assert code == 0 and "alpha/1  exported" in out
    assert after.source_sha256 == before["source_sha256"] and after.parity["inputs"]["samples"] == 2
    assert set(after.files) == {"model.onnx"} and set(after.parity["backends"]) == {"folded", "onnxruntime"}


def test_a_changed_checkpoint_is_exported_again(capsys, tmp_path):
    checkpoint = save_lively(tmp_path / "beta", seed=31)
    args = [str(checkpoint), "--out", str(tmp_path / "repo"), "--formats", "torchscript", "--parity-samples", "2"]
    assert run_cli(capsys, *args)[0] == 0
    first = Manifest.read(tmp_path / "repo" / "beta" / "1")
    save_lively(tmp_path / "beta", seed=32)
    code, out, _ = run_cli(capsys, *args)
    assert code == 0 and "beta/1  exported" in out
    assert Manifest.read(tmp_path / "repo" / "beta" / "1").source_sha256 != first.source_sha256
    assert not (tmp_path / "repo" / "beta" / "config.pbtxt").exists()  # Triton's config is for the ONNX model


def test_official_mnist_state_dict_exports_for_rate_coded_input(batch_run):
    root, _, official = batch_run
    version = root / "repo" / "official_mnist" / "1"
    manifest = Manifest.read(version)
    assert manifest.input.encoding == "rate-coded" and manifest.input.channels == 1
    assert (manifest.input.width, manifest.input.height, manifest.time_steps) == (28, 28, 4)
    assert manifest.parity["inputs"]["kind"] == "random" and manifest.synaptic_layers[0].binary_input
    assert [layer.neurons for layer in manifest.lif_layers] == [128 * 28 * 28, 128 * 14 * 14, 2048, 100]
    spikes_in = rate_code(torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0)), 4)
    scores, spikes, sops, *_ = run_onnx(onnx_session(version / "model.onnx"), spikes_in.numpy())
    with torch.no_grad():
        np.testing.assert_allclose(scores, official.eval()(spikes_in).numpy(), rtol=0, atol=1e-6)
    assert spikes.shape == (2, 4) and sops.shape == (2, 4) and sops[:, 0].min() > 0


def test_python_dash_m_export_runs_the_cli(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "export", str(tmp_path / "missing"), "--out", str(tmp_path / "repo")],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
        check=False,
    )
    assert result.returncode == 2 and "no such checkpoint or folder" in result.stderr


def test_bad_arguments_exit_before_loading_anything(capsys, tmp_path):
    code, _, err = run_cli(capsys, str(tmp_path), "--out", str(tmp_path / "repo"))
    assert code == 2 and "no checkpoints found" in err
    a, b = save_lively(tmp_path / "a"), save_lively(tmp_path / "b")
    code, _, err = run_cli(capsys, str(a), str(b), "--out", str(tmp_path / "repo"), "--name", "x")
    assert code == 2 and "--name needs exactly one checkpoint" in err
    code, _, err = run_cli(capsys, str(a), "--out", str(tmp_path / "repo"), "--opset", "17")
    assert code == 2 and "opset 18 or later" in err
    code, _, err = run_cli(capsys, str(a), "--out", str(tmp_path / "repo"), "--formats", "tflite")
    assert code == 2 and "--formats takes onnx, torchscript and/or nir" in err
    assert not (tmp_path / "repo").exists()


def test_a_parity_failure_exits_non_zero_and_leaves_no_version_behind(capsys, tmp_path, monkeypatch):
    import export.repository

    real_run_onnx = export.repository.run_onnx

    def miscounting(session, frames):
        scores, spikes, sops, *steps = real_run_onnx(session, frames)
        return scores, spikes, sops + 1, *steps

    monkeypatch.setattr(export.repository, "run_onnx", miscounting)
    checkpoint = save_lively(tmp_path / "gamma", seed=51)
    args = [str(checkpoint), "--out", str(tmp_path / "repo"), "--formats", "onnx", "--parity-samples", "3"]
    code, out, err = run_cli(capsys, *args)
    assert code == 1 and "gamma.safetensors" in out and "FAILED" in out
    assert "ParityError: parity failed: onnxruntime: 3 sample(s) differ in spikes/sops, not by a tie" in err
    assert not (tmp_path / "repo" / "gamma" / "1").exists()
    assert not (tmp_path / "repo" / "gamma" / "config.pbtxt").exists()
    assert not list((tmp_path / "repo" / "gamma").glob(".*"))  # no staging folder left over
