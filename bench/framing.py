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
from pathlib import Path

import numpy as np

from bench.report import table, write_section
from events import FramingSpec, frame_events, make_events


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


def recording(n: int, width: int, height: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, 2_000_000, n))
    return make_events(t, rng.integers(0, width, n), rng.integers(0, height, n), rng.integers(0, 2, n))


def median_seconds(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--time-steps", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    import tonic.transforms

    width = height = 128
    t_steps = args.time_steps
    events = recording(args.events, width, height)
    spec = FramingSpec(t_steps, width, height, "number")
    ours = frame_events(events, (width, height), spec)

    tonic_events = np.empty(len(events), dtype=[("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")])
    for field in "txyp":
        tonic_events[field] = events[field]
    to_frame = tonic.transforms.ToFrame(sensor_size=(width, height, 2), n_event_bins=t_steps)
    sj = spikingjelly_integrate()
    sj_events = {"t": events["t"], "x": events["x"], "y": events["y"], "p": events["p"]}

    candidates = {"ours (events.frame_events)": lambda: frame_events(events, (width, height), spec)}
    candidates["tonic ToFrame(n_event_bins)"] = lambda: to_frame(tonic_events)
    if sj is not None:
        candidates["SpikingJelly integrate_events_by_fixed_frames_number"] = lambda: sj(
            sj_events, "number", t_steps, height, width
        )
    rows, seconds = [], {}
    for name, fn in candidates.items():
        out = np.asarray(fn(), dtype=np.float32).reshape(ours.shape)
        same = bool(np.array_equal(out, ours))
        seconds[name] = median_seconds(fn, args.repeats)
        rows.append([name, f"{seconds[name] * 1e3:.1f}", f"{len(events) / seconds[name] / 1e6:.1f}", same])
    ours_s = seconds["ours (events.frame_events)"]
    fastest_other = min(v for k, v in seconds.items() if not k.startswith("ours"))
    for row in rows:
        row.append(f"{seconds[row[0]] / ours_s:.2f}x")

    down = FramingSpec(t_steps, 32, 32, "number")
    down_s = median_seconds(lambda: frame_events(events, (width, height), down), args.repeats)
    body = (
        f"`python -m bench.framing --events {args.events} --time-steps {t_steps}`: {len(events):,} random events "
        f"on a {width}x{height} sensor into {t_steps} frames split by event number, median of {args.repeats} runs. "
        "'equal' says the output matched ours exactly; 'ours is' = their time / our time.\n\n"
        + table(["implementation", "median ms", "M events/s", "equal", "ours is"], rows)
        + f"\n\nOurs vs the faster of the others: **{fastest_other / ours_s:.1f}x** (target >= 5x). "
        f"With 128x128 -> 32x32 downsampling in the same call: {down_s * 1e3:.1f} ms "
        f"({len(events) / down_s / 1e6:.1f} M events/s)."
    )
    print(body)
    if not args.no_write:
        write_section("framing", "Framing throughput (events -> [T, 2, h, w])", body)


if __name__ == "__main__":
    main()
