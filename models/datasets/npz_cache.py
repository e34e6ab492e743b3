"""Event caches as tonic and SpikingJelly write them: ``root/<split>/<class>/*.npz`` (t, x, y, p).

SpikingJelly keeps them under ``<dataset>/events_np/``; pointing ``root`` at the dataset folder
works too. Classes are the sorted union of the class folders of both splits (so labels agree
between splits, like torchvision's ``ImageFolder``). The files store no geometry: pass
``sensor_size``, else it is the smallest of the usual sensors (34x34, 128x128, 240x180,
304x240, 346x260, 640x480, 1280x720) that holds the events of up to 32 files spread over
the split, or those files' bounding size when none does.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from events import FramingSpec
from models.datasets.event_dataset import EventDataset, Sample
from models.datasets.recording_files import check_split, file_events, natural_key

KNOWN_SENSORS = ((34, 34), (128, 128), (240, 180), (304, 240), (346, 260), (640, 480), (1280, 720))
PROBE_FILES = 32


def _split_dir(root: Path, split: str) -> Path:
    for base in (root, root / "events_np"):
        if (base / split).is_dir():
            return base
    raise FileNotFoundError(f"no {split}/ folder in {root} or {root / 'events_np'}")


def infer_sensor(paths: list[Path]) -> tuple[int, int]:
    """The smallest usual sensor holding the events of a spread of ``paths`` (see module doc)."""
    width = height = 1
    for path in paths[:: max(1, len(paths) // PROBE_FILES)][:PROBE_FILES]:
        events = file_events(path, "npz")
        if len(events):
            width, height = max(width, int(events["x"].max()) + 1), max(height, int(events["y"].max()) + 1)
    return next(((w, h) for w, h in KNOWN_SENSORS if width <= w and height <= h), (width, height))


def open_npz_cache(
    root, split: str, spec: FramingSpec, *, sensor_size: tuple[int, int] | None = None, cache: bool = False
) -> EventDataset:
    """The ``npz`` opener."""
    check_split(split)
    base = _split_dir(Path(root), split)
    split_dirs = [base / s for s in ("train", "test") if (base / s).is_dir()]
    classes = sorted({p.name for d in split_dirs for p in d.iterdir() if p.is_dir()})
    paths, labels = [], []
    for label, name in enumerate(classes):
        for path in sorted((base / split / name).glob("*.npz"), key=natural_key):
            paths.append(path)
            labels.append(label)
    samples = [
        Sample(partial(file_events, path, "npz"), label, f"{path.parent.name}/{path.name}")
        for path, label in zip(paths, labels, strict=True)
    ]
    sensor = tuple(sensor_size) if sensor_size is not None else infer_sensor(paths)
    return EventDataset(samples, classes, sensor, spec, "npz", cache=cache)
