"""Datasets for training: each opener returns an ``EventDataset`` for one split.

An opener is called as ``opener(root, split, spec, **options)`` where ``split`` is ``"train"``
or ``"test"``, ``spec`` a ``FramingSpec`` and ``root`` the dataset's folder (``None`` for the
generated synthetic set). Register new ones in ``DATASETS``.
"""

from __future__ import annotations

from collections.abc import Callable

from models.datasets.event_dataset import EventDataset, Sample

DATASETS: dict[str, Callable[..., EventDataset]] = {}

from models.datasets.synthetic import open_synthetic  # noqa: E402

DATASETS["synthetic"] = open_synthetic

from models.datasets.cifar10dvs import open_cifar10dvs  # noqa: E402
from models.datasets.dvsgesture import open_dvsgesture  # noqa: E402
from models.datasets.nmnist import open_nmnist  # noqa: E402
from models.datasets.npz_cache import open_npz_cache  # noqa: E402

DATASETS.update(dvsgesture=open_dvsgesture, nmnist=open_nmnist, cifar10dvs=open_cifar10dvs, npz=open_npz_cache)

__all__ = ["DATASETS", "EventDataset", "Sample"]
