"""Mutation testing (mutmut 3) of the modules where a silent regression hurts most, one at a time.

Each module is mutated against only the test files that specify it, so a run stays tractable on
a small machine: ``.mutation/<name>/`` holds a copy of the code and a ``pyproject.toml`` whose
``[tool.mutmut]`` names that one module and those tests. Every run starts from scratch: mutmut
keeps a survivor's cached verdict even after new tests are added, which would understate the
score. Only in-process tests count (mutmut switches mutants inside the test process; a server
started as a subprocess runs the unmutated code). Not part of ``make test``: ``make mutation``
runs it (see TESTING.md).

Usage: ``python tools/mutation.py [name ...]`` (default: every target, smallest first);
``--report`` prints the scores of what has run without running anything.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".mutation"
COPIED = ("events", "models", "export", "service", "bench", "tests", "examples")


@dataclass(frozen=True)
class Target:
    """One module under mutation and the test files that specify it."""

    name: str
    module: str
    tests: tuple[str, ...]


TARGETS = (
    Target("upload_limit", "service/upload_limit.py", ("tests/test_upload_limit.py",)),
    Target(
        "energy",
        "models/energy.py",
        ("tests/test_energy.py", "tests/test_sparsity.py", "tests/test_service_problems.py"),
    ),
    Target("ingest", "service/ingest.py", ("tests/test_ingest.py",)),
    Target("batcher", "service/batcher.py", ("tests/test_service_batcher.py",)),
    Target("parity", "export/parity.py", ("tests/test_parity_rules.py", "tests/test_export_parity.py")),
    Target(
        "classify",
        "service/routes/classify.py",
        (
            "tests/test_service_settings.py",
            "tests/test_classify_fast_path.py",
            "tests/test_classify_result.py",
            "tests/test_classify_requests.py",
        ),
    ),
    Target(
        "framing",
        "events/framing.py",
        ("tests/test_framing.py", "tests/test_windows.py", "tests/test_denoise.py"),
    ),
)


def _config(target: Target) -> str:
    tests = ", ".join(json.dumps(t) for t in target.tests)
    return (
        "[tool.pytest.ini_options]\n"
        'pythonpath = ["."]\n'
        "[tool.mutmut]\n"
        f'source_paths = ["{target.module.split("/")[0]}"]\n'
        f'only_mutate = ["{target.module}"]\n'
        'also_copy = ["events", "models", "export", "service", "bench", "examples"]\n'
        f"pytest_add_cli_args_test_selection = [{tests}]\n"
        'pytest_add_cli_args = ["-q", "-p", "no:cacheprovider", "-p", "no:randomly"]\n'
    )


def prepare(target: Target) -> Path:
    """A fresh ``.mutation/<name>`` from the working tree."""
    folder = WORK / target.name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis")
    for name in COPIED:
        shutil.copytree(ROOT / name, folder / name, ignore=ignore)
    (folder / "pyproject.toml").write_text(_config(target))
    return folder


def run(target: Target) -> int:
    folder = prepare(target)
    command = ["nice", "-n", "15", sys.executable, "-m", "mutmut", "run", "--max-children", "1"]
    # each mutant is a fresh test session: the service tests take the demo export from a cache
    # (keyed by checkpoint and exporter code, see tests/service_harness.py) instead of redoing it
    # and PyTorch runs single-threaded: mutmut forks each mutant's process from one that has run
    # the tests once, and an OpenMP thread pool does not survive a fork (the children hang)
    env = os.environ | {
        "PYTHONDONTWRITEBYTECODE": "1",
        "DEMO_EXPORT_CACHE": str(WORK / "export-cache"),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    return subprocess.call(command, cwd=folder, env=env)


def score(target: Target) -> dict | None:
    """mutmut's counts for the module (None before its first run)."""
    folder = WORK / target.name
    if not (folder / "mutants").exists():
        return None
    subprocess.run([sys.executable, "-m", "mutmut", "export-cicd-stats"], cwd=folder, capture_output=True, check=True)
    stats = json.loads((folder / "mutants" / "mutmut-cicd-stats.json").read_text())
    return stats


def report() -> None:
    for target in TARGETS:
        stats = score(target)
        if stats is None:
            print(f"{target.module:32} not run")
            continue
        killed, total = stats["killed"], stats["total"]
        rest = {k: v for k, v in stats.items() if k not in ("killed", "total") and v}
        print(f"{target.module:32} killed {killed}/{total} {rest}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="targets to run (default: all)")
    parser.add_argument("--report", action="store_true", help="print the scores of what has run")
    args = parser.parse_args()
    if args.report:
        report()
        return
    chosen = [t for t in TARGETS if not args.names or t.name in args.names]
    if unknown := set(args.names) - {t.name for t in TARGETS}:
        parser.error(f"unknown targets {sorted(unknown)}; known: {[t.name for t in TARGETS]}")
    for target in chosen:
        print(f"== {target.module} against {' '.join(target.tests)}", flush=True)
        if code := run(target):
            sys.exit(code)
    report()


if __name__ == "__main__":
    main()
