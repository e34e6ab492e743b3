"""The GPU check's machinery, run here without a GPU: the carried wheels' pins, the section files
``bench.report --merge`` splices into BENCHMARKS.md, and ``bench/gpu_check.sh --dry-run`` end to end."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench import report

ROOT = Path(__file__).resolve().parent.parent


def _pins(lines: list[str]) -> dict[str, str]:
    pins = {}
    for line in lines:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(\S+)", line.strip())
        if match:
            pins[re.sub(r"[-_.]+", "-", match[1]).lower()] = match[2]
    return pins


def test_the_carried_wheels_use_the_serving_pins_and_name_each_package_once():
    listed = subprocess.run(
        ["bash", "bench/gpu_wheels.sh", "--list"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    wheels = _pins(listed)
    serve = _pins((ROOT / "requirements" / "serve.txt").read_text().splitlines())
    assert len(wheels) == len(listed)
    shared = set(wheels) & set(serve)
    assert shared >= {"fastapi", "uvicorn", "python-multipart", "pydantic", "pydantic-settings", "lz4", "zstandard"}
    assert {name: wheels[name] for name in shared} == {name: serve[name] for name in shared}


def test_merge_replaces_sections_by_key_and_appends_new_ones(tmp_path, monkeypatch):
    benchmarks = tmp_path / "BENCHMARKS.md"
    benchmarks.write_text(
        "# Benchmarks\n\nintro\n\n<!-- bench:a -->\n## A\n\nold A\n<!-- /bench:a -->\n\n"
        "<!-- bench:b -->\n## B\n\nkept B\n<!-- /bench:b -->\n"
    )
    monkeypatch.setattr(report, "BENCHMARKS", benchmarks)
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "a.md").write_text("<!-- bench:a -->\n## A\n\nnew A\n<!-- /bench:a -->\n")
    (folder / "c-gpu.md").write_text("<!-- bench:c-gpu -->\n## C\n\nnew C\n<!-- /bench:c-gpu -->\n")
    (folder / "notes.md").write_text("not a section\n")
    assert report.merge(folder) == ["a", "c-gpu"]
    assert report.merge(folder) == ["a", "c-gpu"]  # merging again changes nothing
    text = benchmarks.read_text()
    assert text == (
        "# Benchmarks\n\nintro\n\n<!-- bench:a -->\n## A\n\nnew A\n<!-- /bench:a -->\n\n"
        "<!-- bench:b -->\n## B\n\nkept B\n<!-- /bench:b -->\n\n"
        "<!-- bench:c-gpu -->\n## C\n\nnew C\n<!-- /bench:c-gpu -->\n"
    )


def _table_rows(section: str) -> list[list[str]]:
    lines = [line for line in section.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[1:]]


@pytest.mark.slow
def test_the_dry_run_writes_every_section_the_gpu_run_would(tmp_path, monkeypatch):
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STLSNN_")}
    env |= {"OUT": str(out), "PYTHON": sys.executable}
    run = subprocess.run(["bash", "bench/gpu_check.sh", "--dry-run"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    files = sorted(p.name for p in out.iterdir())
    assert files == [
        "export-cpu-dry-run.md",
        "gpu_check.log",
        "inference-cpu-dry-run.md",
        "load-torchscript-cpu-dry-run.md",
    ]
    log = (out / "gpu_check.log").read_text()
    assert "no figure here is a GPU figure" in log and "skipped" in log  # the gpu tests skip without CUDA

    inference = (out / "inference-cpu-dry-run.md").read_text()
    assert "--device cpu" in inference and "dense GFLOP/s" in inference
    rows = _table_rows(inference)
    variants = {(row[1], row[2]) for row in rows}
    for batch in ("1", "4"):
        for variant in ("official-style eager", "folded module", "TorchScript", "ONNX Runtime CPU"):
            assert (batch, variant) in variants
        assert {v for b, v in variants if b == batch} >= {
            "TorchScript bf16 (not checked, see half precision)",
            "TorchScript fp16 (not checked, see half precision)",
        }

    load = (out / "load-torchscript-cpu-dry-run.md").read_text()
    assert "torchscript backend on device `cpu`" in load
    assert [row[0] for row in _table_rows(load)] == ["1", "4"]
    assert "Energy per request" in load and "unavailable" in load

    benchmarks = tmp_path / "BENCHMARKS.md"
    benchmarks.write_text("# Benchmarks\n")
    monkeypatch.setattr(report, "BENCHMARKS", benchmarks)
    assert report.merge(out) == ["export-cpu-dry-run", "inference-cpu-dry-run", "load-torchscript-cpu-dry-run"]
