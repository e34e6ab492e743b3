"""The exported repository: static ONNX/TorchScript graphs equal to the PyTorch reference, and their descriptions."""

from __future__ import annotations

import json
import re

import numpy as np
import onnx
import onnx.numpy_helper
import pytest
import torch
from export_helpers import random_frames, save_lively, synthetic_frames

from export.frozen import freeze
from export.manifest import Manifest, sha256_file
from export.onnx_artifact import onnx_session, run_onnx
from export.repository import export_checkpoint
from export.torchscript_artifact import load_torchscript
from models.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    checkpoint = save_lively(root / "checkpoints" / "gestures", seed=11)
    manifest = export_checkpoint(checkpoint, root / "repo", name="gestures", version=3, parity_samples=8)
    model, _ = load_checkpoint(checkpoint)
    return root / "repo" / "gestures", manifest, model


def parse_pbtxt(text: str):
    """A minimal protobuf text-format reader: ``key: value``, ``key { ... }``, ``key [ ... ]`` into dicts/lists."""
    tokens = re.findall(r'"[^"]*"|[{}\[\]:,]|[^\s{}\[\]:,"]+', text)

    def value(i):
        token = tokens[i]
        if token == "{":
            return block(i + 1, "}")
        if token == "[":
            items, i = [], i + 1
            while tokens[i] != "]":
                item, i = value(i)
                items.append(item)
                i += tokens[i] == ","
            return items, i + 1
        if token.startswith('"'):
            return token[1:-1], i + 1
        return (int(token) if re.fullmatch(r"-?\d+", token) else token), i + 1

    def block(i, end):
        fields = {}
        while i < len(tokens) and tokens[i] != end:
            key = tokens[i]
            i += 1 + (tokens[i + 1] == ":")
            fields[key], i = value(i)
        return fields, i + 1

    return block(0, None)[0]


def test_repository_has_the_triton_layout(exported):
    model_dir, manifest, _ = exported
    assert sorted(p.name for p in model_dir.iterdir()) == ["3", "config.pbtxt"]
    assert sorted(p.name for p in (model_dir / "3").iterdir()) == ["manifest.json", "model.onnx", "model.pt"]
    assert manifest.files == {name: sha256_file(model_dir / "3" / name) for name in ("model.onnx", "model.pt")}


def test_onnx_graph_is_static_default_domain_with_dynamic_batch(exported):
    model = onnx.load(exported[0] / "3" / "model.onnx")
    onnx.checker.check_model(model, full_check=True)
    ops = {(node.domain, node.op_type) for node in model.graph.node}
    assert {domain for domain, _ in ops} <= {""}
    assert not {op for _, op in ops} & {"Loop", "Scan", "If"}
    assert {"Conv", "Gemm", "MaxPool", "GreaterOrEqual"} <= {op for _, op in ops}
    assert not {op for _, op in ops} & {"BatchNormalization", "Dropout"}
    assert not model.functions
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 18
    (frames,) = model.graph.input
    dims = frames.type.tensor_type.shape.dim
    assert frames.name == "frames" and dims[0].dim_param and [d.dim_value for d in dims[1:]] == [4, 2, 32, 32]
    assert [o.name for o in model.graph.output] == [
        "scores",
        "spikes",
        "sops",
        "step_scores",
        "step_spikes",
        "step_sops",
    ]
    elem = {o.name: o.type.tensor_type.elem_type for o in model.graph.output}
    float32, int64 = onnx.TensorProto.FLOAT, onnx.TensorProto.INT64
    assert elem == {
        "scores": float32,
        "spikes": int64,
        "sops": int64,
        "step_scores": float32,
        "step_spikes": int64,
        "step_sops": int64,
    }


def test_torchscript_graph_is_static_with_no_python_ops(exported):
    module = load_torchscript(exported[0] / "3" / "model.pt")
    kinds = {node.kind() for node in module.graph.nodes()}
    assert "prim::PythonOp" not in kinds and "prim::Loop" not in kinds
    assert "aten::ge" in kinds and kinds & {"aten::_convolution", "aten::conv2d"}
    assert not list(module.parameters())  # frozen: weights and thresholds are graph constants


@pytest.mark.parametrize("batch", [1, 2, 7, 33])
def test_onnx_and_torchscript_equal_the_pytorch_reference_on_random_frames(exported, batch):
    model_dir, _, model = exported
    frames = random_frames(batch, model, seed=batch)
    assert_backends_match(model_dir, model, frames)


@pytest.fixture(scope="module")
def recordings(exported):
    return synthetic_frames(33, exported[2])


@pytest.mark.parametrize("batch", [1, 2, 7, 33])
def test_onnx_and_torchscript_equal_the_pytorch_reference_on_real_recordings(exported, recordings, batch):
    model_dir, _, model = exported
    assert_backends_match(model_dir, model, recordings[-batch:])


def test_thresholds_and_folded_weights_are_constants_of_the_onnx_graph(exported):
    model_dir, _, model = exported
    graph = onnx.load(model_dir / "3" / "model.onnx").graph
    constants = [onnx.numpy_helper.to_array(t) for t in graph.initializer]
    for lif in ("lif1", "lif2", "lif3", "lif4"):
        thresh = getattr(model, lif).thresh.detach().numpy()
        assert any(c.shape == thresh.shape and np.array_equal(c, thresh) for c in constants), lif
    folded = freeze(model).layers["conv1"].weight.numpy()
    assert any(c.shape == folded.shape and np.array_equal(c, folded) for c in constants)
    assert not any(
        c.shape == model.conv1.weight.shape and np.array_equal(c, model.conv1.weight.detach()) for c in constants
    )


def assert_backends_match(model_dir, model, frames):
    with torch.no_grad():
        reference_scores = model(frames)
        scores, spikes, sops, *steps = freeze(model)(frames)
    assert spikes[:, -1].sum() > 0, "the output layer never fires: the comparison would prove little"
    torch.testing.assert_close(scores, reference_scores, rtol=0, atol=1e-6)
    ts = load_torchscript(model_dir / "3" / "model.pt")(frames)
    ort = run_onnx(onnx_session(model_dir / "3" / "model.onnx"), frames.numpy())
    for got in (tuple(t.numpy() for t in ts), ort):
        np.testing.assert_allclose(got[0], scores.numpy(), rtol=0, atol=1e-6)
        assert got[1].dtype == np.int64 and got[2].dtype == np.int64
        np.testing.assert_array_equal(got[1], spikes.numpy())
        np.testing.assert_array_equal(got[2], sops.numpy())
        for k in (3, 4, 5):  # step_scores, step_spikes, step_sops: the folded module's, exactly
            np.testing.assert_allclose(got[k], steps[k - 3].numpy(), rtol=0, atol=1e-6 if k == 3 else 0)


def test_manifest_describes_the_graph(exported):
    model_dir, manifest, _ = exported
    reread = Manifest.read(model_dir / "3")
    assert reread == manifest
    raw = json.loads((model_dir / "3" / "manifest.json").read_text())
    for key in ("name", "version", "classes", "time_steps", "input", "layers", "energy", "training", "parity", "files"):
        assert key in raw, key
    assert (manifest.name, manifest.version, manifest.time_steps) == ("gestures", 3, 4)
    assert manifest.classes == [f"class{i}" for i in range(10)]
    assert manifest.input.width == 32 and manifest.input.sensor_width == 128 and manifest.input.channels == 2
    assert manifest.input.encoding == "event-frames" and manifest.input.layout == "B,T,C,H,W"
    assert [(layer.name, layer.neurons) for layer in manifest.lif_layers] == [
        ("lif1", 4 * 32 * 32),
        ("lif2", 8 * 16 * 16),
        ("lif3", 32),
        ("lif4", 50),
    ]
    conv1, conv2, fc1, fc2 = manifest.synaptic_layers
    assert (conv1.kind, conv1.fan_in, conv1.fan_out, conv1.macs, conv1.binary_input) == ("conv", 18, 36, 73728, False)
    assert (conv2.macs, conv2.binary_input) == (8 * 16 * 16 * 4 * 9, True)
    assert (fc1.kind, fc1.fan_in, fc1.fan_out, fc1.macs) == ("linear", 512, 32, 512 * 32)
    assert fc2.fan_out == 50 and manifest.dense_macs == 73728 + 73728 + 16384 + 1600
    assert manifest.training["dataset"] == "synthetic" and manifest.training["accuracy"] == 0.5
    assert manifest.training["mode"] == "stl" and manifest.training["time_steps"] == 4
    assert manifest.outputs == {
        "scores": "float32",
        "spikes": "int64",
        "sops": "int64",
        "step_scores": "float32",
        "step_spikes": "int64",
        "step_sops": "int64",
    }
    assert manifest.parity["passed"] and set(manifest.parity["backends"]) == {"folded", "torchscript", "onnxruntime"}
    assert manifest.energy.e_ac_pj == 0.9 and manifest.energy.e_mac_pj == 4.6


def test_config_pbtxt_matches_the_graph(exported):
    model_dir, manifest, _ = exported
    config = parse_pbtxt((model_dir / "config.pbtxt").read_text())
    assert config["name"] == "gestures" and config["platform"] == "onnxruntime_onnx"
    assert config["max_batch_size"] == 64 and "dynamic_batching" in config
    graph = onnx.load(model_dir / "3" / "model.onnx").graph
    (frames,) = config["input"]
    assert frames["name"] == graph.input[0].name and frames["data_type"] == "TYPE_FP32"
    assert frames["dims"] == [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim[1:]]
    outputs = {o["name"]: (o["data_type"], o["dims"]) for o in config["output"]}
    assert outputs == {
        "scores": ("TYPE_FP32", [10]),
        "spikes": ("TYPE_INT64", [4]),
        "sops": ("TYPE_INT64", [4]),
        "step_scores": ("TYPE_FP32", [4, 10]),
        "step_spikes": ("TYPE_INT64", [4, 4]),
        "step_sops": ("TYPE_INT64", [4]),
    }
    assert outputs["scores"][1] == [len(manifest.classes)] and frames["dims"][0] == manifest.time_steps
