"""Atomic work counters and helper threads: how framing shares a kernel's work without locks."""

import threading
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from events.work_sharing import HelperThreads, fetch_increment, load_acquire, wait_until


@numba.njit(nogil=True)
def _claim_all(counters, claimed, units):
    """Claim units until none are left, marking each claimed unit, then count it done."""
    while True:
        unit = fetch_increment(counters, 0)
        if unit >= units:
            return
        claimed[unit] += 1
        fetch_increment(counters, 1)


@numba.njit(nogil=True)
def _read(counters, index):
    return load_acquire(counters, index)


def test_threads_claiming_from_one_counter_claim_every_unit_exactly_once():
    units = 2_000_000
    counters = np.zeros(2, np.int64)
    claimed = np.zeros(units, np.int64)
    _claim_all(counters, claimed, 1)  # compile outside the race
    counters[:], claimed[:] = 0, 0
    with ThreadPoolExecutor(3) as pool:
        for job in [pool.submit(_claim_all, counters, claimed, units) for _ in range(3)]:
            job.result()
    assert np.all(claimed == 1)
    assert counters[1] == units and counters[0] == units + 3  # each thread's last claim overshoots once
    assert _read(counters, 1) == units


def test_wait_until_returns_once_another_thread_reaches_the_target():
    counters = np.zeros(2, np.int64)
    claimed = np.zeros(1000, np.int64)
    with ThreadPoolExecutor(1) as pool:
        pool.submit(_claim_all, counters, claimed, 1000)
        wait_until(counters, 1, 1000)
    assert np.all(claimed == 1)


def test_a_helper_thread_runs_what_it_is_handed_in_order_and_survives_a_failing_job():
    helpers = HelperThreads(1, "test")
    done, finished = [], threading.Event()

    def fail():
        raise RuntimeError("a kernel bug")

    helpers.hand(fail)
    for i in range(10):
        helpers.hand(lambda i=i: done.append(i))
    helpers.hand(finished.set)
    assert finished.wait(10)
    assert done == list(range(10))
