"""Sharing one compiled kernel's work between the calling thread and helper threads.

Atomic counters in an ``int64`` array: numba has no CPU atomics, so two intrinsics emit LLVM's
own ``atomicrmw add`` and ``load atomic``. Threads running a kernel without the GIL claim units
of work from one counter and count finished units on another, so a caller learns that all
work is done in nanoseconds instead of waiting for a sleeping thread to be woken.

``HelperThreads`` hands kernels to daemon threads through a ``queue.SimpleQueue``: cheaper for
the caller than ``ThreadPoolExecutor.submit``, which builds a future and takes locks that work
published through the counters does not need.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable

import numba
import numpy as np
from numba.core import cgutils, types
from numba.extending import intrinsic

logger = logging.getLogger(__name__)

SPINS = 1 << 14  # polls between short sleeps while waiting; a poll takes a few nanoseconds


def _element_pointer(context, builder, array_type, array, index):
    view = context.make_array(array_type)(context, builder, array)
    return cgutils.get_item_pointer(context, builder, array_type, view, [index])


@intrinsic
def fetch_increment(typingctx, counters, index):
    """``counters[index] += 1`` atomically (acquire and release); returns the value before."""
    if counters.dtype != types.int64:
        return None

    def codegen(context, builder, signature, args):
        pointer = _element_pointer(context, builder, signature.args[0], *args)
        return builder.atomic_rmw("add", pointer, context.get_constant(types.int64, 1), "acq_rel")

    return types.int64(counters, index), codegen


@intrinsic
def load_acquire(typingctx, counters, index):
    """``counters[index]``, read so that everything written before its last increment is visible."""
    if counters.dtype != types.int64:
        return None

    def codegen(context, builder, signature, args):
        pointer = _element_pointer(context, builder, signature.args[0], *args)
        return builder.load_atomic(pointer, "acquire", 8)

    return types.int64(counters, index), codegen


@numba.njit(cache=True, nogil=True)
def _reached(counters, index, target, spins) -> bool:  # pragma: no cover - compiled
    for _ in range(spins):  # noqa: SIM110 - numba compiles no generator passed to any()
        if load_acquire(counters, index) >= target:
            return True
    return False


def wait_until(counters: np.ndarray, index: int, target: int) -> None:
    """Block until ``counters[index] >= target``: spin briefly without the GIL, then sleep and retry."""
    while not _reached(counters, index, target, SPINS):
        time.sleep(50e-6)


class HelperThreads:
    """Daemon threads that run the callables handed to them; started on first use, and again after a fork."""

    def __init__(self, count: int, name: str) -> None:
        self.count = count
        self.name = name
        self._jobs: queue.SimpleQueue | None = None
        self._lock = threading.Lock()
        os.register_at_fork(after_in_child=self._forget_threads)

    def hand(self, job: Callable[[], object]) -> None:
        """Queue ``job`` for the next free helper; nobody waits for it, so it must publish its own results."""
        (self._jobs or self._start()).put(job)

    def _start(self) -> queue.SimpleQueue:
        with self._lock:
            if self._jobs is None:
                jobs: queue.SimpleQueue = queue.SimpleQueue()
                for i in range(self.count):
                    threading.Thread(target=self._serve, args=(jobs,), name=f"{self.name}-{i}", daemon=True).start()
                self._jobs = jobs
            return self._jobs

    def _forget_threads(self) -> None:
        self._jobs, self._lock = None, threading.Lock()

    @staticmethod
    def _serve(jobs: queue.SimpleQueue) -> None:
        while True:
            job = jobs.get()
            try:
                job()
            except Exception:
                logger.exception("a helper thread's job failed")
