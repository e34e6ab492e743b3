"""Several server processes on one port: how many, and how each one builds its app.

``STLSNN_WORKERS=0`` (the default) means one process when a GPU is visible (each process would
load its own copy of every model onto the one GPU and split the batches its batcher could have
gathered) and otherwise one per CPU core this process may use, at most ``MAX_AUTO_WORKERS``: one
Python process keeps about one core busy, whatever its threads. Each worker has its own models,
batchers and decode threads; ``/metrics`` adds up every worker's series through prometheus-client's
multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, see ``service.metrics``).
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI

from service.app import create_app
from service.request_logging import configure_logging
from service.settings import Settings

MAX_AUTO_WORKERS = 8
GPU_DEVICE_NODE = Path("/dev/nvidiactl")


def gpu_visible() -> bool:
    """Whether an NVIDIA GPU is visible to this process (its control device node), without importing a runtime."""
    return GPU_DEVICE_NODE.exists()


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def worker_count(settings: Settings, cores: int | None = None, gpu: bool | None = None) -> int:
    """The number of server processes ``settings`` ask for, resolving 0 as the module docstring says."""
    if settings.workers:
        return settings.workers
    on_gpu = settings.device == "cuda" or (settings.device == "auto" and (gpu_visible() if gpu is None else gpu))
    if on_gpu:
        return 1
    return max(1, min(usable_cores() if cores is None else cores, MAX_AUTO_WORKERS))


def settings_environment(settings: Settings) -> dict[str, str]:
    """Every setting as its ``STLSNN_*`` variable: worker processes read only the environment, not the flags."""
    env = {}
    for name, value in settings.model_dump().items():
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        env[f"STLSNN_{name.upper()}"] = text
    return env


def create_worker_app() -> FastAPI:
    """uvicorn's app factory in each worker process: settings from the environment, JSON logs."""
    settings = Settings()
    configure_logging(settings.log_level)
    return create_app(settings)
