"""Several worker processes on one port: how many by default, flags reaching every worker, one
``/metrics`` for the whole server, and SIGTERM draining every worker.

Each sample waits 4 s for batch partners (batches of up to 8), so queued samples stay queued
long enough to be seen in the metrics and to be in flight when SIGTERM arrives.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
from service_harness import AEDAT4_SAMPLE, Server, demo_repository, metric

from service.settings import Settings
from service.workers import MAX_AUTO_WORKERS, settings_environment, worker_count

IN_FLIGHT = 4


@pytest.mark.parametrize(
    ("settings", "cores", "gpu", "expected"),
    [
        ({"workers": 3}, 2, True, 3),
        ({"device": "cuda"}, 16, False, 1),
        ({"device": "auto"}, 16, True, 1),
        ({"device": "auto"}, 2, False, 2),
        ({"device": "cpu"}, 2, True, 2),
        ({"device": "cpu"}, 64, False, MAX_AUTO_WORKERS),
    ],
)
def test_default_is_one_worker_on_a_gpu_else_one_per_core_up_to_the_cap(settings, cores, gpu, expected):
    assert worker_count(Settings(**settings), cores=cores, gpu=gpu) == expected


def test_every_setting_given_as_a_flag_reaches_the_workers_environment(monkeypatch):
    given = Settings(max_batch_size=7, nvml=False, model_repository=Path("/srv/repo"), api_keys="a,b", workers=2)
    for name in list(__import__("os").environ):
        if name.startswith("STLSNN_"):
            monkeypatch.delenv(name)
    for name, value in settings_environment(given).items():
        monkeypatch.setenv(name, value)
    assert Settings() == given


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repo = demo_repository(tmp_path_factory.getbasetemp() / "service-demo")
    srv = Server(
        repo,
        tmp_path_factory.mktemp("workers") / "server.log",
        workers=2,
        max_batch_size=8,
        max_queue_delay_ms=4000,
        batch_wait="fixed",
    )
    srv.wait_ready()
    # each worker loads its own models: one may answer /readyz 200 while the other still loads (and would
    # answer 503); twenty 200s in a row on fresh connections, which either worker may accept, mean both serve
    ready_in_a_row, deadline = 0, time.monotonic() + 60
    while ready_in_a_row < 20:
        assert time.monotonic() < deadline, "both workers never answered /readyz 200"
        ready_in_a_row = ready_in_a_row + 1 if httpx.get(srv.url + "/readyz", timeout=5).status_code == 200 else 0
    yield srv
    srv.stop()


def post_sample(url: str) -> httpx.Response:
    with AEDAT4_SAMPLE.open("rb") as fh:
        return httpx.post(url + "/v1/classify", files={"file": (AEDAT4_SAMPLE.name, fh)}, timeout=60)


def post_in_background(url: str, count: int) -> tuple[list[threading.Thread], list]:
    responses: list = []
    threads = [threading.Thread(target=lambda: responses.append(post_sample(url))) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads, responses


def worker_pids(server: Server) -> list[int]:
    """Children of the server process that run a worker (uvicorn starts them with multiprocessing's spawn)."""
    pid = server.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


def test_the_server_runs_two_worker_processes(server):
    assert len(worker_pids(server)) == 2


def test_metrics_add_up_every_worker(server):
    threads, responses = post_in_background(server.url, IN_FLIGHT)
    for thread in threads:
        thread.join(60)
    assert [r.status_code for r in responses] == [200] * IN_FLIGHT
    for _ in range(4):  # each scrape may reach either worker; every one must see all requests
        text = httpx.get(server.url + "/metrics").text
        assert metric(text, "stlsnn_requests_total", model="demo", status="200") == IN_FLIGHT
        assert metric(text, "stlsnn_model_ready", model="demo") == 1


def test_sigterm_drains_every_worker(server):
    threads, responses = post_in_background(server.url, IN_FLIGHT)
    deadline = time.monotonic() + 30
    while metric(httpx.get(server.url + "/metrics").text, "stlsnn_queue_depth", model="demo") != IN_FLIGHT:
        if time.monotonic() > deadline:
            pytest.fail("the queued samples never showed in /metrics")
        time.sleep(0.02)
    server.process.send_signal(15)
    for thread in threads:
        thread.join(60)
    assert [r.status_code for r in responses] == [200] * IN_FLIGHT
    assert all(r.json()["prediction"]["label"] for r in responses)
    assert server.process.wait(60) == 0
    assert "Traceback" not in server.log()
