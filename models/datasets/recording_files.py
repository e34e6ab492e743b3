"""Shared pieces of the on-disk dataset readers: loading one file's events, ordering file names.

Sample loaders must pickle (DataLoader workers), so they are ``functools.partial`` objects over
the module-level functions here, never lambdas.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from events import load


def file_events(path: str | Path, format: str | None = None) -> np.ndarray:
    """The events of one recording file (format detected from content unless given)."""
    return load(path, format=format).events


def natural_key(path: Path) -> list:
    """Sort key comparing digit runs as numbers: ``x_2`` before ``x_10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
