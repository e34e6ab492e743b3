"""Fuzzing every decoder in ``events.formats.FORMATS`` (the long run; ``tests/test_fuzz_decoders.py``
is the short one in CI).

Seeds: each format's own writer (``write_<name>`` in the decoder's module, found by name, so
decoders added later are covered without edits) on a few small recordings (0, 1, 37 and 600
events, sensor 128x128), plus the real samples under ``tests/data`` whose extension the format
claims and its sniffer accepts (cut to 16 KB). Inputs: seeds mutated 1-8 times by bit flips, interesting bytes
(0x00, 0xFF, 0x7F, 0x80, ``%``, ``#``, newline, digits), aligned 16/32/64-bit words, truncation,
extension with random bytes, insertion, deletion, duplication, splices with any seed of any
format and edits aimed at the header (two inputs in five keep a text header intact and edit only
what follows); one input in 20 is plain random bytes.

Each input is decoded by its format's ``decode`` called directly (so nothing is wrapped), and one
in 8 also through ``events.load`` with detection (the sniffers see hostile heads too). Allowed
outcomes: a ``Recording`` (checked: ``EVENT_DTYPE``, at most ``max_events`` events, every event
inside a sensor size that came from the header) or ``EventDecodeError``; anything else is an
escape. An input that runs longer than ``--time-limit`` seconds is a hang: a watchdog kills the
worker process and a new one continues after it. Escapes and hangs are saved under
``/tmp/fuzz_findings``. The EVT 3.0 compiled loop is also checked against its NumPy reference
on every EVT 3.0 input. Every input of a format ``events.StreamDecoder`` reads is also fed to it
cut at 0-12 random points (a third of them within the first 64 bytes, where the headers are):
it must give exactly the file decoder's events and sensor size, or raise ``EventDecodeError``
where the file decoder does (an error it only wraps, from an unexpected exception, is an escape).
Results go to BENCHMARKS.md (``fuzz-decoders``).

Run: ``nice .venv/bin/python -m bench.fuzz --inputs 100000`` (``--formats evt3 dat`` for some).
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import io
import itertools
import json
import multiprocessing as mp
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import events
from events.format import DecodeLimits, Format
from events.formats import FORMATS
from events.recording import EVENT_DTYPE, make_events

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
FINDINGS = Path("/tmp/fuzz_findings")
LIMITS = DecodeLimits(max_events=200_000, max_decompressed_bytes=64 << 20, max_compression_ratio=2000.0)
SENSOR = (128, 128)
INTERESTING = bytes([0x00, 0xFF, 0x7F, 0x80, 0x25, 0x23, 0x0A, 0x0D, 0x30, 0x39, 0x01, 0xFE])


def writer_for(fmt: Format):
    """The format's writer, ``write_<name>`` in the module that defines its decoder, or None."""
    module = sys.modules[fmt.decode.__module__]
    return getattr(module, f"write_{fmt.name}", None)


def _write(writer, ev: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    params = list(inspect.signature(writer).parameters)
    if len(params) > 2 and params[2] == "sensor_size":
        writer(buffer, ev, SENSOR)
    else:
        writer(buffer, ev)
    return buffer.getvalue()


def recording(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = 1_000 + np.cumsum(rng.integers(0, 400, n))
    return make_events(t, rng.integers(0, SENSOR[0], n), rng.integers(0, SENSOR[1], n), rng.integers(0, 2, n))


def seeds_for(fmt: Format) -> list[bytes]:
    """Valid files of ``fmt`` to mutate: its writer's output and real samples with its extension."""
    seeds = []
    writer = writer_for(fmt)
    if writer is not None:
        for i, n in enumerate((0, 1, 37, 600)):
            with contextlib.suppress(ValueError, TypeError):
                seeds.append(_write(writer, recording(n, i)))
    if DATA.is_dir():
        for path in sorted(DATA.iterdir()):
            if path.suffix.lower() in fmt.extensions:
                sample = path.read_bytes()
                if fmt.sniff(sample[:4096]):  # a .raw of another EVT version is not this format's seed
                    seeds.append(sample[: 16 << 10])
    if not seeds:
        seeds.append(b"")
    return seeds


def text_header_length(data: bytes) -> int:
    """Bytes of the leading ``%`` / ``#`` text lines (Prophesee, AEDAT 2/3 headers); 0 if none."""
    pos = 0
    while pos < len(data) and data[pos] in (0x25, 0x23):
        end = data.find(b"\n", pos)
        if end < 0:
            return 0
        pos = end + 1
    return pos


def mutate(data: bytes, rng: np.random.Generator, pool: list[bytes]) -> bytes:
    """One to eight random edits of ``data`` (``pool``: every seed, for splices).

    Two inputs in five keep a text header intact and edit only what follows it, so the decoders'
    bodies are reached as often as their header checks.
    """
    if rng.random() < 0.05:
        return rng.integers(0, 256, int(rng.integers(0, 4096)), dtype=np.uint8).tobytes()
    keep = text_header_length(data) if rng.random() < 0.4 else 0
    return data[:keep] + _edit(data[keep:], rng, pool)


def _edit(data: bytes, rng: np.random.Generator, pool: list[bytes]) -> bytes:
    buf = bytearray(data)

    def length(high: int) -> int:
        """A length for edits: mostly a multiple of 40, which keeps every word size's alignment."""
        if rng.random() < 0.8:
            return 40 * int(rng.integers(1, max(2, high // 40 + 1)))
        return int(rng.integers(1, high))

    for _ in range(int(rng.integers(1, 9))):
        n = len(buf)
        op = int(rng.integers(0, 11))
        pos = int(rng.integers(0, n + 1))
        if op == 0 and n:  # bit flips
            for _ in range(int(rng.integers(1, 9))):
                i = int(rng.integers(0, n))
                buf[i] ^= 1 << int(rng.integers(0, 8))
        elif op == 1 and n:  # interesting byte
            buf[int(rng.integers(0, n))] = INTERESTING[int(rng.integers(0, len(INTERESTING)))]
        elif op == 2 and n >= 8:  # aligned word of random or extreme value
            size = int(rng.choice([2, 4, 8]))
            i = int(rng.integers(0, n // size)) * size
            value = (0, 1, -1, int(rng.integers(0, 1 << 62)))[int(rng.integers(0, 4))] & ((1 << (8 * size)) - 1)
            buf[i : i + size] = value.to_bytes(size, "little")
        elif op == 3:  # truncate (mostly keeping the alignment)
            del buf[n - min(n, length(max(n, 2))) if rng.random() < 0.6 else pos :]
        elif op == 4:  # extend with random bytes
            buf += rng.integers(0, 256, length(64), dtype=np.uint8).tobytes()
        elif op == 5:  # insert random bytes
            buf[pos:pos] = rng.integers(0, 256, length(64), dtype=np.uint8).tobytes()
        elif op == 6 and n:  # delete a range
            del buf[pos : pos + length(64)]
        elif op == 7 and n:  # duplicate a range
            buf[pos:pos] = buf[pos : pos + length(256)]
        elif op == 8:  # splice in a piece of any seed
            other = pool[int(rng.integers(0, len(pool)))]
            if other:
                a = int(rng.integers(0, len(other)))
                buf[pos:pos] = other[a : a + length(512)]
        elif op == 9 and n:  # edit inside the header region
            i = int(rng.integers(0, min(n, 256)))
            buf[i] = int(rng.choice(list(b"0123456789x;=% \n\r")) if rng.random() < 0.7 else rng.integers(0, 256))
        elif op == 10 and n:  # repeat the tail (big inputs, vector bombs)
            tail = buf[max(0, n - 40 * int(rng.integers(1, 4))) :]
            buf += bytes(tail) * int(rng.integers(1, 200))
    return bytes(buf)


def check(fmt_name: str, result) -> None:
    """Raise AssertionError unless ``result`` is a well-formed Recording."""
    assert isinstance(result, events.Recording), type(result)
    assert result.events.dtype == EVENT_DTYPE, result.events.dtype
    assert len(result.events) <= LIMITS.max_events
    if result.sensor_from_header and len(result.events):
        w, h = result.sensor_size
        assert int(result.events["x"].max()) < w and int(result.events["y"].max()) < h, (fmt_name, result.sensor_size)


def stream_cuts(size: int, rng: np.random.Generator) -> list[int]:
    """0-12 cut points in ``[0, size]``, a third of them within the first 64 bytes (the headers)."""
    cuts = [int(rng.integers(0, min(size, 64) + 1)) if rng.random() < 1 / 3 else int(rng.integers(0, size + 1))]
    cuts += [int(rng.integers(0, size + 1)) for _ in range(int(rng.integers(0, 12)))]
    return sorted(cuts) if rng.random() < 0.9 else []


def check_stream(fmt_name: str, data: bytes, cuts: list[int], whole) -> None:
    """``events.StreamDecoder`` fed ``data`` cut at ``cuts`` must agree with ``whole``.

    ``whole`` is the file decoder's Recording or the ``EventDecodeError`` it raised; an
    ``EventDecodeError`` the stream decoder raised from an unexpected exception is an escape.
    """
    from events.errors import EventDecodeError

    decoder = events.StreamDecoder(fmt_name, limits=LIMITS)
    pieces = []
    try:
        for a, b in itertools.pairwise([0, *cuts, len(data)]):
            pieces.append(decoder.feed(data[a:b]))
        pieces.append(decoder.close())
    except EventDecodeError as exc:
        assert exc.__cause__ is None or isinstance(exc.__cause__, EventDecodeError), ("stream escape", exc.__cause__)
        assert isinstance(whole, EventDecodeError), ("stream rejects what the file decoder reads", str(exc), cuts)
        return
    assert not isinstance(whole, EventDecodeError), ("stream reads what the file decoder rejects", str(whole), cuts)
    got = np.concatenate(pieces)
    assert got.dtype == EVENT_DTYPE and np.array_equal(got, whole.events), ("stream events differ", cuts)
    assert decoder.sensor_size == whole.sensor_size, ("stream sensor differs", decoder.sensor_size, whole.sensor_size)


def run_one(fmt: Format, data: bytes, via_load: bool, cuts: list[int] | None = None) -> str:
    """Decode ``data``; returns "ok" / "rejected" / "limit", raises on an escape.

    With ``cuts`` (formats ``events.StreamDecoder`` reads), the stream decoder is checked too.
    """
    from events.errors import EventDecodeError, LimitExceededError

    outcome = "ok"
    try:
        whole = fmt.decode(io.BytesIO(data), LIMITS)
        check(fmt.name, whole)
    except LimitExceededError as exc:
        outcome, whole = "limit", exc
    except EventDecodeError as exc:
        outcome, whole = "rejected", exc
    if cuts is not None and fmt.name in events.STREAM_FORMATS:
        check_stream(fmt.name, data, cuts, whole)
    if fmt.name == "evt3":
        _check_evt3_reference(data, outcome)
    if via_load and data:
        with contextlib.suppress(EventDecodeError):
            check("load", events.load(data, limits=LIMITS))
    return outcome


def _check_evt3_reference(data: bytes, outcome: str) -> None:
    import events.evt3
    from events.errors import EventDecodeError

    results = []
    for decode in (events.evt3.EVT3.decode, events.evt3.decode_numpy):
        try:
            results.append(decode(io.BytesIO(data), LIMITS).events)
        except EventDecodeError as exc:
            results.append((type(exc).__name__, exc.offset))
    a, b = results
    if isinstance(a, tuple) or isinstance(b, tuple):
        assert a == b, ("evt3 compiled vs numpy", a, b)
    else:
        assert np.array_equal(a, b), "evt3 compiled vs numpy differ"


def input_for(fmt_index: int, i: int, seed: int, seeds: list[bytes], pool: list[bytes]) -> bytes:
    rng = np.random.default_rng([seed, fmt_index, i])
    return mutate(seeds[int(rng.integers(0, len(seeds)))], rng, pool)


def worker(fmt_index: int, start: int, stop: int, skip: tuple, seed: int, current, started_at, results) -> None:
    """Decode inputs ``start..stop`` (less ``skip``) of one format; report outcomes through ``results``."""
    os.nice(5)
    resource.setrlimit(resource.RLIMIT_AS, (12 << 30, 12 << 30))
    fmt = FORMATS[fmt_index]
    seeds = seeds_for(fmt)
    pool = [s for f in FORMATS for s in seeds_for(f)]
    counts = {"ok": 0, "rejected": 0, "limit": 0, "escape": 0}
    times = []
    for i in range(start, stop):
        if i in skip:
            continue
        data = input_for(fmt_index, i, seed, seeds, pool)
        cuts = stream_cuts(len(data), np.random.default_rng([seed, fmt_index, i, 1]))
        current.value = i
        started_at.value = time.monotonic()
        begin = time.perf_counter()
        try:
            counts[run_one(fmt, data, via_load=i % 8 == 0, cuts=cuts)] += 1
        except BaseException as exc:  # an escape: anything but EventDecodeError (or a bad Recording)
            counts["escape"] += 1
            FINDINGS.mkdir(exist_ok=True)
            (FINDINGS / f"{fmt.name}_{i}.bin").write_bytes(data)
            (FINDINGS / f"{fmt.name}_{i}.txt").write_text(f"{type(exc).__name__}: {exc}"[:2000])
        times.append(time.perf_counter() - begin)
        started_at.value = 0.0
        if len(times) == 100 or i == stop - 1:
            results.put((start, i, counts, times))
            counts = {k: 0 for k in counts}
            times = []


def fuzz_format(fmt_index: int, n: int, seed: int, time_limit: float, workers: int) -> dict:
    """Run ``n`` inputs of one format over ``workers`` processes with a hang watchdog."""
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    totals = {"ok": 0, "rejected": 0, "limit": 0, "escape": 0, "hang": 0}
    times: list[float] = []
    bounds = np.linspace(0, n, workers + 1).astype(int)
    running: dict[int, dict] = {}  # by start index

    def launch(a: int, b: int, skip: tuple = ()) -> None:
        current, started_at = ctx.Value("q", a), ctx.Value("d", 0.0)
        args = (fmt_index, a, b, skip, seed, current, started_at, results)
        proc = ctx.Process(target=worker, args=args, daemon=True)
        proc.start()
        running[a] = {"proc": proc, "current": current, "started_at": started_at, "stop": b, "done": a - 1}

    def drain() -> None:
        while not results.empty():
            start, last, counts, ts = results.get()
            for k, v in counts.items():
                totals[k] += v
            times.extend(ts)
            if start in running:
                running[start]["done"] = last

    def record(kind: str, i: int) -> None:
        FINDINGS.mkdir(exist_ok=True)
        pool = [s for f in FORMATS for s in seeds_for(f)]
        data = input_for(fmt_index, i, seed, seeds_for(FORMATS[fmt_index]), pool)
        (FINDINGS / f"{FORMATS[fmt_index].name}_{i}_{kind}.bin").write_bytes(data)

    for a, b in itertools.pairwise(bounds):
        if b > a:
            launch(int(a), int(b))
    while running:
        drain()
        for start, entry in list(running.items()):
            proc, began = entry["proc"], entry["started_at"].value
            hung = proc.is_alive() and began and time.monotonic() - began > time_limit
            if hung:
                proc.kill()
            if hung or not proc.is_alive():
                proc.join()
                time.sleep(0.2)
                drain()
                del running[start]
                if hung or proc.exitcode != 0:
                    i = entry["current"].value
                    totals["hang" if hung else "escape"] += 1  # not hung: the worker died in native code
                    record("hang" if hung else "crash", i)
                    if entry["done"] + 1 < entry["stop"]:
                        launch(entry["done"] + 1, entry["stop"], skip=(i,))
        time.sleep(0.2)
    drain()
    done = sum(totals[k] for k in ("ok", "rejected", "limit", "escape"))
    return {
        "inputs": done + totals["hang"],
        **totals,
        "median_ms": 1e3 * statistics.median(times) if times else 0.0,
        "p99_ms": 1e3 * float(np.percentile(times, 99)) if times else 0.0,
        "max_ms": 1e3 * max(times) if times else 0.0,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=100_000, help="inputs per format")
    parser.add_argument("--formats", nargs="*", help="format names (default: every registered format)")
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument("--time-limit", type=float, default=20.0, help="seconds before an input counts as a hang")
    parser.add_argument("--workers", type=int, default=max(1, min(2, os.cpu_count() or 1)))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    names = args.formats or [f.name for f in FORMATS]
    rows, summary = [], {}
    started = time.time()
    for index, fmt in enumerate(FORMATS):
        if fmt.name not in names:
            continue
        stats = fuzz_format(index, args.inputs, args.seed, args.time_limit, args.workers)
        summary[fmt.name] = stats
        rows.append(
            [
                fmt.name,
                f"{stats['inputs']:,}",
                f"{stats['ok']:,}",
                f"{stats['rejected'] + stats['limit']:,}",
                f"{stats['limit']:,}",
                str(stats["escape"]),
                str(stats["hang"]),
                f"{stats['median_ms']:.2f} / {stats['p99_ms']:.1f} / {stats['max_ms']:.0f}",
            ]
        )
        print(json.dumps({fmt.name: stats}), flush=True)
    minutes = (time.time() - started) / 60
    from bench.report import table, write_section

    every = set(names) >= {f.name for f in FORMATS}
    command = f"--inputs {args.inputs}" + ("" if every else " --formats " + " ".join(names))
    body = (
        f"`nice .venv/bin/python -m bench.fuzz {command}` (seed {args.seed}, {args.workers} workers, "
        f"{minutes:.0f} min): {'every format registered in `events.formats.FORMATS`' if every else ', '.join(names)}; "
        "inputs mutated from each "
        "format's own writer output and the real samples in `tests/data` (bit flips, interesting bytes, aligned "
        "words, truncation, insertion, deletion, duplication, cross-format splices, header edits, tail repeats, "
        f"random bytes), each decoded directly by its decoder (1 in 8 also through `events.load` with detection) "
        f"under `DecodeLimits(max_events={LIMITS.max_events:,})`. Escape = any exception other than "
        "`EventDecodeError` or a malformed Recording (for EVT 3.0 also: the compiled loop and its NumPy "
        "reference disagree; for the formats `events.StreamDecoder` reads, evt2 / evt21 / evt3 / aedat4 / events, "
        "also: the stream decoder fed the input cut at 0-12 random points gives other events or sensor size, or "
        f"disagrees on rejecting it); hang = one input over "
        f"{args.time_limit:.0f} s (the watchdog kills the worker).\n\n"
        + table(
            ["format", "inputs", "decoded", "rejected", "of which limit", "escapes", "hangs", "ms median / p99 / max"],
            rows,
        )
    )
    if not args.no_write:
        if every:
            write_section("fuzz-decoders", "Decoder fuzzing (every registered format)", body)
        else:  # a run of some formats gets its own section, leaving the full run's table as it is
            write_section("fuzz-decoders-" + "-".join(names), f"Decoder fuzzing ({', '.join(names)})", body)


if __name__ == "__main__":
    main()
