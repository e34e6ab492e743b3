"""Timeline quality on fresh long recordings, and its cost against classify once per window.

``python -m bench.timeline [--recordings 50] [--seed 100]`` serves the demo with ``python -m
service`` and:

- quality: simulates ``--recordings`` long recordings of 10 gestures with idle gaps (seeds from
  ``--seed``; gestures use simulator indices no training split reaches), posts each to
  ``/v1/timeline`` with the defaults, and counts a true gesture as matched when a segment of its
  label overlaps it by at least half its length; a segment overlapping no true gesture of its
  label is false, reported per minute of idle time (time outside every gesture);
- cost: the bundled long example through one timeline request against posting each of its
  classified windows to classify (one at a time, and 8 at a time), rounds interleaved, medians.

Writes BENCHMARKS.md (key ``timeline``).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import httpx
import numpy as np

import events
from bench.load import Server, repository
from bench.report import table, write_section
from models.datasets.synthetic_sequence import LongRecording, generate_long_recording

ROOT = Path(__file__).resolve().parent.parent
LONG_EXAMPLE = ROOT / "examples" / "long_sequence.evt3.raw"


def npz_bytes(recording: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, t=recording["t"], x=recording["x"], y=recording["y"], p=recording["p"])
    return buffer.getvalue()


def _simulate(seed: int) -> tuple[bytes, LongRecording]:
    long = generate_long_recording(seed, 10)
    return npz_bytes(long.events), long


def score(long: LongRecording, segments: list[dict]) -> tuple[int, int, int, float]:
    """(true gestures, matched, false segments, idle microseconds) of one recording."""
    matched = 0
    for truth in long.segments:
        need = 0.5 * (truth.end_us - truth.start_us)
        matched += any(
            s["label"] == truth.label and min(s["end_us"], truth.end_us) - max(s["start_us"], truth.start_us) >= need
            for s in segments
        )
    false = sum(
        not any(
            t.label == s["label"] and min(s["end_us"], t.end_us) > max(s["start_us"], t.start_us) for t in long.segments
        )
        for s in segments
    )
    idle = long.duration_us - sum(t.end_us - t.start_us for t in long.segments)
    return len(long.segments), matched, false, idle


def simulate(count: int, first_seed: int) -> list[tuple[bytes, LongRecording]]:
    with ProcessPoolExecutor(min(2, os.cpu_count() or 1)) as pool:
        return list(pool.map(_simulate, range(first_seed, first_seed + count)))


def quality(server: Server, simulated: list, min_events: int | None) -> tuple[list, dict]:
    form = {} if min_events is None else {"min_events": str(min_events)}
    totals = {"gestures": 0, "matched": 0, "false": 0, "idle_us": 0.0, "windows": 0, "idle_windows": 0}
    confusions: dict[str, int] = {}
    with httpx.Client(base_url=server.url, timeout=300) as client:
        for data, long in simulated:
            body = client.post("/v1/timeline", files={"file": ("long.npz", data)}, data=form).raise_for_status().json()
            gestures, matched, false, idle = score(long, body["segments"])
            totals["gestures"] += gestures
            totals["matched"] += matched
            totals["false"] += false
            totals["idle_us"] += idle
            totals["windows"] += len(body["windows"])
            totals["idle_windows"] += sum(w["state"] == "idle" for w in body["windows"])
            for truth in long.segments:
                covering = [
                    s["label"]
                    for s in body["segments"]
                    if s["start_us"] < truth.end_us and s["end_us"] > truth.start_us
                ]
                for label in covering:
                    if label != truth.label:
                        key = f"{truth.label} -> {label}"
                        confusions[key] = confusions.get(key, 0) + 1
        settings = body["input"]
    return [totals, settings], confusions


def cost(server: Server, rounds: int) -> dict:
    recording = events.load(LONG_EXAMPLE)
    data = LONG_EXAMPLE.read_bytes()
    with httpx.Client(base_url=server.url, timeout=300) as client:
        body = client.post("/v1/timeline", files={"file": (LONG_EXAMPLE.name, data)}).raise_for_status().json()
    t = recording.events["t"]
    windows = [w for w in body["windows"] if w["state"] == "classified"]
    payloads = [
        npz_bytes(recording.events[np.searchsorted(t, w["start_us"]) : np.searchsorted(t, w["end_us"])])
        for w in windows
    ]
    timings: dict[str, list[float]] = {"timeline": [], "classify x1": [], "classify x8": []}
    with httpx.Client(base_url=server.url, timeout=300) as client:
        for _ in range(rounds):
            started = time.perf_counter()
            client.post("/v1/timeline", files={"file": (LONG_EXAMPLE.name, data)}).raise_for_status()
            timings["timeline"].append(time.perf_counter() - started)
            started = time.perf_counter()
            for payload in payloads:
                client.post("/v1/classify", files={"file": ("w.npz", payload)}).raise_for_status()
            timings["classify x1"].append(time.perf_counter() - started)
            started = time.perf_counter()
            asyncio.run(_concurrently(server.url, payloads, 8))
            timings["classify x8"].append(time.perf_counter() - started)
    return {"windows": len(windows), "all_windows": len(body["windows"]), "timings": timings}


async def _concurrently(url: str, payloads: list[bytes], concurrency: int) -> None:
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:

        async def one(payload: bytes) -> None:
            async with gate:
                (await client.post("/v1/classify", files={"file": ("w.npz", payload)})).raise_for_status()

        await asyncio.gather(*(one(p) for p in payloads))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.timeline", description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=int, default=50)
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--min-events", type=int, default=6000, help="a second quality run with this idle threshold (0: none)"
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(repository(None, Path(tmp)), Path(tmp) / "server.log")
        try:
            simulated = simulate(args.recordings, args.seed)
            runs = [quality(server, simulated, None)]
            if args.min_events:
                runs.append(quality(server, simulated, args.min_events))
            spent = cost(server, args.rounds)
        finally:
            server.stop()
    quality_rows = []
    for (totals, settings), _ in runs:
        share = totals["matched"] / totals["gestures"]
        quality_rows.append(
            [
                f"{settings['min_events']}",
                f"{totals['gestures']}",
                f"{totals['matched']} ({100 * share:.1f} %)",
                f"{totals['false']}",
                f"{totals['idle_us'] / 60e6:.1f}",
                f"{totals['false'] / (totals['idle_us'] / 60e6):.2f}",
                f"{totals['idle_windows']} of {totals['windows']}",
            ]
        )
    (_, settings), confusions = runs[0]
    medians = {k: statistics.median(v) for k, v in spent["timings"].items()}
    cost_rows = [
        [
            name,
            f"{medians[name] * 1000:.0f} ms",
            f"{spent['windows'] / medians[name]:.0f}",
            f"{medians[name] / medians['timeline']:.2f}x",
        ]
        for name in ("timeline", "classify x1", "classify x8")
    ]
    top = sorted(confusions.items(), key=lambda kv: -kv[1])[:5]
    body = (
        f"`python -m bench.timeline --recordings {args.recordings} --seed {args.seed} --rounds {args.rounds}`, "
        f"demo model through `python -m service` (ONNX Runtime, CPU).\n\n"
        f"**Quality.** {args.recordings} fresh long recordings (simulator seeds {args.seed} to "
        f"{args.seed + args.recordings - 1}, "
        f"10 random gestures each, idle gaps of 0.5-1.5 s holding background activity only), posted as .npz to "
        f"`/v1/timeline` with the defaults (window {settings['window_us']} us, stride {settings['stride_us']} us, "
        f"min_events {settings['min_events']}), then with a higher idle threshold. A true gesture is matched "
        "when a segment of its label overlaps it by "
        "at least half its length; a segment is false when it overlaps no true gesture of its label.\n\n"
        + table(
            [
                "min_events",
                "gestures",
                "matched",
                "false segments",
                "idle minutes",
                "false per idle minute",
                "idle windows",
            ],
            quality_rows,
        )
        + "\n\nMost frequent wrong labels on a gesture with the defaults (true -> segment): "
        + (", ".join(f"{k} ({v})" for k, v in top) or "none")
        + f"\n\n**Cost.** `examples/long_sequence.evt3.raw` ({spent['all_windows']} windows, {spent['windows']} "
        f"classified): one timeline request against posting each classified window's events (.npz) to classify, "
        f"one at a time and 8 at a time; medians of {args.rounds} interleaved rounds.\n\n"
        + table(["how", "time for the recording", "windows/s", "time / timeline"], cost_rows)
    )
    print(body)
    if not args.no_write:
        write_section("timeline", "Timeline: quality on long recordings and cost", body)


if __name__ == "__main__":
    main()
