"""Decode one tiny file of each compiled decoder's format, so numba loads its cached machine code
at start-up (about 0.35 s in all) instead of during a server's first uploads of that format; the
formats whose stream decoder has compiled code of its own (packed records' ``_feed``, another
0.3 s) are also fed to a ``StreamDecoder``, for a server's first live stream."""

from __future__ import annotations

import io
import time

import numpy as np

from events.aedat2 import write_aedat2
from events.aedat3 import write_aedat3
from events.aedat4 import write_aedat4
from events.evt3 import write_evt3
from events.load import load
from events.nmnist import write_nmnist
from events.packed_records import write_events
from events.recording import make_events
from events.stream_decoder import StreamDecoder

SENSOR = (34, 34)
WRITERS = {
    "aedat2": lambda f, ev: write_aedat2(f, ev, (128, 128)),
    "aedat3": lambda f, ev: write_aedat3(f, ev, (128, 128)),
    "aedat4": lambda f, ev: write_aedat4(f, ev, SENSOR, compression="none"),
    "evt3": lambda f, ev: write_evt3(f, ev, SENSOR),
    "nmnist": lambda f, ev: write_nmnist(f, ev, SENSOR),
    "events": write_events,
}
STREAM_COMPILED = ("events",)  # the stream decoders of the others reuse their file decoder's loops


def warm_up_decoders() -> dict[str, float]:
    """Write and decode a 64-event file per compiled format; seconds each took."""
    ramp = np.arange(64)
    sample = make_events(ramp * 10, ramp % SENSOR[0], ramp % SENSOR[1], ramp % 2)
    seconds = {}
    for name, write in WRITERS.items():
        started = time.perf_counter()
        buffer = io.BytesIO()
        write(buffer, sample)
        outputs = [load(buffer.getvalue(), format=name).events]
        if name in STREAM_COMPILED:
            outputs.append(StreamDecoder(name).feed(buffer.getvalue()))
        for decoded in outputs:
            if len(decoded) != len(sample):
                raise RuntimeError(f"warm-up {name} file decoded to {len(decoded)} events, not {len(sample)}")
        seconds[name] = time.perf_counter() - started
    return seconds
