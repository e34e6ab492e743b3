"""N-MNIST (Orchard et al. 2015): ``Train/<digit>/*.bin`` and ``Test/<digit>/*.bin``, 34 x 34.

Each ``.bin`` file is one sample, decoded by the ``nmnist`` format of ``events`` (40-bit
events, 23-bit timestamps); the label is the digit folder. Files are listed in natural order.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from events import FramingSpec
from models.datasets.event_dataset import EventDataset, Sample
from models.datasets.recording_files import check_split, file_events, natural_key

CLASSES = tuple(str(d) for d in range(10))
SENSOR_SIZE = (34, 34)


def open_nmnist(root, split: str, spec: FramingSpec, *, cache: bool = False) -> EventDataset:
    """The ``nmnist`` opener."""
    check_split(split)
    folder = Path(root) / split.capitalize()
    if not folder.is_dir():
        raise FileNotFoundError(f"no {folder} (expected Train/ and Test/ with digit folders)")
    samples = [
        Sample(partial(file_events, path, "nmnist"), label, f"{digit}/{path.name}")
        for label, digit in enumerate(CLASSES)
        for path in sorted((folder / digit).glob("*.bin"), key=natural_key)
    ]
    return EventDataset(samples, list(CLASSES), SENSOR_SIZE, spec, "nmnist", cache=cache)
