"""The dynamic batcher on its own: gathering, dropping abandoned work, bounding the queue, draining,
sharing a batch's measured GPU energy; and the NVML meter behind that measurement."""

from __future__ import annotations

import sys
import threading
import time
import types

import numpy as np
import pytest

from service.backends import Outputs
from service.batcher import DynamicBatcher, Overloaded
from service.gpu_energy import GpuEnergyMeter


class Recorder:
    """A fake model: records each batch it sees; scores echo the input so results can be matched."""

    def __init__(self, gate: threading.Event | None = None, fail: bool = False):
        self.batches: list[int] = []
        self.gate = gate
        self.fail = fail

    def __call__(self, frames: np.ndarray) -> Outputs:
        if self.gate is not None:
            self.gate.wait(10)
        if self.fail:
            raise RuntimeError("model exploded")
        self.batches.append(len(frames))
        values = frames.reshape(len(frames), -1)[:, :1]
        return Outputs(scores=values, spikes=values.astype(np.int64), sops=values.astype(np.int64))


def sample(value: float) -> np.ndarray:
    return np.full((2, 2, 1, 1), value, dtype=np.float32)


def test_samples_arriving_within_the_delay_share_one_pass_and_keep_their_own_results():
    model = Recorder()
    batcher = DynamicBatcher("m", model, max_batch_size=8, max_delay_s=5)
    batcher.expect(5)
    futures = [batcher.submit(sample(i)) for i in range(5)]
    results = [f.result(10) for f in futures]
    batcher.close(10)
    assert model.batches == [5]
    assert [float(r.scores[0]) for r in results] == [0, 1, 2, 3, 4]
    assert all(r.batch_size == 5 and r.queue_s >= 0 and r.infer_s >= 0 for r in results)


def test_a_lone_sample_does_not_wait_for_company_that_is_not_coming():
    model = Recorder()
    batcher = DynamicBatcher("m", model, max_batch_size=8, max_delay_s=60)
    assert float(batcher.submit(sample(3)).result(10).scores[0]) == 3
    batcher.expect(2)
    batcher.forget(1)  # one announced sample failed to decode; the other arrives
    assert batcher.submit(sample(4)).result(10).batch_size == 1
    batcher.close(10)
    assert model.batches == [1, 1]


def test_a_full_batch_runs_at_once_though_more_samples_are_announced():
    model = Recorder()
    batcher = DynamicBatcher("m", model, max_batch_size=2, max_delay_s=60)
    batcher.expect(3)
    first = batcher.submit(sample(1))
    time.sleep(0.2)  # the worker is now waiting for the announced samples
    second = batcher.submit(sample(2))
    assert [first.result(10).batch_size, second.result(10).batch_size] == [2, 2]
    batcher.forget(1)
    batcher.close(10)
    assert model.batches == [2]


def test_pending_counts_queued_and_announced_samples():
    batcher = DynamicBatcher("m", Recorder(), max_batch_size=8, max_delay_s=60)
    batcher.expect(3)
    assert batcher.pending == 3
    future = batcher.submit(sample(1))
    assert batcher.pending == 3  # one queued (the worker waits for the other two), two announced
    batcher.forget(2)
    future.result(10)
    batcher.close(10)
    assert batcher.pending == 0


def test_fixed_wait_holds_a_sample_for_the_whole_delay():
    model = Recorder()
    batcher = DynamicBatcher("m", model, max_batch_size=8, max_delay_s=0.3, adaptive=False)
    result = batcher.submit(sample(1)).result(10)
    batcher.close(10)
    assert result.queue_s >= 0.3


def test_batches_never_exceed_the_maximum():
    model = Recorder()
    batcher = DynamicBatcher("m", model, max_batch_size=3, max_delay_s=0.2, max_queue=100, adaptive=False)
    futures = [batcher.submit(sample(i)) for i in range(7)]
    for future in futures:
        future.result(10)
    batcher.close(10)
    assert sum(model.batches) == 7 and max(model.batches) == 3


def test_cancelled_samples_are_dropped_before_inference():
    model, dropped = Recorder(), []
    batcher = DynamicBatcher("m", model, max_batch_size=8, max_delay_s=0.3, on_drop=dropped.append, adaptive=False)
    keep, abandon = batcher.submit(sample(1)), batcher.submit(sample(2))
    assert abandon.cancel()
    assert float(keep.result(10).scores[0]) == 1
    batcher.close(10)
    assert model.batches == [1] and dropped == [1]


def test_a_full_queue_raises_overloaded():
    gate = threading.Event()
    batcher = DynamicBatcher("m", Recorder(gate), max_batch_size=1, max_delay_s=0, max_queue=2)
    first = batcher.submit(sample(0))
    while batcher.depth:  # the worker has taken the first sample and is blocked in the model
        threading.Event().wait(0.01)
    queued = [batcher.submit(sample(i)) for i in (1, 2)]
    with pytest.raises(Overloaded):
        batcher.submit(sample(3))
    gate.set()
    assert [f.result(10).batch_size for f in [first, *queued]] == [1, 1, 1]
    batcher.close(10)


def test_close_finishes_queued_work_then_refuses_more():
    gate = threading.Event()
    model = Recorder(gate)
    batcher = DynamicBatcher("m", model, max_batch_size=2, max_delay_s=5, max_queue=10, adaptive=False)
    futures = [batcher.submit(sample(i)) for i in range(5)]
    gate.set()
    batcher.close(10)
    assert all(f.done() and not f.cancelled() for f in futures)
    assert sum(model.batches) == 5
    with pytest.raises(Overloaded):
        batcher.submit(sample(9))


def test_a_failing_model_fails_its_batch_and_the_worker_keeps_serving():
    model = Recorder(fail=True)
    batcher = DynamicBatcher("m", model, max_batch_size=4, max_delay_s=0)
    with pytest.raises(RuntimeError, match="exploded"):
        batcher.submit(sample(0)).result(10)
    model.fail = False
    assert float(batcher.submit(sample(7)).result(10).scores[0]) == 7
    batcher.close(10)


def test_measured_energy_of_a_batch_is_shared_equally_by_its_samples():
    readings = iter([10.0, 16.0])  # joules before and after the one forward pass
    batcher = DynamicBatcher("m", Recorder(), max_batch_size=8, max_delay_s=5, energy_meter=lambda: next(readings))
    batcher.expect(3)
    futures = [batcher.submit(sample(i)) for i in range(3)]
    assert [f.result(10).gpu_joules for f in futures] == [2.0, 2.0, 2.0]
    batcher.close(10)


def test_nvml_meter_reads_the_board_energy_counter_in_joules(monkeypatch):
    fake = types.SimpleNamespace(
        nvmlInit=lambda: None,
        nvmlDeviceGetHandleByIndex=lambda index: f"gpu{index}",
        nvmlDeviceGetTotalEnergyConsumption=lambda handle: 123_456,  # millijoules
    )
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    meter = GpuEnergyMeter()
    assert meter.available and meter.read_joules() == 123.456
    monkeypatch.setitem(sys.modules, "pynvml", None)
    missing = GpuEnergyMeter()
    assert not missing.available and missing.read_joules() is None and "not installed" in missing.reason


def test_a_group_larger_than_the_queue_is_admitted_whole_and_keeps_its_order():
    model = Recorder()
    batcher = DynamicBatcher("m", model, max_batch_size=4, max_delay_s=0, max_queue=3)
    batcher.expect(1)  # one request announced; its 10 windows come as one group
    futures = batcher.submit_group([sample(i) for i in range(10)])
    results = [f.result(10) for f in futures]
    batcher.close(10)
    assert [float(r.scores[0]) for r in results] == list(range(10))
    assert sum(model.batches) == 10 and max(model.batches) <= 4


def test_a_group_is_refused_whole_when_the_queue_is_already_full():
    gate = threading.Event()
    model = Recorder(gate)
    batcher = DynamicBatcher("m", model, max_batch_size=1, max_delay_s=0, max_queue=2)
    running = batcher.submit(sample(0))  # taken by the worker, which then waits on the gate
    while batcher.depth:
        time.sleep(0.001)
    queued = [batcher.submit(sample(1)), batcher.submit(sample(2))]
    with pytest.raises(Overloaded, match="2 samples queued"):
        batcher.submit_group([sample(3), sample(4)])
    gate.set()
    assert [float(f.result(10).scores[0]) for f in (running, *queued)] == [0, 1, 2]
    batcher.close(10)
    assert model.batches == [1, 1, 1]


def test_every_request_announcing_samples_adds_to_the_wait_and_one_pass_takes_them_all():
    model, depths = Recorder(), []
    batcher = DynamicBatcher("m", model, max_batch_size=8, max_delay_s=60, on_depth=depths.append)
    batcher.expect(2)  # one request with two files
    batcher.expect(1)  # another with one
    futures = []
    for i in range(3):
        futures.append(batcher.submit(sample(i)))
        threading.Event().wait(0.05)  # room for the worker to (wrongly) start a batch early
    assert [f.result(10).batch_size for f in futures] == [3, 3, 3]  # no 60 s wait: all announced samples came
    batcher.close(10)
    assert model.batches == [3] and depths == [1, 2, 3, 0]


def test_a_waiting_batch_runs_as_soon_as_the_missing_sample_is_withdrawn():
    model = Recorder()
    batcher = DynamicBatcher("m", model, max_batch_size=8, max_delay_s=60)
    batcher.expect(2)
    arrived = batcher.submit(sample(5))  # its companion is still decoding
    batcher.forget(1)  # ... and fails to decode: the batch must not wait 60 s for it
    assert arrived.result(10).batch_size == 1
    batcher.close(10)


def test_a_full_batch_runs_without_waiting_out_the_delay():
    model = Recorder()
    batcher = DynamicBatcher("m", model, max_batch_size=2, max_delay_s=60, adaptive=False)
    futures = [batcher.submit(sample(i)) for i in range(2)]
    assert [f.result(10).batch_size for f in futures] == [2, 2]
    batcher.close(10)


def test_results_carry_their_own_outputs_and_times_within_the_call_and_metrics_hear_of_each_batch():
    batches, dropped = [], []
    batcher = DynamicBatcher(
        "m", Recorder(), max_batch_size=8, max_delay_s=60, on_batch=lambda *a: batches.append(a), on_drop=dropped.append
    )
    clock = time.monotonic()
    batcher.expect(2)
    results = [f.result(10) for f in [batcher.submit(sample(i)) for i in (4, 6)]]
    elapsed = time.monotonic() - clock
    batcher.close(10)
    assert [(float(r.spikes[0]), float(r.sops[0])) for r in results] == [(4, 4), (6, 6)]
    assert all(0 <= r.queue_s <= elapsed and 0 <= r.infer_s <= elapsed for r in results)
    assert batches == [(2, results[0].infer_s)] and dropped == []


def test_a_failed_energy_reading_leaves_the_batch_unmeasured():
    for readings in ([None, 5.0], [5.0, None]):
        batcher = DynamicBatcher("m", Recorder(), max_delay_s=0, energy_meter=iter(readings).__next__)
        assert batcher.submit(sample(1)).result(10).gpu_joules is None
        batcher.close(10)


def test_overload_and_shutdown_messages_name_the_model():
    gate = threading.Event()
    batcher = DynamicBatcher("gesture", Recorder(gate), max_batch_size=1, max_delay_s=0, max_queue=1)
    first = batcher.submit(sample(0))
    while batcher.depth:
        threading.Event().wait(0.01)
    batcher.submit(sample(1))
    with pytest.raises(Overloaded, match=r"'gesture' has 1 samples queued \(limit 1\)"):
        batcher.submit(sample(2))
    batcher.close(0.05)  # gives up waiting for the blocked model after its timeout
    assert not first.done()
    with pytest.raises(Overloaded, match="'gesture' is shutting down"):
        batcher.submit(sample(3))
    gate.set()


def test_an_announcement_taken_over_is_submitted_by_its_taker_and_the_rest_withdrawn():
    model = Recorder()
    batcher = DynamicBatcher("m", model, max_batch_size=8, max_delay_s=60)
    other = DynamicBatcher("other", Recorder(), max_batch_size=8, max_delay_s=60)
    first, second = batcher.announce(1), batcher.announce(1)
    assert batcher.pending == 2
    assert first.take(other) == 0  # announced to another model: nothing to take over
    assert first.take(batcher) == 1 and first.take(batcher) == 0
    waiting = batcher.submit(sample(1))  # the second request is still announced: the batch waits for it
    time.sleep(0.05)
    assert not waiting.done()
    first.withdraw()  # taken over already: withdraws nothing
    assert batcher.pending == 2
    second.withdraw()  # that request never came to submit
    assert waiting.result(10).batch_size == 1
    assert batcher.pending == 0
    second.withdraw()
    assert batcher.pending == 0
    batcher.close(10)
    other.close(10)
    assert model.batches == [1]


def test_each_result_carries_its_own_rows_of_the_per_step_outputs_and_none_for_exports_without_them():
    def with_steps(frames: np.ndarray) -> Outputs:
        b = len(frames)
        values = frames.reshape(b, -1)[:, :1]
        return Outputs(
            scores=values,
            spikes=values.astype(np.int64),
            sops=values.astype(np.int64),
            step_scores=np.arange(b * 4, dtype=np.float32).reshape(b, 2, 2),  # [B, T, classes]
            step_spikes=np.arange(b * 2).reshape(b, 2, 1) * 10,  # [B, T, L]
            step_sops=np.arange(b * 2).reshape(b, 2) * 100,  # [B, T]
        )

    batcher = DynamicBatcher("m", with_steps, max_batch_size=8, max_delay_s=60)
    batcher.expect(2)
    first, second = (f.result(10) for f in [batcher.submit(sample(i)) for i in (0, 1)])
    batcher.close(10)
    assert first.batch_size == second.batch_size == 2
    assert first.step_scores.tolist() == [[0, 1], [2, 3]] and second.step_scores.tolist() == [[4, 5], [6, 7]]
    assert first.step_spikes.tolist() == [[0], [10]] and second.step_spikes.tolist() == [[20], [30]]
    assert first.step_sops.tolist() == [0, 100] and second.step_sops.tolist() == [200, 300]
    old_export = DynamicBatcher("m", Recorder(), max_delay_s=0)
    result = old_export.submit(sample(1)).result(10)
    old_export.close(10)
    assert result.step_scores is None and result.step_spikes is None and result.step_sops is None


def test_an_announcement_withdrawn_once_withdraws_nothing_more_and_leaves_nothing_to_take():
    batcher = DynamicBatcher("m", Recorder(), max_batch_size=8, max_delay_s=60)
    mine, theirs = batcher.announce(1), batcher.announce(1)
    mine.withdraw()
    mine.withdraw()
    assert batcher.pending == 1  # the other request's sample is still announced
    assert mine.take(batcher) == 0
    assert theirs.take(batcher) == 1
    batcher.forget(1)
    batcher.close(10)


def test_a_group_counts_as_one_announced_sample_and_waits_with_the_others():
    model, depths = Recorder(), []
    batcher = DynamicBatcher("m", model, max_batch_size=8, max_delay_s=60, on_depth=depths.append)
    batcher.expect(2)  # a timeline request and a single-file request
    group = batcher.submit_group([sample(i) for i in range(3)])
    threading.Event().wait(0.05)  # room for the worker to (wrongly) start without the other request
    assert batcher.pending == 4  # three queued, one still announced
    single = batcher.submit(sample(3))
    assert [f.result(10).batch_size for f in [*group, single]] == [4, 4, 4, 4]  # no 60 s wait
    batcher.close(10)
    assert model.batches == [4] and depths == [3, 4, 0]


def test_a_group_into_an_empty_queue_wakes_the_worker():
    model = Recorder()
    batcher = DynamicBatcher("m", model, max_batch_size=8, max_delay_s=0.05, adaptive=False)
    futures = batcher.submit_group([sample(1), sample(2)])
    assert [float(f.result(10).scores[0]) for f in futures] == [1, 2]
    batcher.close(10)
    assert model.batches == [2]


def test_a_group_after_close_is_refused_naming_the_model():
    batcher = DynamicBatcher("gesture", Recorder(), max_delay_s=0)
    batcher.close(10)
    with pytest.raises(Overloaded, match="'gesture' is shutting down"):
        batcher.submit_group([sample(1)])


def test_a_group_from_the_only_announced_request_runs_without_waiting_out_the_delay():
    model = Recorder()
    batcher = DynamicBatcher("m", model, max_batch_size=8, max_delay_s=60)
    batcher.expect(1)
    futures = batcher.submit_group([sample(i) for i in range(3)])
    assert [f.result(10).batch_size for f in futures] == [3, 3, 3]
    assert batcher.pending == 0
    batcher.close(10)
    assert model.batches == [3]
