"""``config.pbtxt``: the Triton model configuration beside the version folders.

Triton's ``onnxruntime_onnx`` platform reads ``<version>/model.onnx``; with ``max_batch_size``
> 0 the batch dimension is implicit, so ``dims`` list only the per-sample shape.
"""

from __future__ import annotations

from export.manifest import Manifest

DEFAULT_MAX_BATCH_SIZE = 64
DEFAULT_QUEUE_DELAY_US = 2000


def config_pbtxt(
    manifest: Manifest, max_batch_size: int = DEFAULT_MAX_BATCH_SIZE, queue_delay_us: int = DEFAULT_QUEUE_DELAY_US
) -> str:
    """The config text for ``manifest``'s model: one ``frames`` input and every graph output it lists."""
    spec = manifest.input
    steps, classes = manifest.time_steps, len(manifest.classes)
    shapes = {
        "scores": [classes],
        "spikes": [len(manifest.lif_layers)],
        "sops": [len(manifest.synaptic_layers)],
        "step_scores": [steps, classes],
        "step_spikes": [steps, len(manifest.lif_layers)],
        "step_sops": [steps],
    }
    types = {"float32": "TYPE_FP32", "int64": "TYPE_INT64"}
    tensors = {
        "input": [("frames", "TYPE_FP32", [steps, spec.channels, spec.height, spec.width])],
        "output": [(name, types[dtype], shapes[name]) for name, dtype in manifest.outputs.items()],
    }
    lines = [
        f'name: "{manifest.name}"',
        'platform: "onnxruntime_onnx"',
        f"max_batch_size: {max_batch_size}",
    ]
    for section, entries in tensors.items():
        lines.append(f"{section} [")
        blocks = [
            f'  {{\n    name: "{name}"\n    data_type: {dtype}\n    dims: [ {", ".join(map(str, dims))} ]\n  }}'
            for name, dtype, dims in entries
        ]
        lines.append(",\n".join(blocks))
        lines.append("]")
    lines += [
        "dynamic_batching {",
        f"  preferred_batch_size: [ {', '.join(map(str, sorted({max(1, max_batch_size // 2), max_batch_size})))} ]",
        f"  max_queue_delay_microseconds: {queue_delay_us}",
        "}",
    ]
    return "\n".join(lines) + "\n"
