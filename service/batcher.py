"""Dynamic batching: samples submitted concurrently run through the model in one forward pass.

One worker thread per model takes the oldest waiting sample, waits at most ``max_delay_s``
after it arrived for more (up to ``max_batch_size``) but only while more are on their way
(callers announce samples they are still decoding with ``expect``, so a lone request never
waits for company that is not coming; ``adaptive=False`` always waits, as Triton does),
drops samples whose caller gave up (cancelled futures), stacks the rest and runs them.
The queue is bounded: a full queue raises ``Overloaded`` at submit time instead of letting
latency grow without limit.
``close`` finishes every queued sample before the thread exits (graceful shutdown).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from service.backends import Outputs


class Overloaded(Exception):
    """The model's queue is full (or the batcher is shutting down)."""


@dataclass
class SampleResult:
    """One sample's outputs plus how long it waited and how its batch ran."""

    scores: np.ndarray
    spikes: np.ndarray
    sops: np.ndarray
    queue_s: float
    infer_s: float
    batch_size: int
    gpu_joules: float | None = None
    step_scores: np.ndarray | None = None  # [T, classes], None for exports without per-step outputs
    step_spikes: np.ndarray | None = None  # [T, L]
    step_sops: np.ndarray | None = None  # [T]


@dataclass
class _Job:
    frames: np.ndarray
    future: Future
    enqueued: float


@dataclass
class Announcement:
    """Samples announced as a request arrived, before its body is parsed: the code that submits them
    takes the announcement over (``take``), and whatever is not taken is withdrawn at the end."""

    batcher: DynamicBatcher
    count: int

    def take(self, batcher: DynamicBatcher) -> int:
        """The samples announced to ``batcher`` (now the taker's to submit or forget); 0 for another batcher."""
        if batcher is not self.batcher:
            return 0
        count, self.count = self.count, 0
        return count

    def withdraw(self) -> None:
        if self.count:
            self.batcher.forget(self.count)
            self.count = 0


def _ignore(*_args) -> None:
    return None


def _row(batch: np.ndarray | None, i: int) -> np.ndarray | None:
    return None if batch is None else batch[i]


class DynamicBatcher:
    """Gathers ``[T, C, h, w]`` samples into ``[B, T, C, h, w]`` batches for ``run``.

    ``on_batch(size, infer_s)``, ``on_depth(depth)`` and ``on_drop(cancelled)`` report to metrics;
    ``energy_meter()`` (if given) returns a cumulative energy reading in joules or None.
    """

    def __init__(
        self,
        name: str,
        run: Callable[[np.ndarray], Outputs],
        max_batch_size: int = 32,
        max_delay_s: float = 0.005,
        max_queue: int = 256,
        on_batch: Callable[[int, float], None] = _ignore,
        on_depth: Callable[[int], None] = _ignore,
        on_drop: Callable[[int], None] = _ignore,
        energy_meter: Callable[[], float | None] | None = None,
        adaptive: bool = True,
    ):
        self.name = name
        self._run = run
        self.max_batch_size = max_batch_size
        self.max_delay_s = max_delay_s
        self.max_queue = max_queue
        self.adaptive = adaptive
        self._on_batch = on_batch
        self._on_depth = on_depth
        self._on_drop = on_drop
        self._energy = energy_meter
        self._queue: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._expected = 0
        self._thread = threading.Thread(target=self._loop, name=f"batcher-{name}", daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        return len(self._queue)

    @property
    def pending(self) -> int:
        """Samples queued or announced: a load reading, taken without the lock."""
        return len(self._queue) + self._expected

    def expect(self, count: int) -> None:
        """Announce ``count`` samples that will be submitted soon (still being decoded)."""
        with self._cond:
            self._expected += count

    def announce(self, count: int) -> Announcement:
        """Announce ``count`` samples before it is known whether they will come (see ``Announcement``)."""
        self.expect(count)
        return Announcement(self, count)

    def forget(self, count: int) -> None:
        """Withdraw announced samples that will not come (their decoding failed)."""
        with self._cond:
            self._expected = max(0, self._expected - count)
            self._cond.notify()

    def submit(self, frames: np.ndarray) -> Future:
        """Queue one sample; the future resolves to a ``SampleResult``. Raises ``Overloaded``."""
        future: Future = Future()
        with self._cond:
            self._expected = max(0, self._expected - 1)
            if self._closing:
                raise Overloaded(f"model {self.name!r} is shutting down")
            if len(self._queue) >= self.max_queue:
                raise Overloaded(f"model {self.name!r} has {len(self._queue)} samples queued (limit {self.max_queue})")
            self._queue.append(_Job(frames, future, time.monotonic()))
            self._on_depth(len(self._queue))
            self._wake_if_due(1)
        return future

    def submit_group(self, samples: list[np.ndarray]) -> list[Future]:
        """Queue the samples of one request together (a timeline's windows), counting as one announced sample.

        A group is admitted whenever the queue has room for one more sample, so a long recording is
        not refused only for having more windows than ``max_queue`` (its request's own window limit
        bounds it); it is refused, whole, when the queue is already full.
        """
        futures: list[Future] = [Future() for _ in samples]
        with self._cond:
            self._expected = max(0, self._expected - 1)
            if self._closing:
                raise Overloaded(f"model {self.name!r} is shutting down")
            if len(self._queue) >= self.max_queue:
                raise Overloaded(f"model {self.name!r} has {len(self._queue)} samples queued (limit {self.max_queue})")
            now = time.monotonic()
            self._queue.extend(_Job(frames, future, now) for frames, future in zip(samples, futures, strict=True))
            self._on_depth(len(self._queue))
            self._wake_if_due(len(samples))
        return futures

    def _wake_if_due(self, added: int) -> None:
        """Wake the worker (holding the lock) only when ``added`` samples end one of its waits: the
        queue was empty, the batch is full, or no more samples are announced. Any other submit would
        wake it only to wait again, a thread switch per sample under load."""
        depth = len(self._queue)
        if depth == added or depth >= self.max_batch_size or (self.adaptive and not self._expected):
            self._cond.notify()

    def close(self, timeout: float | None = None) -> None:
        """Stop taking work, finish what is queued, join the worker."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def _next_batch(self) -> list[_Job] | None:
        with self._cond:
            while not self._queue and not self._closing:
                self._cond.wait()
            if not self._queue:
                return None
            deadline = self._queue[0].enqueued + self.max_delay_s
            while (
                len(self._queue) < self.max_batch_size and not self._closing and (self._expected or not self.adaptive)
            ):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            batch = [self._queue.popleft() for _ in range(min(len(self._queue), self.max_batch_size))]
            self._on_depth(len(self._queue))
        return batch

    def _loop(self) -> None:
        while (batch := self._next_batch()) is not None:
            live = [job for job in batch if job.future.set_running_or_notify_cancel()]
            if len(live) < len(batch):
                self._on_drop(len(batch) - len(live))
            if live:
                self._run_batch(live)

    def _run_batch(self, jobs: list[_Job]) -> None:
        started = time.monotonic()
        before = self._energy() if self._energy else None
        try:
            outputs = self._run(np.stack([job.frames for job in jobs]))
        except BaseException as exc:  # the callers get the error; the worker keeps serving
            for job in jobs:
                job.future.set_exception(exc)
            return
        infer_s = time.monotonic() - started
        after = self._energy() if self._energy else None
        share = (after - before) / len(jobs) if before is not None and after is not None else None
        self._on_batch(len(jobs), infer_s)
        for i, job in enumerate(jobs):
            job.future.set_result(
                SampleResult(
                    scores=outputs.scores[i],
                    spikes=outputs.spikes[i],
                    sops=outputs.sops[i],
                    queue_s=started - job.enqueued,
                    infer_s=infer_s,
                    batch_size=len(jobs),
                    gpu_joules=share,
                    step_scores=_row(outputs.step_scores, i),
                    step_spikes=_row(outputs.step_spikes, i),
                    step_sops=_row(outputs.step_sops, i),
                )
            )
