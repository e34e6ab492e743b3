"""How long one upload can hold the event loop under its decode budget (``service.ingest``).

Times ``service.ingest.prepare`` (decode, noise filters, framing, as a request on the loop runs it)
on the worst shapes the budget admits: recordings stating a Gen4 1280x720 sensor (the noise
filters' per-pixel state is sized to it), EVT 2.1 and EVT 3.0 packed with vector words (32
neighbouring pixels per word) and AEDAT 4 of random pixels (ZSTD and LZ4), at a handful of events
and near the ``INLINE_MAX_EVENTS`` budget, against the demo model's manifest (noise filters on).

Run: ``python -m bench.inline_budget --repository DIR`` (default: ./model_repository or a demo export);
``--write`` puts the table into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import events
from bench.load import newest_version, repository
from bench.report import table, write_section
from bench.stream_decode import SENSOR, recording
from events.aedat4 import write_aedat4
from events.evt3 import write_evt3
from events.evt21 import write_evt21
from export.manifest import Manifest
from service.ingest import INLINE_MAX_BYTES, INLINE_MAX_EVENTS, IngestLimits, inline_limits, prepare

GENEROUS = IngestLimits(max_events=10_000_000, max_duration_us=60_000_000, max_decompressed_bytes=1 << 28)


def vectors(n: int) -> np.ndarray:
    """``n`` events (a multiple of 32) in runs of 32 neighbouring pixels of one row at one time."""
    t = np.repeat(np.arange(n // 32) * 10, 32)
    return events.make_events(t, np.arange(n) % 32 + 100, np.repeat(np.arange(n // 32) % SENSOR[1], 32), 1)


def uploads(n: int) -> dict[str, bytes]:
    files = {
        "EVT 2.1, vector words": lambda f: write_evt21(f, vectors(n), SENSOR),
        "EVT 3.0, vector words": lambda f: write_evt3(f, vectors(n), SENSOR),
        "AEDAT 4 ZSTD, random pixels": lambda f: write_aedat4(f, recording(n), SENSOR, compression="zstd"),
        "AEDAT 4 LZ4, random pixels": lambda f: write_aedat4(f, recording(n), SENSOR, compression="lz4"),
    }
    out = {}
    for label, write in files.items():
        buffer = io.BytesIO()
        write(buffer)
        out[label] = buffer.getvalue()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repository", help="model repository (default ./model_repository or a demo export)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    budget = inline_limits(GENEROUS)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        manifest = Manifest.read(newest_version(repository(args.repository, Path(scratch)), "demo"))
        for n in (1_024, 50_016, INLINE_MAX_EVENTS):
            for label, data in uploads(n).items():
                times = []
                for _ in range(args.repeats + 1):
                    started = time.perf_counter()
                    try:
                        prepare(io.BytesIO(data), None, None, None, manifest, budget)
                        outcome = "framed on the loop"
                    except events.LimitExceededError:
                        outcome = "stopped by the budget, retried in a thread"
                    times.append(time.perf_counter() - started)
                ms = statistics.median(times[1:]) * 1000
                rows.append([label, f"{n:,}", f"{len(data) / 1024:.0f}", f"{ms:.1f}", outcome])
                print(rows[-1], flush=True)
    command = " ".join(["python -m bench.inline_budget", *(sys.argv[1:] if argv is None else argv)])
    body = (
        f"`{command}`: `service.ingest.prepare` under the event loop's budget ({budget.max_events:,} events, "
        f"{budget.max_decompressed_bytes >> 20} MiB inflated) with the demo model's manifest (noise filters on), "
        f"on recordings that state a Gen4 {SENSOR[0]}x{SENSOR[1]} sensor; median of {args.repeats} after one "
        "warm-up. 'ms on the loop' is how long the upload holds the event loop before it answers or is handed "
        f"to a thread; uploads over {INLINE_MAX_BYTES >> 10} KiB (the larger LZ4 rows) go to a thread before "
        "any of this, and are timed here only for the decode cost.\n\n"
        + table(["upload", "events", "KiB", "ms on the loop", "outcome"], rows)
    )
    print(body)
    if args.write:
        write_section("inline-budget", "Decoding on the event loop: what one upload can cost it", body)


if __name__ == "__main__":
    main()
