"""Write the example recordings: simulated gestures saved in real camera formats.

Run from the repository root: ``python examples/generate.py``. Each file holds one recording
of the synthetic generator (test-split seed, never used in training), so the demo model should
classify it as the gesture in its name. ``long_sequence.evt3.raw`` is different: ten gestures in a
row with idle gaps between them, for the timeline and the stream; ``long_sequence.truth.csv`` says
which gesture happens when (columns ``start_us,end_us,label``).
"""

from __future__ import annotations

from pathlib import Path

from events.aedat2 import write_aedat2
from events.aedat3 import write_aedat3
from events.aedat4 import write_aedat4
from events.evt2 import write_evt2
from events.evt3 import write_evt3
from models.datasets.synthetic import SENSOR_SIZE, generate_recording, split_seed
from models.datasets.synthetic_sequence import generate_long_recording

HERE = Path(__file__).resolve().parent
SEED = split_seed(7, "test")

# file name -> (recording index, writer); the gesture is the name before the first dot.
EXAMPLES = {
    "swipe_left.aedat4": (2, lambda path, ev: write_aedat4(path, ev, SENSOR_SIZE, compression="lz4")),
    "rotate_clockwise.evt3.raw": (0, lambda path, ev: write_evt3(path, ev, SENSOR_SIZE)),
    "swipe_up.evt2.raw": (0, lambda path, ev: write_evt2(path, ev, SENSOR_SIZE)),
    "approach.aedat": (0, lambda path, ev: write_aedat3(path, ev, SENSOR_SIZE, source="DVS128")),
    "swipe_down.aedat2.aedat": (1, lambda path, ev: write_aedat2(path, ev, SENSOR_SIZE, chip="DVS128")),
}
LONG = "long_sequence.evt3.raw"
LONG_TRUTH = "long_sequence.truth.csv"
LONG_GESTURES = 10


def main() -> None:
    for name, (index, write) in EXAMPLES.items():
        events = generate_recording(name.split(".")[0], SEED, index)
        write(HERE / name, events)
        print(f"{name}: {len(events)} events, {(HERE / name).stat().st_size / 1024:.0f} KiB")
    long = generate_long_recording(SEED, LONG_GESTURES)
    write_evt3(HERE / LONG, long.events, SENSOR_SIZE)
    long.write_truth(HERE / LONG_TRUTH)
    print(
        f"{LONG}: {len(long.events)} events, {long.duration_us / 1e6:.1f} s, {len(long.segments)} gestures, "
        f"{(HERE / LONG).stat().st_size / 1024:.0f} KiB"
    )


if __name__ == "__main__":
    main()
