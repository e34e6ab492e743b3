"""Decoding 1 GB files: peak memory beyond the decoded output, from a path and from a file object.

Issue 3 asks that a 1 GB file decode holding no more than the output events plus a bounded
working buffer. For each streaming format a file of about ``--gigabytes`` GB is written piece by
piece with our writers (each piece's events follow the previous piece's in time; every piece
after the first is appended without its file header), so generating it needs only one piece in
memory. Each decode runs in a fresh process that first decodes a small file of the same format
(imports, numba cache), then resets its peak RSS (Linux ``clear_refs``), decodes the big file
once through ``events.load`` and reports the peak RSS growth. Working memory = that growth minus
the output array (13 bytes per event). The output is checked against the events written.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import events
from bench.peak_memory import peak_growth_kib, reset_peak, run_probe
from bench.report import table, write_section
from events.aedat3 import write_aedat3
from events.aedat4 import MAGIC as AEDAT4_MAGIC
from events.aedat4 import write_aedat4
from events.evt2 import write_evt2
from events.evt3 import write_evt3
from events.prophesee_dat import write_dat

WORKDIR = Path("/tmp/bench_streaming")
SENSOR = (1280, 720)
PIECE_EVENTS = 4_000_000
HEADER = ["format", "source", "file GB", "M events", "decode s", "output MB", "peak RSS growth MB", "beyond output MB"]


@dataclass(frozen=True)
class Target:
    """A format and how our writer writes one piece of it to a file object."""

    name: str
    suffix: str
    write: Callable[[io.BytesIO, np.ndarray], None]
    sensor: tuple[int, int] = SENSOR
    rows_of_12: bool = False

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "_", self.name.lower()).strip("_")


TARGETS = [
    Target("EVT 2.0", ".raw", lambda f, ev: write_evt2(f, ev, SENSOR)),
    Target("EVT 3.0", ".raw", lambda f, ev: write_evt3(f, ev, SENSOR)),
    Target("EVT 3.0 (vector-dense)", ".raw", lambda f, ev: write_evt3(f, ev, SENSOR), rows_of_12=True),
    Target("DAT", ".dat", lambda f, ev: write_dat(f, ev, SENSOR)),
    Target("AEDAT 3.1", ".aedat", lambda f, ev: write_aedat3(f, ev, (346, 260), source="DAVIS346"), (346, 260)),
    Target("AEDAT 4 (lz4)", ".aedat4", lambda f, ev: write_aedat4(f, ev, (346, 260), compression="lz4"), (346, 260)),
]


def piece(index: int, sensor: tuple[int, int], rows_of_12: bool = False) -> np.ndarray:
    """Events ``index * PIECE_EVENTS ...``, about 1 µs apart, continuing the previous piece's times.

    ``rows_of_12``: runs of 12 neighbouring pixels on one row at one time (an edge sweeping the
    sensor), which EVT 3.0 packs into vector words: more events than words.
    """
    rng = np.random.default_rng(index)
    n = PIECE_EVENTS
    if rows_of_12:
        run = index * n // 12 + np.arange(n) // 12
        x = run * 12 % (sensor[0] - sensor[0] % 12) + np.arange(n) % 12
        return events.make_events(1_000 + run, x, run % sensor[1], run % 2)
    t = 1_000 + index * n + np.arange(n, dtype=np.int64)
    return events.make_events(t, rng.integers(0, sensor[0], n), rng.integers(0, sensor[1], n), rng.integers(0, 2, n))


def header_bytes(target: Target) -> int:
    """How many leading bytes of the writer's output are file header (what a 1-event file shares)."""
    one, two = io.BytesIO(), io.BytesIO()
    target.write(one, piece(0, target.sensor, target.rows_of_12)[:1])
    target.write(two, piece(1, target.sensor, target.rows_of_12)[:1])
    a, b = one.getvalue(), two.getvalue()
    same = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), min(len(a), len(b)))
    return _header_end(target, a, same)


def _header_end(target: Target, data: bytes, common: int) -> int:
    """The file header's length: the common prefix, cut back to the format's header boundary."""
    if target.name == "AEDAT 4 (lz4)":
        return len(AEDAT4_MAGIC) + 4 + int.from_bytes(data[len(AEDAT4_MAGIC) : len(AEDAT4_MAGIC) + 4], "little")
    if target.name == "AEDAT 3.1":
        return data.index(b"#!END-HEADER\r\n") + len(b"#!END-HEADER\r\n")
    end = 0
    while data.startswith(b"%", end):
        end = data.index(b"\n", end) + 1
    return end + (2 if target.name == "DAT" else 0)


def write_big(target: Target, gigabytes: float) -> tuple[Path, int, int]:
    """Write the big file (reused when already there); returns its path, event count and x sum."""
    WORKDIR.mkdir(exist_ok=True)
    path = WORKDIR / f"{target.slug}{target.suffix}"
    meta = path.with_suffix(path.suffix + ".json")
    if path.exists() and meta.exists():
        info = json.loads(meta.read_text())
        if info["gigabytes"] == gigabytes:
            return path, info["events"], info["x_sum"]
    skip = header_bytes(target)
    count = x_sum = 0
    with open(path, "wb") as out:
        index = 0
        while out.tell() < gigabytes * 1e9:
            ev = piece(index, target.sensor, target.rows_of_12)
            buffer = io.BytesIO()
            target.write(buffer, ev)
            body = buffer.getbuffer()[0 if index == 0 else skip :]
            if not len(body):
                raise RuntimeError(f"{target.name}: a piece is no longer than its header")
            out.write(body)
            count += len(ev)
            x_sum += int(ev["x"].sum(dtype=np.int64))
            index += 1
    meta.write_text(json.dumps({"gigabytes": gigabytes, "events": count, "x_sum": x_sum}))
    return path, count, x_sum


def probe(path: str, warm: str, via: str) -> None:
    """Subprocess entry: warm up, reset the peak RSS, decode ``path`` once, print the figures."""
    limits = events.DecodeLimits(max_events=2_000_000_000)
    events.load(warm, limits=limits)
    baseline = reset_peak()
    start = time.perf_counter()
    if via == "file object":
        with open(path, "rb") as stream:
            recording = events.load(stream, limits=limits)
    else:
        recording = events.load(path, limits=limits)
    seconds = time.perf_counter() - start
    ev = recording.events
    report = {"events": len(ev), "x_sum": int(ev["x"].sum(dtype=np.int64)), "seconds": seconds}
    report["peak_kib"] = peak_growth_kib(baseline)
    report["monotonic"] = bool(np.all(np.diff(ev["t"][:: max(1, len(ev) // 1_000_000)]) >= 0))
    print(json.dumps(report))


def measure(target: Target, gigabytes: float, via: str) -> list:
    path, count, x_sum = write_big(target, gigabytes)
    warm = WORKDIR / f"warm{target.suffix}"
    buffer = io.BytesIO()
    target.write(buffer, piece(0, target.sensor, target.rows_of_12)[:5_000])
    warm.write_bytes(buffer.getvalue())
    got = run_probe(f"from bench.streaming import probe; probe({str(path)!r}, {str(warm)!r}, {via!r})")
    if (got["events"], got["x_sum"]) != (count, x_sum) or not got["monotonic"]:
        raise SystemExit(f"{target.name}: decoded {got['events']} events, wrote {count}")
    output_mb = count * events.EVENT_DTYPE.itemsize / 1e6
    peak_mb = got["peak_kib"] * 1024 / 1e6
    return [
        target.name,
        via,
        f"{path.stat().st_size / 1e9:.2f}",
        f"{count / 1e6:.0f}",
        f"{got['seconds']:.1f}",
        f"{output_mb:,.0f}",
        f"{peak_mb:,.0f}",
        f"{peak_mb - output_mb:+,.1f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gigabytes", type=float, default=1.0)
    parser.add_argument("--formats", nargs="*", help="format names as in the table (default: all)")
    parser.add_argument("--keep", action="store_true", help="keep the big files in /tmp/bench_streaming")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    rows = []
    for target in TARGETS:
        if args.formats and target.name not in args.formats:
            continue
        for via in ("path", "file object"):
            rows.append(measure(target, args.gigabytes, via))
            print(rows[-1], flush=True)
        if not args.keep:
            for stale in WORKDIR.glob(f"{target.slug}.*"):
                stale.unlink()
    body = (
        f"`python -m bench.streaming --gigabytes {args.gigabytes}`: one file of about {args.gigabytes} GB per "
        f"format, written in pieces of {PIECE_EVENTS:,} random events; each decoded once by `events.load` in a "
        "fresh process, from a path and from an open file object. 'peak RSS growth' is measured from just "
        "before the decode; 'beyond output' subtracts the decoded array (13 bytes per event), i.e. the "
        "decoder's working memory at its peak. 'decode s' is wall time including the file reads; the first "
        "decode of each file ran right after it was written (likely still being flushed to disk) and is "
        "slower: this table is about memory, decode speeds are in the decoding sections.\n\n" + table(HEADER, rows)
    )
    print(body)
    if not args.no_write:
        write_section("streaming", "Decoding 1 GB files: memory beyond the output", body)


if __name__ == "__main__":
    main()
