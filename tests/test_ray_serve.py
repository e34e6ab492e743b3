"""The service as a Ray Serve application (``service/ray_app.py``) on a real two-node Ray cluster here.

The application is deployed from ``deploy/ray/serve.yaml`` (two replicas) onto a head node and a
simulated second node, and checked against a plain ``python -m service`` on the same repository:
same answers, both replicas serving (told apart by the ``X-Serve-Replica`` header, checked against
the replica actors Ray lists), and a replica killed during a stream of requests is replaced with no
request hanging. The startup gate and the GPU choice are checked without a cluster. Marked ``ray``:
the module takes about two minutes on two cores (most of it starting Ray and the replicas).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from bench.ray_cluster import LocalRayCluster, serve_config

pytest.importorskip("ray", reason="Ray is not installed (pip install -r requirements/ray.txt)")

from service.app import create_app
from service.problems import Problem
from service.ray_app import (
    REPLICA_HEADER,
    ModelsFailedToLoad,
    ProxyFailuresAs503,
    RayAppArgs,
    StlsnnIngress,
    gate_startup_on_models,
    replica_actor_options,
)
from service.settings import Settings
from tests.service_harness import Server, demo_repository, free_port

pytestmark = pytest.mark.ray

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(  # the single gestures: the long recording and its truth table are timeline material
    p
    for p in (ROOT / "examples").iterdir()
    if p.suffix not in {".py", ".md"} and not p.name.startswith("long_sequence.")
)
REQUEST_TIMEOUT_S = 30  # STLSNN_REQUEST_TIMEOUT_S and http_options.request_timeout_s in serve.yaml
RETRYABLE = {503}  # with Retry-After, from the proxy middleware service.ray_app.ProxyFailuresAs503


@pytest.fixture(scope="module")
def repository(tmp_path_factory) -> Path:
    return demo_repository(tmp_path_factory.mktemp("ray-repo"))


@pytest.fixture(scope="module")
def plain(repository, tmp_path_factory):
    """``python -m service`` with serve.yaml's STLSNN_* settings."""
    env = serve_config(repository, 0)["applications"][0]["runtime_env"]["env_vars"]
    settings = {key.removeprefix("STLSNN_").lower(): value for key, value in env.items()}
    server = Server(repository, tmp_path_factory.mktemp("plain") / "server.log", **settings)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ray_app(repository, plain):
    """The Serve application on a head node and a second node; yields (cluster, proxy url)."""
    cluster = LocalRayCluster(nodes=2, cpus_per_node=1).start()
    try:
        port = free_port()
        cluster.deploy(serve_config(repository, port))
        plain.wait_ready()
        yield cluster, f"http://127.0.0.1:{port}"
    finally:
        cluster.stop()


def classify(url: str, path: Path, client: httpx.Client | None = None) -> httpx.Response:
    post = client.post if client else httpx.post
    return post(f"{url}/v1/classify", files={"file": (path.name, path.read_bytes())}, timeout=REQUEST_TIMEOUT_S + 5)


def replicas_answering(url: str, expected: set[str], timeout_s: float = 60) -> set[str]:
    """The ``X-Serve-Replica`` values of rounds of 8 concurrent requests, until all of ``expected`` answered or
    ``timeout_s`` passed (the proxy learns of a replacement replica within seconds, and sends a request to the
    less busy of two replicas, so only overlapping requests are sure to reach both)."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout_s
    with httpx.Client() as client, ThreadPoolExecutor(8) as pool:
        while not seen >= expected and time.monotonic() < deadline:
            answers = pool.map(lambda i: classify(url, EXAMPLES[i % len(EXAMPLES)], client), range(8))
            seen |= {answer.headers[REPLICA_HEADER] for answer in answers}
    return seen


def without_timing(body: dict) -> dict:
    return {key: value for key, value in body.items() if key != "timing_ms"}


def test_classify_answers_equal_the_plain_service(ray_app, plain):
    _, url = ray_app
    for path in EXAMPLES:
        ours, theirs = classify(url, path), classify(plain.url, path)
        assert (ours.status_code, theirs.status_code) == (200, 200), path.name
        assert without_timing(ours.json()) == without_timing(theirs.json()), path.name
        assert ours.headers["content-type"] == theirs.headers["content-type"]


def test_errors_are_the_same_problem_documents(ray_app, plain):
    _, url = ray_app
    for method, path, kwargs in [
        ("POST", "/v1/models/nope/classify", {"files": {"file": ("a.npz", b"x")}}),
        ("POST", "/v1/classify", {"files": {"file": ("a.bin", b"not events")}}),
        ("GET", "/v1/models/nope", {}),
    ]:
        same_id = {"X-Request-ID": "same-id"}
        ours = httpx.request(method, url + path, headers=same_id, timeout=10, **kwargs)
        theirs = httpx.request(method, plain.url + path, headers=same_id, timeout=10, **kwargs)
        assert ours.status_code == theirs.status_code >= 400, path
        assert ours.headers["content-type"] == theirs.headers["content-type"] == "application/problem+json"
        assert ours.json() == theirs.json()


def test_one_request_id_header_and_the_replica_header(ray_app):
    _, url = ray_app
    response = httpx.get(url + "/healthz", headers={"X-Request-ID": "abc-123"}, timeout=10)
    assert response.headers.get_list("x-request-id") == ["abc-123"]
    assert response.headers[REPLICA_HEADER]


def test_requests_are_served_by_both_replicas(ray_app):
    cluster, url = ray_app
    replicas = cluster.replica_ids()
    assert len(replicas) == 2
    assert replicas_answering(url, replicas) == replicas


def test_a_killed_replica_is_replaced_and_no_request_hangs(ray_app):
    """Requests from four clients while one replica actor is killed; counts what failed meanwhile."""
    import ray

    cluster, url = ray_app
    before = cluster.replica_ids()
    victim = sorted(before)[0]
    outcomes: list[tuple[int | str, float]] = []
    stop = threading.Event()

    def client_loop(offset: int) -> None:
        with httpx.Client() as client:
            for i in range(10_000):
                if stop.is_set():
                    return
                started = time.monotonic()
                try:
                    response = classify(url, EXAMPLES[(offset + i) % len(EXAMPLES)], client)
                    outcome: int | str = response.status_code
                    if outcome != 200 and not (
                        response.headers.get("retry-after") and response.json()["status"] == outcome
                    ):
                        outcome = f"{outcome} without Retry-After or problem document"
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                outcomes.append((outcome, time.monotonic() - started))

    threads = [threading.Thread(target=client_loop, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(2)
        ray.kill(cluster.replica_actor(victim), no_restart=True)
        deadline = time.monotonic() + 180
        while not (victim not in (now := cluster.replica_ids()) and len(now) == 2) and time.monotonic() < deadline:
            time.sleep(0.5)
        cluster.wait_running(max(deadline - time.monotonic(), 1), replicas=2)
        time.sleep(2)
    finally:
        stop.set()
        for thread in threads:
            thread.join(REQUEST_TIMEOUT_S + 10)

    after = cluster.replica_ids()
    failed = [outcome for outcome, _ in outcomes if outcome != 200]
    print(f"replica killed: {len(outcomes)} requests, {len(failed)} failed: {failed}")
    assert victim not in after and len(after) == 2 and len(after & before) == 1
    assert not any(thread.is_alive() for thread in threads)
    assert max(seconds for _, seconds in outcomes) < REQUEST_TIMEOUT_S + 2  # the proxy ends a request at its timeout
    assert all(outcome in RETRYABLE for outcome in failed), failed
    assert len(outcomes) - len(failed) > 0
    assert replicas_answering(url, after) == after


# ---------------------------------------------------------------- without a cluster


def started_ready(app) -> bool:
    """Runs the app's lifespan startup and shutdown; whether the models were ready once startup ended."""

    async def lifespan() -> bool:
        async with app.router.lifespan_context(app):
            return app.state.context.registry.ready

    return asyncio.run(lifespan())


def test_startup_waits_for_the_models_and_fails_when_none_loads(repository, tmp_path):
    good = create_app(Settings(model_repository=repository, nvml=False))
    gate_startup_on_models(good)
    assert started_ready(good)

    (tmp_path / "broken" / "1").mkdir(parents=True)
    (tmp_path / "broken" / "1" / "manifest.json").write_text("{not json")
    bad = create_app(Settings(model_repository=tmp_path, nvml=False))
    gate_startup_on_models(bad)
    with pytest.raises(ModelsFailedToLoad, match="broken"):
        started_ready(bad)


def test_the_health_check_is_the_readiness_handler(tmp_path):
    replica = StlsnnIngress.func_or_class.__new__(StlsnnIngress.func_or_class)
    app = create_app(Settings(model_repository=tmp_path / "missing", nvml=False))
    replica.context = app.state.context
    app.state.context.registry.load_all()
    with pytest.raises(Problem) as raised:
        asyncio.run(replica.check_health())
    assert raised.value.status_code == 503


def asgi_get(app, headers: list[tuple[bytes, bytes]]) -> list[dict]:
    """The ASGI messages ``app`` sends for one GET request."""
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "headers": headers, "query_string": b""}
    asyncio.run(app(scope, receive, send))
    return sent


def test_a_request_that_lost_its_replica_gets_a_retryable_problem():
    async def replica_died(scope, receive, send):
        raise RuntimeError("ActorDiedError")

    start, body = asgi_get(ProxyFailuresAs503(replica_died), [(b"x-request-id", b"id-1")])
    headers = dict(start["headers"])
    assert start["status"] == 503
    assert headers[b"content-type"] == b"application/problem+json"
    assert headers[b"retry-after"] == b"1" and headers[b"x-request-id"] == b"id-1"
    problem = json.loads(body["body"])
    assert (problem["status"], problem["type"], problem["request_id"]) == (
        503,
        "urn:stlsnn:problem:replica-unavailable",
        "id-1",
    )


def test_a_request_the_proxy_timed_out_gets_the_services_timeout_problem():
    async def proxy_timeout(scope, receive, send):
        await send({"type": "http.response.start", "status": 408, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"Request timed out after 30s."})

    start, body = asgi_get(ProxyFailuresAs503(proxy_timeout), [])
    assert start["status"] == 503 and dict(start["headers"])[b"retry-after"] == b"1"
    assert json.loads(body["body"])["type"] == "urn:stlsnn:problem:timeout"


def test_answers_and_started_responses_pass_the_proxy_middleware_untouched():
    async def answered(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def died_mid_body(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("ActorDiedError")

    assert [m.get("status", m.get("body")) for m in asgi_get(ProxyFailuresAs503(answered), [])] == [200, b"ok"]
    with pytest.raises(RuntimeError):
        asgi_get(ProxyFailuresAs503(died_mid_body), [])


@pytest.mark.parametrize(
    ("accelerator", "cluster_gpus", "expected"),
    [
        ("auto", 0, {"num_cpus": 0.5}),
        ("auto", 4, {"num_cpus": 0.5, "num_gpus": 1}),
        ("cpu", 4, {"num_cpus": 0.5}),
        ("gpu", 0, {"num_cpus": 0.5, "num_gpus": 1}),
    ],
)
def test_replicas_ask_for_a_gpu_when_the_cluster_has_one(accelerator, cluster_gpus, expected):
    args = RayAppArgs(accelerator=accelerator, replica_cpus=0.5)
    assert replica_actor_options(args, cluster_gpus) == expected
