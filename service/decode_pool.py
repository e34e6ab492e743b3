"""``DecodePool``: the threads that decode and frame uploads, with a cheap hop from the event loop.

``run(fn, *args)`` puts one closure on a ``SimpleQueue`` and hands the result back through one
``call_soon_threadsafe``: the profile (BENCHMARKS.md, service profile) shows ``ThreadPoolExecutor``'s
per-call ``Future``, ``Condition``, work item and chained callbacks as the largest cost of a request
outside the model. It stays a ``concurrent.futures.Executor``, so ``run_in_executor`` still works, and
``shutdown(wait=True)`` runs every call queued before it, then joins the threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any


class DecodePool(Executor):
    """``workers`` daemon threads taking closures from one queue; ``None`` tells one thread to stop."""

    def __init__(self, workers: int, name: str = "decode"):
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._closed = False
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True) for i in range(workers)]
        for thread in self._threads:
            thread.start()

    def run(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future:
        """``fn(*args)`` in a pool thread, as a future of the running loop; skipped if cancelled before it starts."""
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()

        def job() -> None:
            if waiter.cancelled():
                return
            try:
                result = fn(*args)
            except BaseException as exc:  # the awaiting request gets it; the thread keeps serving
                _hand_back(loop, _set_exception, waiter, exc)
            else:
                _hand_back(loop, _set_result, waiter, result)

        self._put(job)
        return waiter

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()

        def job() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:
                future.set_exception(exc)

        self._put(job)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                for _ in self._threads:
                    self._jobs.put(None)
        if wait:
            for thread in self._threads:
                thread.join()

    def _put(self, job: Callable[[], None]) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the decode pool is shut down")
            self._jobs.put(job)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            job()


def _hand_back(loop: asyncio.AbstractEventLoop, setter: Callable, waiter: asyncio.Future, value: Any) -> None:
    with contextlib.suppress(RuntimeError):  # the loop closed while the call ran: nobody is waiting any more
        loop.call_soon_threadsafe(setter, waiter, value)


def _set_result(waiter: asyncio.Future, result: Any) -> None:
    if not waiter.done():
        waiter.set_result(result)


def _set_exception(waiter: asyncio.Future, exc: BaseException) -> None:
    if not waiter.done():
        waiter.set_exception(exc)
