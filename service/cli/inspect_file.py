"""``stlsnn inspect FILE``: what a recording holds, read locally with ``events.load`` (no server).

Reports the format, event count, duration (latest minus earliest timestamp, so events out of
time order do not shorten it), sensor size (and whether the file states it), event rate, ON/OFF
balance and time-order problems: the number of events whose timestamp is earlier than the one
before it (``steps_back``) and the largest such step. ``--png`` draws every event
accumulated on the sensor: ON and OFF counts in two colours added on black, each polarity scaled
so its 99th-percentile pixel is full colour (a few hot pixels do not wash the picture out).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass

import numpy as np

import events
from events import EventDecodeError, Recording
from service.cli.png import write_png

ON_COLOUR = np.array([255, 170, 0], dtype=np.float64)  # orange and blue stay apart for colour-blind readers
OFF_COLOUR = np.array([0, 140, 255], dtype=np.float64)


@dataclass
class Summary:
    """The facts ``inspect`` prints; times in microseconds, rate in events per second."""

    file: str
    format: str
    events: int
    duration_us: int
    sensor_size: tuple[int, int]
    sensor_from_header: bool
    event_rate: float
    on: int
    off: int
    on_fraction: float
    steps_back: int
    largest_step_back_us: int


def summarise(name: str, recording: Recording) -> Summary:
    stream = recording.events
    n = len(stream)
    on = int(np.count_nonzero(stream["p"]))
    backwards = -np.diff(stream["t"])
    backwards = backwards[backwards > 0]
    duration = int(stream["t"].max() - stream["t"].min()) if n else 0
    return Summary(
        file=name,
        format=recording.format,
        events=n,
        duration_us=duration,
        sensor_size=(int(recording.sensor_size[0]), int(recording.sensor_size[1])),
        sensor_from_header=recording.sensor_from_header,
        event_rate=n / (duration / 1e6) if duration else 0.0,
        on=on,
        off=n - on,
        on_fraction=on / n if n else 0.0,
        steps_back=int(backwards.size),
        largest_step_back_us=int(backwards.max()) if backwards.size else 0,
    )


def accumulated_image(recording: Recording) -> np.ndarray:
    """``(height, width, 3)`` uint8: ON and OFF event counts per pixel in their two colours."""
    width, height = recording.sensor_size
    stream = recording.events
    inside = (stream["x"] < width) & (stream["y"] < height)
    stream = stream[inside]
    pixel = stream["y"].astype(np.int64) * width + stream["x"]
    image = np.zeros((height * width, 3), dtype=np.float64)
    for polarity, rgb in ((1, ON_COLOUR), (0, OFF_COLOUR)):
        counts = np.bincount(pixel[stream["p"] == polarity], minlength=height * width).astype(np.float64)
        if counts.any():
            full = np.percentile(counts[counts > 0], 99)
            image += np.minimum(counts / full, 1.0)[:, None] * rgb
    return np.clip(np.rint(image), 0, 255).astype(np.uint8).reshape(height, width, 3)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="one event file")
    parser.add_argument("--format", dest="event_format", help="decoder name (skips detection)")
    parser.add_argument("--png", metavar="OUT", help="also draw the accumulated events into this PNG file")
    parser.add_argument("--json", action="store_true", help="print the facts as JSON")


def run(args: argparse.Namespace) -> int:
    try:
        recording = events.load(args.file, format=args.event_format)
    except (EventDecodeError, OSError) as error:
        print(f"stlsnn inspect: {args.file}: {error}", file=sys.stderr)
        return 1
    summary = summarise(args.file, recording)
    if args.json:
        print(json.dumps(asdict(summary), indent=2))
    else:
        print(_text(summary))
    if args.png:
        write_png(args.png, accumulated_image(recording))
        if not args.json:
            print(f"{'png':<12}{args.png}")
    return 0


def _text(s: Summary) -> str:
    width, height = s.sensor_size
    source = "from the file" if s.sensor_from_header else "fitted to the events: the file states none"
    order = "in order" if not s.steps_back else f"{s.steps_back} steps back (largest {s.largest_step_back_us} us)"
    lines = [
        ("file", s.file),
        ("format", s.format),
        ("events", str(s.events)),
        ("duration", f"{s.duration_us / 1e6:.6f} s ({s.duration_us} us)"),
        ("sensor", f"{width} x {height} ({source})"),
        ("event rate", f"{s.event_rate:.1f} events/s"),
        ("ON / OFF", f"{s.on} / {s.off} ({100 * s.on_fraction:.1f} % ON)"),
        ("time order", order),
    ]
    return "\n".join(f"{key:<12}{value}" for key, value in lines)
