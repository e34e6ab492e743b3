"""Peak memory of one step, measured in a fresh process (Linux ``/proc``), for the decode benchmarks.

A probe runs in a subprocess so nothing earlier in the benchmark inflates its peak: it warms up,
calls ``reset_peak`` (which drops the process's earlier peak RSS), does the step once and prints
a JSON line whose ``peak_kib`` is ``peak_growth_kib(baseline)``; ``run_probe`` starts it and
returns that line.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path


def status_kib(field: str) -> int:
    """One ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak() -> int:
    """Collect garbage, reset the peak RSS to the current RSS and return that baseline (KiB)."""
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")
    return status_kib("VmRSS")


def peak_growth_kib(baseline: int) -> int:
    """How far the peak RSS rose above ``baseline`` since ``reset_peak``."""
    return status_kib("VmHWM") - baseline


def run_probe(code: str) -> dict:
    """Run ``code`` in a fresh interpreter and return the JSON object on its last output line."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])
