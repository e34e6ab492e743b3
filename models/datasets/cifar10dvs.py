"""CIFAR10-DVS (Li et al. 2017): class folders ``airplane`` .. ``truck`` of recordings.

Recordings are the original AEDAT 2.0 files (``.aedat``, DVS128 address layout, no chip named:
decoded with jAER's convention exactly as the service decodes an upload; SpikingJelly also
transposes x/y for this dataset, we do not) or AEDAT 4 conversions (``.aedat4``, as tonic
downloads them). Sensor: 128 x 128.

There is no official split. Ours is deterministic: each class's files in natural name order
(``cifar10_cat_2`` before ``cifar10_cat_10``), the first ``floor(train_fraction * n)`` for
train and the rest for test (``train_fraction`` = 0.9, SpikingJelly's usual 9:1).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from events import FramingSpec
from models.datasets.event_dataset import EventDataset, Sample
from models.datasets.recording_files import check_split, file_events, natural_key

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SENSOR_SIZE = (128, 128)
SUFFIXES = (".aedat", ".aedat4")


def split_files(files: list[Path], split: str, train_fraction: float) -> list[Path]:
    """This split's share of one class's files (natural order, train first)."""
    ordered = sorted(files, key=natural_key)
    cut = int(len(ordered) * train_fraction)
    return ordered[:cut] if split == "train" else ordered[cut:]


def open_cifar10dvs(
    root, split: str, spec: FramingSpec, *, train_fraction: float = 0.9, cache: bool = False
) -> EventDataset:
    """The ``cifar10dvs`` opener."""
    check_split(split)
    root = Path(root)
    samples = []
    for label, name in enumerate(CLASSES):
        folder = root / name
        if not folder.is_dir():
            raise FileNotFoundError(f"no class folder {folder}")
        files = [p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES]
        for path in split_files(files, split, train_fraction):
            samples.append(Sample(partial(file_events, path), label, f"{name}/{path.name}"))
    return EventDataset(samples, list(CLASSES), SENSOR_SIZE, spec, "cifar10dvs", cache=cache)
