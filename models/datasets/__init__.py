"""Datasets for training: each opener returns an ``EventDataset`` for one split.

An opener is called as ``opener(root, split, spec, **options)`` where ``split`` is ``"train"``
or ``"test"``, ``spec`` a ``FramingSpec`` and ``root`` the dataset's folder (``None`` for the
generated synthetic set). Register new ones in ``DATASETS``.
"""

from __future__ import annotations

from collections.abc import Callable

from models.datasets.event_dataset import EventDataset, Sample

DATASETS: dict[str, Callable[..., EventDataset]] = {}

__all__ = ["DATASETS", "EventDataset", "Sample"]
