"""DVS128 Gesture (IBM, Amir et al. 2017), read from the official ``DvsGesture`` folder.

Layout: ``user<NN>_<lighting>.aedat`` (AEDAT 3.1, DVS128, 128 x 128) each with
``user<NN>_<lighting>_labels.csv`` (``class,startTime_usec,endTime_usec``); the official split
lists the recordings in ``trials_to_train.txt`` / ``trials_to_test.txt``. Each labelled segment
is one sample: the events with ``startTime_usec <= t < endTime_usec`` (SpikingJelly's and
tonic's cut); classes 1..11 become labels 0..10 named as in ``gesture_mapping.csv``.

Segments of one recording share its decode: the last few decoded recordings are kept per
process (``lru_cache``), so a sequential pass decodes each file once.
"""

from __future__ import annotations

import csv
from functools import lru_cache, partial
from pathlib import Path

import numpy as np

from events import FramingSpec, load
from models.datasets.event_dataset import EventDataset, Sample
from models.datasets.recording_files import check_split

CLASSES = (
    "hand_clapping",
    "right_hand_wave",
    "left_hand_wave",
    "right_arm_clockwise",
    "right_arm_counter_clockwise",
    "left_arm_clockwise",
    "left_arm_counter_clockwise",
    "arm_roll",
    "air_drums",
    "air_guitar",
    "other_gestures",
)
SENSOR_SIZE = (128, 128)


@lru_cache(maxsize=4)
def _recording(path: str) -> np.ndarray:
    return load(path, format="aedat3").events


def segment_events(path: str, start_us: int, end_us: int) -> np.ndarray:
    """The events of one labelled segment: ``start_us <= t < end_us``."""
    events = _recording(path)
    return events[(events["t"] >= start_us) & (events["t"] < end_us)]


def read_labels(path: Path) -> list[tuple[int, int, int]]:
    """``(label 0..10, start µs, end µs)`` rows of a ``*_labels.csv`` file."""
    rows = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            label = int(row["class"]) - 1
            if not 0 <= label < len(CLASSES):
                raise ValueError(f"{path}: class {row['class']} is not in 1..{len(CLASSES)}")
            rows.append((label, int(row["startTime_usec"]), int(row["endTime_usec"])))
    return rows


def _dataset_dir(root: Path) -> Path:
    for candidate in (root, root / "DvsGesture"):
        if (candidate / "trials_to_train.txt").exists():
            return candidate
    raise FileNotFoundError(f"no trials_to_train.txt in {root} or {root / 'DvsGesture'}")


def open_dvsgesture(root, split: str, spec: FramingSpec, *, cache: bool = False) -> EventDataset:
    """The ``dvsgesture`` opener: one sample per labelled segment of the split's recordings."""
    check_split(split)
    folder = _dataset_dir(Path(root))
    trials = (folder / f"trials_to_{split}.txt").read_text().split()
    samples = []
    for name in trials:
        recording = folder / name
        labels = recording.with_name(recording.stem + "_labels.csv")
        if not recording.exists() or not labels.exists():
            raise FileNotFoundError(f"{split} trial {name}: missing {recording.name} or {labels.name}")
        for label, start, end in read_labels(labels):
            loader = partial(segment_events, str(recording), start, end)
            samples.append(Sample(loader, label, f"{name}[{start}:{end}]"))
    return EventDataset(samples, list(CLASSES), SENSOR_SIZE, spec, "dvsgesture", cache=cache)
