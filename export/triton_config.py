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
    """The config text for ``manifest``'s model: one ``frames`` input, ``scores``/``spikes``/``sops`` outputs."""
    spec = manifest.input
    tensors = {
        "input": [("frames", "TYPE_FP32", [manifest.time_steps, spec.channels, spec.height, spec.width])],
        "output": [
            ("scores", "TYPE_FP32", [len(manifest.classes)]),
            ("spikes", "TYPE_INT64", [len(manifest.lif_layers)]),
            ("sops", "TYPE_INT64", [len(manifest.synaptic_layers)]),
        ],
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
