"""Prophesee (EVT 2.0 / 2.1 / 3.0, DAT) and N-MNIST decode throughput and memory: ours against the
independent decoders, same files.

Files (generated under /tmp with our writers, a few million events each, timestamps ~1 µs apart,
Gen4 1280x720; N-MNIST 34x34 with its 23-bit timestamps and overflow markers), plus faery's real
IMX636 EVT 3.0 recording (1.2 M events) when its sdist sits in ``/tmp/faery_sdist``. Independent
decoders: faery (EVT 2.0, EVT 3.0, DAT), the evt3 package (EVT 3.0), tonic's ``read_mnist_file``
(N-MNIST); nothing else reads EVT 2.1. Every decoder's output is checked equal to ours first.

Timing: every decoder runs once to warm up (imports, numba cache, file cache), then ``--repeats``
times round-robin; medians reported. Ours is ``events.load(path)`` (detection included).
Memory: each decoder runs once more in a fresh subprocess; the peak RSS growth over the baseline
(after importing every decoder library and warming up on a small file), divided by the event
count, is its peak memory per decoded event (our output array alone is 13 bytes per event; faery
yields chunks the harness concatenates). Run: ``.venv/bin/python -m bench.decode_prophesee``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

import events
from bench.peak_memory import peak_growth_kib, reset_peak, run_probe
from bench.report import table, write_section
from events.evt2 import write_evt2
from events.evt3 import write_evt3
from events.evt21 import write_evt21
from events.nmnist import write_nmnist
from events.prophesee_dat import write_dat

WORKDIR = Path("/tmp/bench_decode_prophesee")
TARGETS = {"EVT 2.0": 1.0, "EVT 3.0": 1.0, "EVT 3.0 real (faery sample)": 1.0, "DAT": 1.0, "N-MNIST": 10.0}
SAMPLE_GIVEN = "N-MNIST real-size sample, format given"
TARGETS["N-MNIST 20 s (overflow markers)"] = TARGETS["N-MNIST one real-size sample (4 000 events)"] = 10.0
TARGETS[SAMPLE_GIVEN] = 10.0
REAL_EVT3 = Path("/tmp/faery_sdist/faery-0.7.1/tests/data/evt3.raw")
SENSOR = (1280, 720)


def generate(n: int, width: int, height: int, seed: int, mean_dt: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = 1_000 + np.cumsum(rng.poisson(mean_dt, n))
    return events.make_events(t, rng.integers(0, width, n), rng.integers(0, height, n), rng.integers(0, 2, n))


def write_files(n: int) -> dict[str, Path]:
    WORKDIR.mkdir(exist_ok=True)
    files = {}
    ev = generate(n, *SENSOR, seed=0)
    for name, writer, suffix in (
        ("EVT 2.0", write_evt2, "evt2.raw"),
        ("EVT 2.1", write_evt21, "evt21.raw"),
        ("EVT 3.0", write_evt3, "evt3.raw"),
        ("DAT", write_dat, "cd.dat"),
    ):
        files[name] = WORKDIR / suffix
        writer(files[name], ev, SENSOR)
    if REAL_EVT3.exists():
        files["EVT 3.0 real (faery sample)"] = REAL_EVT3
    files["N-MNIST"] = WORKDIR / "nmnist.bin"
    write_nmnist(files["N-MNIST"], generate(n, 34, 34, seed=1, mean_dt=min(2.0, 8_000_000 / n)))
    files["N-MNIST 20 s (overflow markers)"] = WORKDIR / "nmnist_long.bin"
    write_nmnist(files["N-MNIST 20 s (overflow markers)"], generate(n // 10, 34, 34, seed=2, mean_dt=200e6 / n))
    files["N-MNIST one real-size sample (4 000 events)"] = WORKDIR / "nmnist_sample.bin"
    write_nmnist(files["N-MNIST one real-size sample (4 000 events)"], generate(4_000, 34, 34, seed=3, mean_dt=75))
    files[SAMPLE_GIVEN] = files["N-MNIST one real-size sample (4 000 events)"]
    return files


def ours(path: str) -> np.ndarray:
    return events.load(path).events


def faery_rs(path: str) -> np.ndarray:
    from faery.file_decoder import Decoder

    return np.concatenate(list(Decoder(path)))


def evt3_rs(path: str) -> np.ndarray:
    import evt3

    decoded = evt3.decode_file(path)
    return decoded  # columns: x, y, polarity, timestamp


def tonic_nmnist(path: str) -> np.ndarray:
    from tonic.io import read_mnist_file

    return read_mnist_file(path, dtype=np.dtype([("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")]))


def read_only(path: str) -> bytes:
    """Not a decoder: what opening, reading and closing the file costs any decoder."""
    with open(path, "rb") as stream:
        return stream.read()


READ_ONLY = "file read alone"


def decoders_for(name: str) -> dict:
    if name.startswith("EVT 3.0"):
        return {"ours": ours, "faery": faery_rs, "evt3": evt3_rs}
    if name in ("EVT 2.0", "DAT"):
        return {"ours": ours, "faery": faery_rs}
    if name == SAMPLE_GIVEN:  # what the dataset reader does: no content detection
        return {
            "ours": lambda path: events.load(path, format="nmnist").events,
            "tonic": tonic_nmnist,
            READ_ONLY: read_only,
        }
    if name.startswith("N-MNIST"):
        return {"ours": ours, "tonic": tonic_nmnist}
    return {"ours": ours}


def columns(decoder: str, out) -> tuple:
    """``(t, x, y, p)`` of any decoder's output, for the equality check."""
    if decoder == "evt3":
        return out.timestamp, out.x, out.y, out.polarity
    if decoder == "faery":
        return out["t"], out["x"], out["y"], out["on"]
    return out["t"], out["x"], out["y"], out["p"]


def same(reference: np.ndarray, decoder: str, out) -> bool:
    ours_cols = columns("ours", reference)
    return all(
        np.array_equal(a.astype(np.int64), b.astype(np.int64))
        for a, b in zip(ours_cols, columns(decoder, out), strict=True)
    )


def probe_memory(decoder: str, fmt: str, path: str, warm: str) -> None:
    """Subprocess entry: import every decoder library, warm up, reset the peak RSS, decode once, report."""
    import importlib

    for module in ("faery", "evt3", "tonic.io"):
        importlib.import_module(module)
    function = decoders_for(fmt)[decoder]
    function(warm)
    baseline = reset_peak()
    out = function(path)
    n = len(out.x) if decoder == "evt3" else len(out)
    print(json.dumps({"events": n, "peak_kib": peak_growth_kib(baseline)}))


def warm_file(fmt: str) -> Path:
    """A small file of the same format, to warm a fresh process up (imports, numba cache)."""
    suffix = ".bin" if fmt.startswith("N-MNIST") else {"DAT": ".dat"}.get(fmt, ".raw")
    path = WORKDIR / f"warm_{fmt.split()[0]}_{fmt.split()[1] if ' ' in fmt else ''}{suffix}".replace("_.", ".")
    ev = generate(2_000, 34, 34, seed=2)
    if fmt.startswith("N-MNIST"):
        write_nmnist(path, ev)
    elif fmt == "DAT":
        write_dat(path, ev, SENSOR)
    elif fmt == "EVT 2.0":
        write_evt2(path, ev, SENSOR)
    elif fmt == "EVT 2.1":
        write_evt21(path, ev, SENSOR)
    else:
        write_evt3(path, ev, SENSOR)
    return path


def peak_bytes_per_event(decoder: str, fmt: str, path: Path) -> float:
    data = run_probe(
        "from bench.decode_prophesee import probe_memory; "
        f"probe_memory({decoder!r}, {fmt!r}, {str(path)!r}, {str(warm_file(fmt))!r})"
    )
    return data["peak_kib"] * 1024 / data["events"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=4_000_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-write", action="store_true", help="print the table, leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    files = write_files(args.events)
    rows, verdicts, read_note = [], [], ""
    for fmt, path in files.items():
        candidates = decoders_for(fmt)
        reference = ours(str(path))
        for name, function in candidates.items():
            out = function(str(path))  # warm-up, and the equality check
            if name not in ("ours", READ_ONLY) and not same(reference, name, out):
                raise AssertionError(f"{fmt}: {name} decodes differently from ours")
        times: dict[str, list[float]] = {name: [] for name in candidates}
        small = path.stat().st_size < 1 << 20  # per-file overheads: many more repeats, no memory figure
        for _ in range(args.repeats * (100 if small else 1)):
            for name, function in candidates.items():
                start = time.perf_counter()
                function(str(path))
                times[name].append(time.perf_counter() - start)
        medians = {name: statistics.median(ts) for name, ts in times.items()}
        if READ_ONLY in medians:
            read = medians.pop(READ_ONLY)
            candidates.pop(READ_ONLY)
            budget = medians["tonic"] / 10
            read_note = (
                f" Opening, reading and closing that 20 KB file alone (Python's `open().read()`, timed in the same "
                f"rounds) takes {read * 1e6:.1f} µs. 10x tonic ({medians['tonic'] * 1e6:.0f} µs) is "
                f"{budget * 1e6:.1f} µs per file, which leaves {(budget - read) * 1e6:.1f} µs after the read for "
                f"the call, the format handling and decoding 4,000 events; ours spends "
                f"{(medians['ours'] - read) * 1e6:.1f} µs on those."
            )
        others = {k: v for k, v in medians.items() if k != "ours"}
        memory = {name: float("nan") if small else peak_bytes_per_event(name, fmt, path) for name in candidates}
        n = len(reference)
        speed = ", ".join(f"{k} {n / v / 1e6:.1f}" for k, v in sorted(others.items(), key=lambda kv: kv[1]))
        ratios = ", ".join(f"{v / medians['ours']:.2f}x {k}" for k, v in sorted(others.items(), key=lambda kv: kv[1]))
        rows.append(
            [
                fmt,
                f"{n / 1e6:.2f}",
                f"{path.stat().st_size / 1e6:.1f}",
                f"{n / medians['ours'] / 1e6:.1f}",
                speed or "-",
                ratios or "-",
                f"{memory['ours']:.1f}" if not small else "-",
                ", ".join(f"{k} {v:.1f}" for k, v in memory.items() if k != "ours" and not small) or "-",
            ]
        )
        print(" | ".join(rows[-1]), flush=True)
        if small:
            rows[-1][3] += f" ({medians['ours'] * 1e6:.0f} µs/file)"
            rows[-1][4] += "".join(f" ({v * 1e6:.0f} µs/file)" for v in others.values())
        fastest = min(others.values()) if others else None
        if fmt in TARGETS and fastest is not None:
            target = TARGETS[fmt]
            ratio = fastest / medians["ours"]
            verdicts.append(
                f"{fmt} {ratio:.2f}x the fastest other (target {target:g}x): "
                + ("met" if ratio >= target else "not met")
            )
    body = (
        f"`.venv/bin/python -m bench.decode_prophesee --events {args.events} --repeats {args.repeats}`: "
        f"{args.events:,} events per generated file (Gen4 1280x720, ~1 µs apart; N-MNIST 34x34 within the 23-bit "
        "field, and a tenth as many over 20 s, which needs ~1400 overflow markers, and one file the size of a real "
        'N-MNIST sample, decoded with detection and with `format="nmnist"` as the dataset reader does), '
        "plus faery's real IMX636 EVT 3.0 sample; median of "
        f"{args.repeats} round-robin runs ({100 * args.repeats} for files under 1 MB, where per-file overheads, "
        "content detection included, dominate), same files for every decoder, "
        "outputs checked equal to ours. Speed in million events/s (higher is better); ratio = ours' speed / "
        "the other's (>1: ours faster). Memory: peak RSS growth of one decode in a fresh process, bytes per "
        "event (our output array alone is 13 B/event).\n\n"
        + table(
            ["file", "M events", "MB", "ours Mev/s", "others Mev/s", "ours vs others", "ours B/ev", "others B/ev"],
            rows,
        )
        + "\n\nTargets (issue 3): EVT 2.0, EVT 3.0 and DAT at least as fast as the fastest independent native "
        "decoder (faery, evt3); N-MNIST at least 10x tonic. This run: "
        + "; ".join(verdicts)
        + ". EVT 2.0 / 2.1 / DAT are NumPy; EVT 3.0 and N-MNIST are numba-compiled loops (EVT 3.0's "
        "NumPy formulation, kept as the tested reference, runs at about a fifth of the native decoders' speed; "
        "its compiled loop is bound by the branch on each word's type). N-MNIST: tonic is NumPy (int64 "
        "columns, plus a Python loop over every overflow marker, each touching the rest of the file); ours "
        "is bound on large files by writing (and first touching) its 13-byte output, and on a real-size "
        "sample by opening and reading the file and the Python calls around a ~5 µs kernel. The speeds "
        "depend on the machine's load at the time (it is shared): compare ratios within one run." + read_note
    )
    print(read_note.strip())
    if not args.no_write:
        write_section("decode-prophesee", "Prophesee and N-MNIST decoding (EVT 2.0 / 2.1 / 3.0, DAT, .bin)", body)


if __name__ == "__main__":
    main()
