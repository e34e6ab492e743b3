"""AEDAT decode throughput and memory: our decoders against the independent ones, same files.

Files (generated under /tmp, a few million random events each): AEDAT 2.0 DVS128 (CIFAR10-DVS
style), AEDAT 3.1 DVS128 (DVS128 Gesture style, 4096-event packets) and AEDAT 4 with every
compression (10 000-event packets, as dv-processing writes them). Independent decoders:
dv-processing, aedat (also what tonic's ``read_aedat4`` calls) and faery for AEDAT 4; tonic for
AEDAT 2.0 / 3.1 (its header + record readers and the bit extraction of ``read_dvs_128`` /
``read_dvs_ibm``; ``read_dvs_128`` itself fails in tonic 1.7.0 on a 3-value unpack).

Timing: every decoder runs once to warm up, then ``--repeats`` times round-robin; medians reported.
Memory: each decoder runs once more in a fresh subprocess; the peak RSS growth over the
baseline after importing every decoder library and decoding a smaller file of the same format
(imports, numba's compiled-code cache), divided by the event count, is its peak memory per decoded
event (our output array alone is 13 bytes per event). Run: ``.venv/bin/python -m bench.decode_aedat``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numba
import numpy as np

import events
from bench.peak_memory import peak_growth_kib, reset_peak, run_probe
from bench.report import table, write_section
from events.aedat2 import write_aedat2
from events.aedat3 import write_aedat3
from events.aedat4 import COMPRESSIONS, write_aedat4
from events.work_sharing import HelperThreads, fetch_increment, wait_until

WORKDIR = Path("/tmp/bench_decode_aedat")
WARM_EVENTS = 300_000  # more than one 2 MB AEDAT 2.0 window, so warming loads the code a large file runs


def generate(n: int, width: int, height: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = 1_000 + np.cumsum(rng.integers(0, 5, n))
    return events.make_events(t, rng.integers(0, width, n), rng.integers(0, height, n), rng.integers(0, 2, n))


FORMATS = ("aedat2", "aedat3", "aedat4")


def write_files(n: int, formats: tuple[str, ...] = FORMATS, prefix: str = "") -> dict[str, Path]:
    """The benchmark files of ``formats`` (names as in ``events.FORMATS``), labelled for the table."""
    WORKDIR.mkdir(exist_ok=True)
    files = {}
    dvs = generate(n, 128, 128, 0)
    if "aedat2" in formats:
        files["AEDAT 2.0"] = WORKDIR / f"{prefix}dvs128.aedat"
        write_aedat2(files["AEDAT 2.0"], dvs, (128, 128), chip="DVS128")
    if "aedat3" in formats:
        files["AEDAT 3.1"] = WORKDIR / f"{prefix}gesture.aedat"
        write_aedat3(files["AEDAT 3.1"], dvs, (128, 128), packet_events=4096)
    if "aedat4" not in formats:
        return files
    davis = generate(n, 346, 260, 1)
    for compression in COMPRESSIONS:
        files[f"AEDAT 4 {compression}"] = WORKDIR / f"{prefix}davis_{compression}.aedat4"
        write_aedat4(files[f"AEDAT 4 {compression}"], davis, (346, 260), compression)
    return files


def ours(path: str) -> np.ndarray:
    return events.load(path).events


@numba.njit(cache=True, nogil=True)
def _copy_records(words, out):  # pragma: no cover - compiled
    """No decoding: each 8-byte word's bytes into one packed output record."""
    for i in range(len(words)):
        word = words[i]
        event = out[i]
        event.t, event.x, event.y, event.p = word, word & 0xFFFF, (word >> 16) & 0xFFFF, (word >> 32) & 1


def copy_floor(path: str) -> np.ndarray:
    """What any decoder into our output pays: read the file in 2 MB windows and write one packed
    record per 8 bytes into a fresh output, with no decoding at all."""
    out = np.empty(os.path.getsize(path) // 8, dtype=events.EVENT_DTYPE)
    buffer = np.empty(2 << 20, dtype=np.uint8)
    done = 0
    with open(path, "rb") as stream:
        while got := stream.readinto(buffer):
            _copy_records(buffer[: got - got % 8].view(np.uint64), out[done:])
            done += got // 8
    return out


@numba.njit(cache=True, nogil=True)
def _count_done(counters):  # pragma: no cover - compiled
    fetch_increment(counters, 0)


_HELPER = HelperThreads(1, "bench-floor")


def _copy_range(fd: int, out: np.ndarray, first: int, stop: int) -> None:
    """The file's 8-byte words ``[first, stop)`` into ``out[first:stop]``, read in 2 MB windows."""
    buffer = np.empty(2 << 20, dtype=np.uint8)
    while first < stop:
        got = os.preadv(fd, [memoryview(buffer)[: min(len(buffer), (stop - first) * 8)]], first * 8)
        if got < 8:
            raise OSError(f"short read at word {first}")
        _copy_records(buffer[: got - got % 8].view(np.uint64), out[first:stop])
        first += got // 8


def copy_floor_two_threads(path: str) -> np.ndarray:
    """The same floor on both cores: the calling thread copies the first half of the file, a helper
    thread the second, each into its half of one fresh output."""
    n = os.path.getsize(path) // 8
    out = np.empty(n, dtype=events.EVENT_DTYPE)
    done = np.zeros(1, dtype=np.int64)
    fd = os.open(path, os.O_RDONLY)

    def second_half() -> None:
        try:
            _copy_range(fd, out, n // 2, n)
        finally:
            _count_done(done)

    try:
        _HELPER.hand(second_half)
        _copy_range(fd, out, 0, n // 2)
        wait_until(done, 0, 1)
    finally:
        os.close(fd)
    return out


def tonic_aedat2(path: str) -> np.ndarray:
    from tonic.io import get_aer_events_from_file, make_structured_array, read_aedat_header_from_file

    version, start, _ = read_aedat_header_from_file(path)
    raw = get_aer_events_from_file(path, version, start)
    a = raw["address"]
    return make_structured_array((a >> 8) & 0x7F, (a >> 1) & 0x7F, raw["timeStamp"], a & 1)


def tonic_aedat3(path: str) -> np.ndarray:
    from tonic.io import get_aer_events_from_file, make_structured_array, read_aedat_header_from_file

    version, start, _ = read_aedat_header_from_file(path)
    raw = get_aer_events_from_file(path, version, start)
    a = raw["address"]
    return make_structured_array((a >> 17) & 0x1FFF, (a >> 2) & 0x1FFF, raw["timeStamp"], (a >> 1) & 1)


def dv_processing(path: str) -> np.ndarray:
    import dv_processing as dv

    recording = dv.io.MonoCameraRecording(path)
    parts = []
    while (batch := recording.getNextEventBatch()) is not None:
        parts.append(batch.numpy())
    return np.concatenate(parts)


def aedat_rs(path: str) -> np.ndarray:
    import aedat

    return np.concatenate([p["events"] for p in aedat.Decoder(path) if "events" in p])


def faery_rs(path: str) -> np.ndarray:
    import faery

    return np.concatenate(list(faery.events_stream_from_file(path)))


def decoders_for(name: str) -> dict:
    if name == "AEDAT 2.0":
        return {"ours": ours, "tonic": tonic_aedat2}
    if name == "AEDAT 3.1":
        return {"ours": ours, "tonic": tonic_aedat3}
    return {"ours": ours, "dv-processing": dv_processing, "aedat": aedat_rs, "faery": faery_rs}


def probe_memory(decoder: str, fmt: str, path: str, warm: str) -> None:
    """Subprocess entry: import every decoder library, warm up on ``warm``, reset the peak RSS, decode
    ``path`` once, report the growth."""
    import importlib

    for module in ("aedat", "dv_processing", "faery", "tonic.io"):
        importlib.import_module(module)
    function = decoders_for(fmt)[decoder]
    function(warm)
    baseline = reset_peak()
    out = function(path)
    print(json.dumps({"events": len(out), "peak_kib": peak_growth_kib(baseline)}))


def peak_bytes_per_event(decoder: str, fmt: str, path: Path, warm: Path) -> float:
    """Peak RSS growth per event of one decode, in a warmed-up fresh process whose earlier peak is dropped."""
    args = f"{decoder!r}, {fmt!r}, {str(path)!r}, {str(warm)!r}"
    data = run_probe(f"from bench.decode_aedat import probe_memory; probe_memory({args})")
    return data["peak_kib"] * 1024 / data["events"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--formats", nargs="+", choices=FORMATS, default=list(FORMATS), help="formats to run")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    if set(args.formats) != set(FORMATS) and not args.no_write:
        parser.error("--formats with a subset needs --no-write (BENCHMARKS.md holds the whole table)")
    files = write_files(args.events, tuple(args.formats))
    warm = write_files(WARM_EVENTS, tuple(args.formats), prefix="warm_")
    load_before = os.getloadavg()[0]
    rows, aedat4_ratios, tonic_ratios, floors = [], [], [], []
    for fmt, path in files.items():
        candidates = decoders_for(fmt)
        reference = ours(str(path))
        times: dict[str, list[float]] = {name: [] for name in candidates}
        with_floor = "tonic" in candidates
        floors_timed = {"floor": copy_floor, "floor2": copy_floor_two_threads} if with_floor else {}
        for function in [*candidates.values(), *floors_timed.values()]:
            function(str(path))  # warm-up: imports, file cache
        for _ in range(args.repeats):
            for name, function in candidates.items():
                start = time.perf_counter()
                out = function(str(path))
                times[name].append(time.perf_counter() - start)
                assert len(out) == len(reference), (fmt, name, len(out))
            for name, function in floors_timed.items():
                start = time.perf_counter()
                function(str(path))
                times.setdefault(name, []).append(time.perf_counter() - start)
        medians = {name: statistics.median(ts) for name, ts in times.items()}
        if with_floor:
            floor, floor2 = medians.pop("floor"), medians.pop("floor2")
            floors.append(
                f"{fmt} {len(reference) / floor / 1e6:.0f} Mev/s ({medians['tonic'] / floor:.1f}x tonic), ours at "
                f"{floor / medians['ours']:.0%} of it; on two threads {len(reference) / floor2 / 1e6:.0f} Mev/s "
                f"({medians['tonic'] / floor2:.1f}x tonic)"
            )
        others = {k: v for k, v in medians.items() if k != "ours"}
        fastest = min(others, key=others.get)
        (tonic_ratios if fastest == "tonic" else aedat4_ratios).append(others[fastest] / medians["ours"])
        memory = {name: peak_bytes_per_event(name, fmt, path, warm[fmt]) for name in candidates}
        size_mb = path.stat().st_size / 1e6
        ranked = sorted(others.items(), key=lambda kv: kv[1])
        cells = ", ".join(f"{k} {len(reference) / v / 1e6:.1f}" for k, v in ranked)
        rows.append(
            [
                fmt,
                f"{size_mb:.1f}",
                f"{len(reference) / medians['ours'] / 1e6:.1f}",
                cells,
                f"{others[fastest] / medians['ours']:.2f}x {fastest}",
                f"{memory['ours']:.1f}",
                ", ".join(f"{k} {v:.1f}" for k, v in memory.items() if k != "ours"),
            ]
        )
        print(" | ".join(rows[-1]), flush=True)
    if floors:
        print("read-and-write floor (no decoding):", "; ".join(floors))
    body = (
        f"`.venv/bin/python -m bench.decode_aedat --events {args.events} --repeats {args.repeats}`: "
        f"{args.events:,} random events per file, median of {args.repeats} round-robin runs, same files for "
        "every decoder. Speed in million events/s (higher is better); ratio = fastest other decoder's median "
        "time / ours (>1: ours faster). Memory: peak RSS growth of one decode in a fresh process, bytes per "
        "event (our output array alone is 13 B/event).\n\n"
        + table(
            ["file", "MB", "ours Mev/s", "others Mev/s", "ours vs fastest other", "ours B/ev", "others B/ev"],
            rows,
        )
        + "\n\nTargets (issue 3): AEDAT 4 at least as fast as the fastest native decoder: "
        + ("met" if all(r >= 1 for r in aedat4_ratios) else "not met")
        + f" (ratios {', '.join(f'{r:.2f}' for r in aedat4_ratios)}); AEDAT 2.0/3.1 at least 10x tonic: "
        + ("met" if all(r >= 10 for r in tonic_ratios) else "not met")
        + f" ({', '.join(f'{r:.2f}x' for r in tonic_ratios)}). Our AEDAT 2.0/3.1 decoders are one numba pass "
        "per 2 MB window; tonic's readers are vectorised NumPy (`np.fromfile` plus a few array operations per "
        "field). What bounds ours is what any decoder into a fresh packed output pays: a compiled loop that "
        "only reads the same file and writes one 13-byte record per 8 bytes, decoding nothing, runs at "
        + "; ".join(floors)
        + " (the page-cache copy, faulting in and zeroing the output, and the unaligned record stores). "
        "The two-thread floor splits the file in halves between the calling thread and a helper (both cores); "
        "our decoders use one thread. "
        f"Load average during the run: {load_before:.1f} at start, {os.getloadavg()[0]:.1f} at the end "
        f"({os.cpu_count()} cores shared with other jobs), so absolute rates are noisy; the ratios compare "
        "decoders that ran interleaved."
    )
    if not args.no_write:
        write_section("decode-aedat", "AEDAT decoding (AEDAT 2.0 / 3.1 / 4)", body)


if __name__ == "__main__":
    main()
