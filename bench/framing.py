"""Framing throughput: ours vs tonic's ``ToFrame`` vs SpikingJelly's fixed-frames-number integration.

All three turn the same sorted events into ``T`` two-channel count frames; every variant's
output is checked equal to ours before it is timed. SpikingJelly's ``datasets.utils`` imports
torchvision and matplotlib at module level for unrelated helpers; neither is installed here
(torchvision would replace our pinned torch), so the bench loads that one module with inert
stand-ins for those two imports. The timed function itself is SpikingJelly's own code.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.report import table, write_section
from events import FramingSpec, frame_events, make_events
from events.framing import PARALLEL_MIN_EVENTS, THREADS


def spikingjelly_integrate():
    """SpikingJelly's ``integrate_events_by_fixed_frames_number``, or None if it cannot load."""
    spec = importlib.util.find_spec("spikingjelly")
    if spec is None:
        return None
    for name in ("torchvision", "torchvision.transforms", "matplotlib", "matplotlib.pyplot"):
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules["torchvision"].transforms = sys.modules["torchvision.transforms"]
    sys.modules["matplotlib"].pyplot = sys.modules["matplotlib.pyplot"]
    root = Path(spec.submodule_search_locations[0]) / "datasets"
    package = types.ModuleType("spikingjelly.datasets")
    package.__path__ = [str(root)]
    sys.modules["spikingjelly.datasets"] = package
    utils_spec = importlib.util.spec_from_file_location("spikingjelly.datasets.utils", root / "utils.py")
    module = importlib.util.module_from_spec(utils_spec)
    sys.modules["spikingjelly.datasets.utils"] = module
    utils_spec.loader.exec_module(module)
    return module.integrate_events_by_fixed_frames_number


@dataclass(frozen=True)
class Case:
    """One framing job: a sensor, a recording length and the model's input."""

    name: str
    events: int
    sensor: tuple[int, int]
    time_steps: int
    frame: tuple[int, int]


CASES = [
    Case("DVS128 Gesture, long recording", 2_000_000, (128, 128), 16, (128, 128)),
    Case("DVS128 Gesture, typical recording", 300_000, (128, 128), 16, (128, 128)),
    Case("DAVIS346", 1_000_000, (346, 260), 10, (346, 260)),
    Case("N-MNIST sample", 4_000, (34, 34), 10, (34, 34)),
]


SPAN_US = 2_000_000


def recording(n: int, width: int, height: int, seed: int = 0) -> np.ndarray:
    """Uniform random events over ``[0, SPAN_US]``, sorted, with exactly one event at each end."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(1, SPAN_US, n))
    t[0], t[-1] = 0, SPAN_US
    return make_events(t, rng.integers(0, width, n), rng.integers(0, height, n), rng.integers(0, 2, n))


def round_robin(candidates: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each candidate, all run once per round so load changes hit them alike."""
    for fn in candidates.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def run_case(case: Case, split: str, repeats: int, sj) -> list:
    """Time ours, tonic and SpikingJelly on one case; each output is checked against ours first.

    Split by time, ``SPAN_US`` is a multiple of T, so tonic's and SpikingJelly's bins of
    ``span // T`` microseconds are ours; tonic's last bin ends before ``t_last`` and so leaves out
    the one event there, which the check allows for.
    """
    import tonic.transforms

    (width, height), (w, h) = case.sensor, case.frame
    assert SPAN_US % case.time_steps == 0
    events = recording(case.events, width, height)
    spec = FramingSpec(case.time_steps, w, h, split)
    tonic_events = np.empty(len(events), dtype=[("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")])
    for field in "txyp":
        tonic_events[field] = events[field]
    bins = {"n_event_bins" if split == "number" else "n_time_bins": case.time_steps}
    to_frame = tonic.transforms.ToFrame(sensor_size=(width, height, 2), **bins)
    sj_events = {"t": events["t"], "x": events["x"], "y": events["y"], "p": events["p"]}
    candidates = {
        "ours": lambda: frame_events(events, case.sensor, spec),
        "tonic": lambda: to_frame(tonic_events),
    }
    if sj is not None:
        candidates["SpikingJelly"] = lambda: sj(sj_events, split, case.time_steps, height, width)
    ours = candidates["ours"]()
    for name, fn in candidates.items():
        expected = ours.copy()
        if name == "tonic" and split == "time":
            last = events[-1]
            expected[-1, int(last["p"] != 0), last["y"], last["x"]] -= 1
        if not np.array_equal(np.asarray(fn(), dtype=np.float32).reshape(ours.shape), expected):
            raise SystemExit(f"{name} framed {case.name} by {split} differently from ours")
    seconds = round_robin(candidates, repeats)
    faster = min(v for k, v in seconds.items() if k != "ours")
    ratio = faster / seconds["ours"]
    cells = [f"{seconds[k] * 1e3:.2f} ({case.events / seconds[k] / 1e6:.0f})" for k in candidates]
    verdict = "met" if ratio >= 5 else "not met"
    label = f"{case.name}: {case.events:,} events, {width}x{height}, T={case.time_steps}"
    return [label, *cells, f"**{ratio:.1f}x** ({verdict})"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    sj = spikingjelly_integrate()
    tables = []
    for split, tonic_name in (("number", "n_event_bins"), ("time", "n_time_bins")):
        rows = [run_case(case, split, args.repeats, sj) for case in CASES]
        others = [f"tonic ToFrame({tonic_name})"] + ([f"SpikingJelly fixed frames number, {split}"] if sj else [])
        header = ["case", "ours ms (M ev/s)", *[f"{name} ms (M ev/s)" for name in others], "ours vs faster other"]
        tables.append(f"Split by {split}:\n\n" + table(header, rows))
    body = (
        f"`python -m bench.framing --repeats {args.repeats}`: random events (uniform pixels and polarity, sorted "
        "times) framed into T two-channel count frames at sensor resolution, split by event number and by time; "
        "each implementation's output is checked equal to ours first (tonic's time bins leave out the one event "
        "at the last time, which the check allows for), then all run round-robin, medians of "
        f"{args.repeats} rounds. Ours uses {THREADS} threads from {PARALLEL_MIN_EVENTS:,} events up. "
        "tonic gets the int64 structured array it expects (conversion not timed); SpikingJelly the same "
        "column views ours reads.\n\n" + "\n\n".join(tables) + "\n\nTarget (issue 3): at least 5x the faster "
        "of tonic and SpikingJelly (the issue names SpikingJelly's split by number; split by time is measured "
        "alongside)."
    )
    print(body)
    if not args.no_write:
        write_section("framing", "Framing throughput (events -> [T, 2, h, w])", body)


if __name__ == "__main__":
    main()
