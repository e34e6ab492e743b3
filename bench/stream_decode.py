"""Incremental decoding (``events.StreamDecoder`` fed 64 KB chunks) against ``events.load`` on the same bytes.

One file per streaming format, written by our writers from one recording (``--events`` events,
~1 µs apart, Gen4 1280x720, runs of 1-4 neighbouring pixels per row and time so the EVT 2.1 / 3.0
writers emit vectors as sensors do): EVT 2.0, EVT 2.1, EVT 3.0, AEDAT 4 with LZ4 and with ZSTD
packets of 10,000 events (DV's default packet size is of that order), and packed 13-byte records.
Both sides start from the file's bytes in memory: ``events.load(data, format=...)`` decodes it in
one call (its own 2 MB pieces), the stream decoder is fed ``--chunk``-byte memoryview slices of it
(no copy per chunk, as a socket's buffers would be handed over). Its pieces are timed two ways:
kept (all events held at the end, as with ``load``; every piece is fresh memory) and dropped as
they come (a live consumer that frames each piece and lets it go, so memory is reused). They are
concatenated once, untimed, to check they equal ``load``'s events before timing. Each side runs
once to warm up, then ``--repeats`` times alternating; medians and the ratio stream speed /
whole-file speed (the target is >= 0.8).

Floor, for packed records (whose events are the file's bytes): each piece's bytes copied into a new
array and kept, nothing decoded, and one copy of the whole file, timed in the same alternation: no
stream decoder that hands out fresh arrays per piece can beat the first. The load average at the
end is printed because other jobs on the machine move the packed-record ratio: its ``load`` is
memory-bound and slows more than the stream (on 2 cores: 0.73-0.77x at a load average near 0.9,
0.86-0.96x near 2.8), so compare runs made at similar loads.

Run: ``nice .venv/bin/python -m bench.stream_decode`` (writes the ``stream-decode`` section of
BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import time
from functools import partial

import numpy as np

import events
from bench.report import table, write_section
from events.aedat4 import write_aedat4
from events.evt2 import write_evt2
from events.evt3 import write_evt3
from events.evt21 import write_evt21

SENSOR = (1280, 720)
TARGET = 0.8


def recording(n: int, seed: int = 0) -> np.ndarray:
    """Events in runs of 1-4 neighbouring pixels of one row at one time, ~1 µs between runs."""
    rng = np.random.default_rng(seed)
    runs = rng.integers(1, 5, n)
    starts = np.cumsum(runs) - runs
    runs = runs[: int(np.searchsorted(starts, n))]
    m = len(runs)
    t = np.repeat(1_000 + np.cumsum(rng.poisson(1.0 * runs.mean(), m)), runs)[:n]
    x0 = np.repeat(rng.integers(0, SENSOR[0] - 4, m), runs)[:n]
    step = (np.arange(n) - np.repeat(np.cumsum(runs) - runs, runs)[:n]).astype(np.int64)
    y = np.repeat(rng.integers(0, SENSOR[1], m), runs)[:n]
    p = np.repeat(rng.integers(0, 2, m), runs)[:n]
    return events.make_events(t, x0 + step, y, p)


def files(n: int) -> dict[str, tuple[str, bytes]]:
    """``label -> (format, bytes)``."""
    ev = recording(n)
    out = {}
    for label, fmt, write in (
        ("EVT 2.0", "evt2", lambda f: write_evt2(f, ev, SENSOR)),
        ("EVT 2.1", "evt21", lambda f: write_evt21(f, ev, SENSOR)),
        ("EVT 3.0", "evt3", lambda f: write_evt3(f, ev, SENSOR)),
        ("AEDAT 4 (LZ4)", "aedat4", lambda f: write_aedat4(f, ev, SENSOR, compression="lz4")),
        ("AEDAT 4 (ZSTD)", "aedat4", lambda f: write_aedat4(f, ev, SENSOR, compression="zstd")),
        ("packed records", "events", lambda f: events.write_events(f, ev)),
    ):
        buffer = io.BytesIO()
        write(buffer)
        out[label] = (fmt, buffer.getvalue())
    return out


def whole(fmt: str, data: bytes) -> np.ndarray:
    return events.load(data, format=fmt).events


def streamed(fmt: str, data: bytes, chunk: int) -> list[np.ndarray]:
    decoder = events.StreamDecoder(fmt)
    view = memoryview(data)
    pieces = [decoder.feed(view[a : a + chunk]) for a in range(0, len(data), chunk)]
    pieces.append(decoder.close())
    return pieces


def streamed_dropping(fmt: str, data: bytes, chunk: int) -> int:
    decoder = events.StreamDecoder(fmt)
    view = memoryview(data)
    for a in range(0, len(data), chunk):
        decoder.feed(view[a : a + chunk])
    decoder.close()
    return decoder.events_decoded


def copied_pieces(data: bytes, chunk: int) -> list[np.ndarray]:
    view = memoryview(data)
    return [np.frombuffer(view[a : a + chunk], np.uint8).copy() for a in range(0, len(data), chunk)]


def copied_whole(data: bytes) -> np.ndarray:
    return np.frombuffer(data, np.uint8).copy()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--chunk", type=int, default=64 << 10, help="bytes per feed()")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--no-write", action="store_true", help="print the table, leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    rows, ratios, floor = [], [], ""
    for label, (fmt, data) in files(args.events).items():
        reference = whole(fmt, data)
        if not np.array_equal(np.concatenate(streamed(fmt, data, args.chunk)), reference):
            raise AssertionError(f"{label}: the stream decoder's events differ from events.load's")
        runs = {
            "whole": partial(whole, fmt, data),
            "stream": partial(streamed, fmt, data, args.chunk),
            "dropping": partial(streamed_dropping, fmt, data, args.chunk),
        }
        if fmt == "events":
            runs |= {"copy pieces": partial(copied_pieces, data, args.chunk), "copy whole": partial(copied_whole, data)}
        times: dict[str, list[float]] = {side: [] for side in runs}
        for _ in range(args.repeats):
            for side, run in runs.items():
                start = time.perf_counter()
                run()
                times[side].append(time.perf_counter() - start)
        t_whole, t_stream, t_drop, *t_copies = (statistics.median(times[side]) for side in runs)
        if t_copies:
            floor = (
                f" Floor for packed records, timed in the same alternation: copying each {args.chunk // 1024} KB "
                f"piece's bytes into a new array that is kept (nothing decoded) takes {t_copies[0] * 1e3:.1f} ms "
                f"({t_whole / t_copies[0]:.2f}x load's speed), one copy of the whole file {t_copies[1] * 1e3:.1f} ms."
            )
        ratio = t_whole / t_stream
        ratios.append(ratio)
        n = len(reference)
        rows.append(
            [
                label,
                f"{len(data) / 1e6:.1f}",
                f"{n:,}",
                f"{t_whole * 1e3:.1f}",
                f"{t_stream * 1e3:.1f}",
                f"{n / t_whole / 1e6:.0f}",
                f"{n / t_stream / 1e6:.0f}",
                f"{ratio:.2f}x",
                f"{t_drop * 1e3:.1f}",
                f"{t_whole / t_drop:.2f}x",
            ]
        )
        print(rows[-1], flush=True)
    header = [
        "format",
        "MB",
        "events",
        "load ms",
        f"stream ({args.chunk // 1024} KB chunks) ms",
        "load M ev/s",
        "stream M ev/s",
        "stream / load speed",
        "pieces dropped: stream ms",
        "pieces dropped: stream / load",
    ]
    verdict = "meets" if min(ratios) >= TARGET else "misses"
    low = ", ".join(row[0] for row, r in zip(rows, ratios, strict=True) if r < TARGET) or "none"
    body = (
        f"`nice .venv/bin/python -m bench.stream_decode --events {args.events} --chunk {args.chunk}` "
        f"({args.repeats} alternating runs after a warm-up, medians): `events.StreamDecoder` fed "
        f"{args.chunk // 1024} KB memoryview slices of a file against `events.load` of the same bytes, same "
        "events checked first. Files written by our writers from one recording (Gen4 1280x720, runs of 1-4 "
        "neighbouring pixels per row and time, ~1 µs apart; AEDAT 4 in packets of 10,000 events). "
        f"Lowest ratio with the pieces kept {min(ratios):.2f}x: {verdict} the target of {TARGET}x (below it: {low})."
        + floor
        + f" Load average over the last minute at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores."
        + "\n\n"
        + table(header, rows)
    )
    print(body)
    if not args.no_write:
        write_section("stream-decode", "Incremental decoding: StreamDecoder at 64 KB chunks vs events.load", body)


if __name__ == "__main__":
    main()
