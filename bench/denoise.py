"""Noise-filter throughput: ours vs dv-processing's BackgroundActivityNoiseFilter vs tonic's denoise.

The three filter the same sorted events, which start past the window (where dv-processing's
convention is ours exactly; see ``events.denoise``); dv-processing's survivors are checked equal
to ours and tonic's (4 neighbours) to be a subset of ours before anything is timed. Each gets its
native input, built before timing: dv-processing an ``EventStore``, tonic the structured array it
reads. All run round-robin; medians. A second table puts the filters' time beside the rest of
what a request costs for a typical noisy recording: decoding its EVT 3.0 file, framing, and the
demo model's forward pass.
"""

from __future__ import annotations

import argparse
import datetime
import io
import time

import numpy as np

from bench.framing import round_robin
from bench.report import table, write_section
from events import FramingSpec, frame_events, load, make_events
from events.denoise import background_activity, hot_pixels, remove_noise
from events.evt3 import write_evt3

WINDOW_US = 2000
START_US = 1_000_000


def recording(n: int, sensor: tuple[int, int], span_us: int, seed: int = 0) -> np.ndarray:
    """Uniform random events over ``span_us`` starting at ``START_US``, sorted by time."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(START_US, START_US + span_us, n))
    return make_events(t, rng.integers(0, sensor[0], n), rng.integers(0, sensor[1], n), rng.integers(0, 2, n))


def dv_filter(events: np.ndarray, sensor: tuple[int, int]):
    """A callable running dv-processing's filter on a prebuilt ``EventStore``; returns its survivors."""
    import dv_processing as dv

    store = dv.EventStore()
    for t, x, y, p in events.tolist():
        store.push_back(t, x, y, bool(p))
    window = datetime.timedelta(microseconds=WINDOW_US)

    def run() -> np.ndarray:
        noise_filter = dv.noise.BackgroundActivityNoiseFilter(sensor, window)
        noise_filter.accept(store)
        return noise_filter.generateEvents().numpy()

    return run


def filter_case(n: int, sensor: tuple[int, int], span_us: int, repeats: int, with_tonic: bool) -> list:
    from tonic.functional.denoise import denoise_numpy

    events = recording(n, sensor, span_us)
    candidates = {
        "ours": lambda: background_activity(events, sensor, WINDOW_US)[0],
        "dv-processing": dv_filter(events, sensor),
    }
    if with_tonic:
        candidates["tonic"] = lambda: denoise_numpy(events, filter_time=WINDOW_US)
    ours = candidates["ours"]()
    theirs = candidates["dv-processing"]()
    if not (np.array_equal(ours["t"], theirs["timestamp"]) and np.array_equal(ours["x"], theirs["x"])):
        raise SystemExit("dv-processing kept other events than ours")
    if with_tonic:
        kept = set(map(tuple, ours[["t", "x", "y"]].tolist()))
        if not set(map(tuple, candidates["tonic"]()[["t", "x", "y"]].tolist())) <= kept:
            raise SystemExit("tonic kept an event ours dropped")
    seconds = round_robin(candidates, repeats)
    fastest = min(v for k, v in seconds.items() if k != "ours")
    hot = round_robin({"hot": lambda: hot_pixels(events, sensor)}, repeats)["hot"]
    rate = n / span_us * 1e6 / (sensor[0] * sensor[1])
    cells = [f"{seconds[k] * 1e3:.2f} ({n / seconds[k] / 1e6:.1f})" for k in candidates]
    if not with_tonic:
        cells.append("not run (pure Python: minutes)")
    label = f"{n:,} events, {sensor[0]}x{sensor[1]}, {rate:.0f} Hz/pixel, {len(ours) / n:.0%} kept"
    return [label, *cells, f"**{fastest / seconds['ours']:.1f}x**", f"{hot * 1e3:.2f} ({n / hot / 1e6:.1f})"]


def request_share(repeats: int) -> str:
    """Decode, filter, frame and infer one noisy 128x128 gesture-sized recording; milliseconds each."""
    import torch

    from models.checkpoint import load_checkpoint
    from models.datasets.sensor_noise import SensorNoise
    from models.datasets.synthetic import SENSOR_SIZE, noisy_recording

    events = noisy_recording(8, 1, 8, noise=SensorNoise.fixed(3.0, 1e-3))
    buffer = io.BytesIO()
    write_evt3(buffer, events, SENSOR_SIZE)
    data = buffer.getvalue()
    model, card = load_checkpoint("models/checkpoints/demo.safetensors")
    plain = FramingSpec(card.arch.time_steps, card.arch.width, card.arch.height)
    torch.set_num_threads(1)
    filtered = remove_noise(events, SENSOR_SIZE, WINDOW_US, True)[0]
    frames = torch.from_numpy(frame_events(filtered, SENSOR_SIZE, plain))[None]
    steps = {
        "decode EVT 3.0": lambda: load(data, "evt3"),
        "hot-pixel + background-activity filters": lambda: remove_noise(events, SENSOR_SIZE, WINDOW_US, True),
        "framing": lambda: frame_events(filtered, SENSOR_SIZE, plain),
        "demo forward pass (PyTorch, 1 thread)": lambda: model(frames),
    }
    with torch.no_grad():
        seconds = round_robin(steps, repeats)
    total = sum(seconds.values())
    rows = [[name, f"{s * 1e3:.3f}", f"{s / total:.1%}"] for name, s in seconds.items()]
    return (
        f"One recording of {len(events):,} events (a wave gesture, 3 Hz/pixel background, hot pixels at 1e-3):\n\n"
        + table(["step", "ms (median)", "share"], rows)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    rows = [
        filter_case(200_000, (128, 128), 1_000_000, args.repeats, with_tonic=True),
        filter_case(2_000_000, (128, 128), 2_000_000, args.repeats, with_tonic=False),
        filter_case(2_000_000, (346, 260), 1_000_000, args.repeats, with_tonic=False),
    ]
    header = ["case", "ours ms (M ev/s)", "dv-processing ms (M ev/s)", "tonic ms (M ev/s)", "ours vs fastest other"]
    header.append("ours hot-pixel filter ms (M ev/s)")
    body = (
        f"`python -m bench.denoise --repeats {args.repeats}`: background-activity filter, {WINDOW_US} us window, on "
        "uniform random events (sorted, starting past the window so dv-processing's convention is ours exactly: its "
        "survivors are checked equal to ours, tonic's to be a subset, before timing). dv-processing gets a prebuilt "
        "`EventStore` (building it is not timed), tonic its structured array; ours returns the filtered structured "
        f"array. Round-robin, medians of {args.repeats}. Target (issue 16): at least the fastest of them.\n\n"
        + table(header, rows)
        + "\n\n"
        + request_share(args.repeats)
    )
    print(body)
    print(f"({time.perf_counter() - started:.0f} s)")
    if not args.no_write:
        write_section("denoise", "Noise filters: throughput and share of a request", body)


if __name__ == "__main__":
    main()
