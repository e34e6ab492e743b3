"""``python -m export SOURCE... --out DIR``: batch export of checkpoints into a model repository.

Each SOURCE is a checkpoint (``.safetensors`` with its ``.json`` card, or an official ``.pt``/``.pth``
state_dict) or a folder of them. Every checkpoint is tried; failures are reported at the end
and make the exit code non-zero without stopping the others.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from models.checkpoint import WEIGHT_SUFFIXES


def find_checkpoints(sources: list[str]) -> list[Path]:
    """Every checkpoint named or inside a named folder (not recursive), in a stable order."""
    found: list[Path] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
        elif path.exists():
            found.append(path)
        else:
            raise FileNotFoundError(f"no such checkpoint or folder: {source}")
    return found


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m export", description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="+", metavar="SOURCE", help="checkpoint file or folder of checkpoints")
    parser.add_argument("--out", required=True, type=Path, help="model repository folder")
    parser.add_argument("--name", help="model name (one checkpoint only; default: the file name)")
    parser.add_argument("--version", type=int, default=1, help="version folder (default 1)")
    parser.add_argument(
        "--formats",
        default="onnx,torchscript",
        help="comma-separated onnx, torchscript, nir (default onnx,torchscript)",
    )
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset (>= 18; default 18)")
    parser.add_argument("--parity-samples", type=int, default=32, help="recordings in the parity check (default 32)")
    parser.add_argument("--max-batch-size", type=int, default=64, help="Triton max_batch_size (default 64)")
    parser.add_argument("--force", action="store_true", help="re-export even when the checkpoint is unchanged")
    return parser


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        checkpoints = find_checkpoints(args.sources)
    except FileNotFoundError as error:
        print(error, file=sys.stderr)
        return 2
    if not checkpoints:
        print("no checkpoints found in " + ", ".join(args.sources), file=sys.stderr)
        return 2
    if args.name and len(checkpoints) > 1:
        print(f"--name needs exactly one checkpoint, got {len(checkpoints)}", file=sys.stderr)
        return 2
    formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
    if not formats or set(formats) - {"onnx", "torchscript", "nir"}:
        print(f"--formats takes onnx, torchscript and/or nir, not {args.formats!r}", file=sys.stderr)
        return 2
    if args.opset < 18:
        print(f"--opset {args.opset}: the torch.export-based ONNX exporter needs opset 18 or later", file=sys.stderr)
        return 2

    from export.repository import ExportOptions, export_one  # torch loads here, after the arguments are valid

    options = ExportOptions(
        name=args.name,
        version=args.version,
        formats=formats,
        opset=args.opset,
        parity_samples=args.parity_samples,
        force=args.force,
        max_batch_size=args.max_batch_size,
    )
    rows, failures = [], []
    for checkpoint in checkpoints:
        started = time.perf_counter()
        try:
            result = export_one(checkpoint, args.out, options)
        except Exception as error:
            failures.append((checkpoint, error))
            rows.append([checkpoint.name, "FAILED", "", "", "", "", "", f"{time.perf_counter() - started:.1f} s"])
            print(f"FAILED {checkpoint}: {type(error).__name__}: {error}", file=sys.stderr)
            continue
        rows.append(_row(result))
    print(_table(["model", "status", "params", "neurons", "T", "files", "parity", "time"], rows))
    if failures:
        print(f"{len(failures)} of {len(checkpoints)} checkpoint(s) failed", file=sys.stderr)
        return 1
    return 0


def _row(result) -> list[str]:
    manifest = result.manifest
    parity = manifest.parity
    backends = parity.get("backends", {})
    worst = max((b["scores_max_abs_diff"] for b in backends.values()), default=0.0)
    exact = all(b["spikes_identical"] and b["sops_identical"] for b in backends.values())
    parity_text = (
        f"{len(backends)} backends on {parity['inputs']['samples']} {parity['inputs']['kind']}: "
        f"scores {worst:.1e}, counts {'identical' if exact else 'differ'}, ties {parity.get('ties', 0)}"
    )
    return [
        f"{manifest.name}/{manifest.version}",
        "skipped (unchanged)" if result.skipped else "exported",
        f"{result.parameters:,}",
        f"{sum(layer.neurons for layer in manifest.lif_layers):,}",
        str(manifest.time_steps),
        ", ".join(f"{name} {_size(size)}" for name, size in result.sizes.items()),
        parity_text,
        f"{result.seconds:.1f} s",
    ]


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
