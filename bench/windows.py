"""Windows framing throughput on the long example: ``events.frame_windows`` vs a loop of ``frame_events``
vs tonic's ``SliceByTime`` followed by ``ToFrame`` on each slice.

All three cut ``examples/long_sequence.evt3.raw`` into windows of ``window`` every ``stride``, leave
out windows with fewer than ``min_events`` events and frame the rest into ``[T, 2, h, w]``. Each
output is checked equal to ours before anything is timed. tonic's slicer stops at the last window
that starts at least one window before the last event (``include_incomplete`` keeps one more), so
its windows are a prefix of ours and are compared as such; its event bins drop the last
``N % T`` events of a window (ours put them in the last bin), which the check allows for. Rates
are per window each one framed.
tonic downsamples the recording with ``Downsample`` first (``x * 0.25`` truncated is our ``x * 32 // 128``)
and is left out of the split by time, whose last bin it ends before the last event.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import events
from bench.framing import round_robin
from bench.report import table, write_section
from events import FramingSpec, frame_events, frame_windows

LONG_EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "long_sequence.evt3.raw"
MAX_WINDOWS = 100_000


@dataclass(frozen=True)
class Case:
    """One way to cut the long example: window and stride, and the model's framing."""

    name: str
    window_us: int
    stride_us: int
    spec: FramingSpec

    @property
    def min_events(self) -> int:
        return max(self.spec.time_steps, 64)


CASES = [
    Case("gesture-long windows", 650_000, 325_000, FramingSpec(8, 32, 32, "number")),
    Case("100 ms windows", 100_000, 50_000, FramingSpec(8, 32, 32, "number")),
    Case("20 ms windows", 20_000, 10_000, FramingSpec(8, 32, 32, "number")),
    Case("100 ms windows, split by time", 100_000, 50_000, FramingSpec(8, 32, 32, "time")),
]


def loop_of_frame_events(recording: np.ndarray, sensor, case: Case) -> np.ndarray:
    """Window bounds by binary search, then ``frame_events`` on each busy window's slice."""
    t = recording["t"]
    starts = np.arange(int(t[0]), int(t[-1]) + 1, case.stride_us, dtype=np.int64)
    lows = np.searchsorted(t, starts)
    highs = np.searchsorted(t, starts + case.window_us)
    frames = [
        frame_events(recording[lo:hi], sensor, case.spec)
        for lo, hi in zip(lows, highs, strict=True)
        if hi - lo >= case.min_events
    ]
    return np.stack(frames)


def tonic_pipeline(case: Case, sensor: tuple[int, int]):
    """tonic's own downsampling, slicing and framing, or None for a split by time (its time bins differ)."""
    if case.spec.split_by != "number":
        return None
    import tonic.slicers
    import tonic.transforms

    size = (case.spec.width, case.spec.height)
    downsample = tonic.transforms.Downsample(sensor_size=(*sensor, 2), target_size=size)
    slicer = tonic.slicers.SliceByTime(
        time_window=case.window_us, overlap=case.window_us - case.stride_us, include_incomplete=True
    )
    to_frame = tonic.transforms.ToFrame(sensor_size=(*size, 2), n_event_bins=case.spec.time_steps)

    def busy_slices(tonic_events: np.ndarray) -> list[np.ndarray]:
        slices, _ = slicer.slice(downsample(tonic_events), None)
        return [s for s in slices if len(s) >= case.min_events]

    def run(tonic_events: np.ndarray) -> np.ndarray:
        return np.stack([to_frame(s) for s in busy_slices(tonic_events)])

    return run, busy_slices


def without_remainders(frames: np.ndarray, slices: list[np.ndarray], steps: int) -> np.ndarray:
    """``frames`` less each slice's last ``len % T`` events, which tonic's event bins drop (ours: last bin)."""
    expected = frames.copy()
    for frame, piece in zip(expected, slices, strict=True):
        rest = piece[len(piece) // steps * steps :]
        np.subtract.at(frame[-1], ((rest["p"] != 0).astype(np.intp), rest["y"], rest["x"]), 1)
    return expected


def run_case(recording: np.ndarray, sensor, case: Case, repeats: int) -> list:
    def ours():
        return frame_windows(
            recording,
            sensor,
            case.spec,
            window_us=case.window_us,
            stride_us=case.stride_us,
            min_events=case.min_events,
            max_windows=MAX_WINDOWS,
        )

    windows = ours()
    counts = {"ours": len(windows.classified), "loop": len(windows.classified)}
    candidates = {"ours": ours, "loop": lambda: loop_of_frame_events(recording, sensor, case)}
    if not np.array_equal(candidates["loop"](), windows.frames):
        raise SystemExit(f"the frame_events loop framed {case.name} differently from frame_windows")
    pipeline = tonic_pipeline(case, sensor)
    if pipeline is not None:
        tonic, busy_slices = pipeline
        tonic_events = np.empty(len(recording), dtype=[("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")])
        for field in "txyp":
            tonic_events[field] = recording[field]
        tonic_frames = tonic(tonic_events)
        counts["tonic"] = len(tonic_frames)
        ours_prefix = windows.frames[: len(tonic_frames)]
        expected = without_remainders(ours_prefix, busy_slices(tonic_events), case.spec.time_steps)
        if not np.array_equal(tonic_frames.astype(np.float32), expected):
            raise SystemExit(f"tonic framed {case.name} differently from frame_windows")
        candidates["tonic"] = lambda: tonic(tonic_events)
    seconds = round_robin(candidates, repeats)
    rates = {name: counts[name] / seconds[name] for name in candidates}
    cells = [f"{seconds[name] * 1e3:.2f} ({rates[name]:,.0f})" for name in ("ours", "loop")]
    cells.append(f"{seconds['tonic'] * 1e3:.1f} ({rates['tonic']:,.0f})" if "tonic" in seconds else "n/a")
    ratios = [f"**{rates['ours'] / rates[other]:.1f}x**" if other in rates else "n/a" for other in ("loop", "tonic")]
    label = (
        f"{case.name}: {case.window_us // 1000} ms every {case.stride_us // 1000} ms, T={case.spec.time_steps} "
        f"{case.spec.width}x{case.spec.height} by {case.spec.split_by}, {len(windows)} windows, {counts['ours']} framed"
    )
    return [label, *cells, *ratios]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    recording = events.load(LONG_EXAMPLE)
    rows = [run_case(recording.events, recording.sensor_size, case, args.repeats) for case in CASES]
    header = [
        "case",
        "frame_windows ms (windows/s)",
        "frame_events loop ms (windows/s)",
        "tonic SliceByTime + ToFrame ms (windows/s)",
        "ours vs loop",
        "ours vs tonic",
    ]
    body = (
        f"`python -m bench.windows --repeats {args.repeats}`: `examples/long_sequence.evt3.raw` "
        f"({len(recording.events):,} events, {recording.duration_us / 1e6:.1f} s, ten gestures with idle gaps) "
        "cut into windows and every window with at least max(T, 64) events framed for the demo model's input "
        "(T=8, 32x32 from 128x128). `frame_windows` counts all "
        "windows in one compiled pass; the loop finds the same window bounds by binary search and calls "
        "`frame_events` per window; tonic downsamples with `Downsample(target_size=(32, 32))`, "
        "slices with `SliceByTime(include_incomplete=True)` and frames each slice with `ToFrame(n_event_bins=T)` "
        "(its int64 structured array built untimed; not run split by time, where its last bin leaves out the "
        "last event). Outputs are checked equal first (tonic's windows are a prefix of ours: it stops a window "
        "earlier; its event bins drop each window's last N % T events, which the check allows for), then all "
        "run round-robin, medians of "
        f"{args.repeats} rounds; windows/s counts the windows each one framed. Load average over the last "
        f"minute when the run ended: {os.getloadavg()[0]:.1f} (other jobs share the cores: absolute times "
        "grow with it, the round-robin keeps the ratios comparable).\n\n" + table(header, rows)
    )
    print(body)
    if not args.no_write:
        write_section("windows", "Windows framing: one pass vs a loop of frame_events vs tonic", body)


if __name__ == "__main__":
    main()
