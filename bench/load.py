"""Service under load: throughput and p50/p99 latency at concurrency 1, 8 and 32, dynamic batching on
(``max_batch_size=32``) vs off (``max_batch_size=1``), side by side in one run; RSS growth over
10,000 requests; time from process start to ``/readyz`` 200.

Each configuration is a real ``python -m service`` on 127.0.0.1, started one after the other so
the two never compete for the cores; requests post the recordings in ``examples/`` in turn.
``--backend``/``--device`` choose what serves (default: ONNX Runtime, the server's device choice)
and ``--concurrency`` the levels; each response's measured GPU energy (NVML, ``measured_gpu_j``)
and energy estimate are averaged per request. ``--out DIR`` writes the section to ``DIR`` for
``bench.report --merge`` instead of BENCHMARKS.md (``bench/gpu_check.sh``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.report import table, write_section

ROOT = Path(__file__).resolve().parent.parent
FALLBACK_RECORDING = ROOT / "tests" / "data" / "davis346_head.aedat4"
NOT_RECORDINGS = {".md", ".txt", ".json", ".py"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def recordings() -> list[Path]:
    found = [
        p
        for p in sorted((ROOT / "examples").glob("*"))
        if p.is_file() and p.suffix not in NOT_RECORDINGS and not p.name.startswith("long_sequence.")
    ]  # single gestures only: the long recording and its truth are for the timeline
    return found or [FALLBACK_RECORDING]


def repository(given: str | None, scratch: Path) -> Path:
    """The repository to serve: the one given, ./model_repository, or a fresh export of the bundled demo."""
    if given:
        return Path(given)
    if (ROOT / "model_repository" / "demo").is_dir():
        return ROOT / "model_repository"
    repo = scratch / "model_repository"
    subprocess.run([sys.executable, "-m", "export", "models/checkpoints", "--out", str(repo)], cwd=ROOT, check=True)
    return repo


class Server:
    """One ``python -m service`` (of the checkout at ``root``); ``ready_s`` is process start to the first 200
    from ``/readyz``."""

    def __init__(self, repo: Path, log: Path, root: Path = ROOT, **settings):
        self.url = f"http://127.0.0.1:{(port := free_port())}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("STLSNN_")}
        env |= {"STLSNN_MODEL_REPOSITORY": str(repo), "STLSNN_PORT": str(port), "STLSNN_LOG_LEVEL": "warning"}
        env["STLSNN_WORKERS"] = "1"  # cpu_s reads one process; settings may ask for more
        env |= {f"STLSNN_{k.upper()}": str(v) for k, v in settings.items()}
        started = time.perf_counter()
        with log.open("w") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "service"], cwd=root, env=env, stdout=sink, stderr=sink
            )
        deadline = started + 180  # a fresh tree compiles its numba kernels first: a minute on a loaded machine
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.02)
        else:
            self.process.kill()
            raise RuntimeError(f"server never became ready: {log.read_text()[-2000:]}")
        self.ready_s = time.perf_counter() - started

    def cpu_s(self) -> float:
        """User + system CPU seconds of the server process and its worker processes, all threads."""
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return sum(_process_cpu_s(int(p)) for p in [pid, *children])

    def batches(self) -> tuple[float, float]:
        """(forward passes, samples) so far, from /metrics."""
        lines = httpx.get(self.url + "/metrics").text.splitlines()
        values = {
            line.split("{")[0]: float(line.rpartition(" ")[2])
            for line in lines
            if line.startswith("stlsnn_batch_size_")
        }
        return values.get("stlsnn_batch_size_count", 0.0), values.get("stlsnn_batch_size_sum", 0.0)

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(60)


def _process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def classify_request(port: int, name: str, data: bytes, prefix: str = "") -> bytes:
    """A complete ``POST {prefix}/v1/classify`` (HTTP/1.1, keep-alive, multipart), built once per recording."""
    boundary = "stlsnnbench"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    head = (
        f"POST {prefix}/v1/classify HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {len(body)}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n"
    )
    return head.encode() + body


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> tuple[int, bytes]:
    writer.write(request)
    await writer.drain()
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        key, _, value = line.partition(b":")
        if key.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


@dataclass
class EnergyTally:
    """Per-request energy seen in responses: NVML-measured joules (where given) and the estimate."""

    measured_j: list[float] = field(default_factory=list)
    estimated_pj: list[float] = field(default_factory=list)
    unmeasured: str = ""

    def add(self, body: bytes) -> None:
        energy = json.loads(body)["energy"]
        self.estimated_pj.append(energy["snn_pj"])
        if energy["measured_gpu_j"] is None:
            self.unmeasured = energy["measured_gpu"]
        else:
            self.measured_j.append(energy["measured_gpu_j"])


async def run_load(
    url: str, payloads: list[tuple[str, bytes]], concurrency: int, total: int, energy: EnergyTally | None = None
) -> tuple[float, list]:
    """``total`` classify requests from ``concurrency`` keep-alive connections to ``url`` (may end in a route
    prefix); (requests/s, latencies in s).

    A minimal HTTP/1.1 client on asyncio streams (requests prebuilt, like wrk) so the load generator
    takes as little of the shared CPU as it can.
    """
    parsed = urllib.parse.urlsplit(url)
    port, prefix = parsed.port, parsed.path.rstrip("/")
    requests = [classify_request(port, name, data, prefix) for name, data in payloads]
    latencies: list[float] = []
    issued = 0

    async def worker() -> None:
        nonlocal issued
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while issued < total:
                request = requests[issued % len(requests)]
                issued += 1
                started = time.perf_counter()
                status, body = await _exchange(reader, writer, request)
                latencies.append(time.perf_counter() - started)
                if status != 200:
                    raise RuntimeError(f"{status}: {body[:300]!r}")
                if energy is not None:
                    energy.add(body)
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return total / (time.perf_counter() - started), latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def newest_version(repo: Path, model: str) -> Path:
    """The folder of the newest numeric version of ``model`` in ``repo``."""
    return sorted((repo / model).glob("[0-9]*"), key=lambda p: int(p.name))[-1]


def model_cost(
    repo: Path, model: str = "demo", repeats: int = 20, batches: tuple[int, ...] = (1, 32)
) -> dict[int, float]:
    """The model alone on the service's ONNX backend: CPU ms per sample at each batch size (median)."""
    import numpy as np

    from export.manifest import Manifest
    from service.backends.onnx_backend import OnnxBackend

    version_dir = newest_version(repo, model)
    manifest = Manifest.read(version_dir)
    backend = OnnxBackend(version_dir / "model.onnx", "cpu")
    inp = manifest.input
    out = {}
    for batch in batches:
        shape = (batch, manifest.time_steps, inp.channels, inp.height, inp.width)
        frames = np.random.default_rng(0).poisson(0.5, shape).astype(np.float32)
        backend.run(frames)
        times = []
        for _ in range(repeats):
            started = time.process_time()
            backend.run(frames)
            times.append((time.process_time() - started) / batch * 1000)
        out[batch] = statistics.median(times)
    return out


def measure(servers: dict[str, Server], payloads, concurrencies, requests: int, rounds: int, energy: EnergyTally):
    """Per server and concurrency: medians over ``rounds`` of throughput, p50 and p99, CPU and batch size.

    Rounds alternate between the servers (A B, B A, ...) so background load on a shared machine hits
    both alike; the ratio is the median of the per-round throughput ratios of the first to the second.
    """
    for server in servers.values():
        asyncio.run(run_load(server.url, payloads, 8, 64))  # warm every code path and connection
    labels = list(servers)
    out: dict[str, dict[int, dict]] = {label: {} for label in labels}
    ratios = {}
    for concurrency in concurrencies:
        runs: dict[str, list] = {label: [] for label in labels}
        before = {label: (s.cpu_s(), *s.batches()) for label, s in servers.items()}
        for round_ in range(rounds):
            for label in labels if round_ % 2 == 0 else labels[::-1]:
                tally = energy if label == labels[0] else None
                runs[label].append(asyncio.run(run_load(servers[label].url, payloads, concurrency, requests, tally)))
        for label, server in servers.items():
            cpu, passes, samples = before[label]
            passes_after, samples_after = server.batches()
            out[label][concurrency] = {
                "rps": statistics.median(r[0] for r in runs[label]),
                "p50": statistics.median(percentile(r[1], 0.50) for r in runs[label]) * 1000,
                "p99": statistics.median(percentile(r[1], 0.99) for r in runs[label]) * 1000,
                "cpu_ms": (server.cpu_s() - cpu) / (requests * rounds) * 1000,
                "batch": (samples_after - samples) / max(passes_after - passes, 1),
            }
        first, second = (runs[label] for label in labels)
        ratios[concurrency] = statistics.median(a[0] / b[0] for a, b in zip(first, second, strict=True))
        print(f"  c={concurrency}: ratio {ratios[concurrency]:.2f}", {k: v[concurrency] for k, v in out.items()})
    return out, ratios


def energy_note(energy: EnergyTally) -> str:
    """One line on energy per request of the batching server: NVML-measured against the estimate."""
    estimate = statistics.median(energy.estimated_pj) / 1e12 if energy.estimated_pj else float("nan")
    if not energy.measured_j:
        return (
            f"Energy per request: estimate (snn_pj, median) {estimate:.3g} J; measured GPU energy "
            f"{energy.unmeasured or 'not reported'}."
        )
    return (
        f"Energy per request (batching server, {len(energy.measured_j)} responses): NVML-measured "
        f"`measured_gpu_j` median {statistics.median(energy.measured_j):.3g} J, mean "
        f"{statistics.fmean(energy.measured_j):.3g} J (the board's whole draw over each pass, shared by its "
        f"batch); the response's synaptic-operation estimate (snn_pj) median {estimate:.3g} J."
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repository", help="model repository (default ./model_repository or a demo export)")
    parser.add_argument("--requests", type=int, default=300, help="requests per round (default 300)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--soak", type=int, default=10_000, help="requests for the RSS check (default 10000)")
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated levels (default 1,8,32)")
    parser.add_argument("--backend", default="onnx", choices=["onnx", "torchscript"])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--out", type=Path, help="write the section to this folder (bench.report --merge)")
    parser.add_argument("--key", default="load", help="section key (default load)")
    parser.add_argument("--label", default="", help="appended to the section title (what kind of run this is)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)

    concurrencies = tuple(int(c) for c in args.concurrency.split(","))
    ratio_at = 32 if 32 in concurrencies else concurrencies[-1]
    files = recordings()
    payloads = [(p.name, p.read_bytes()) for p in files]
    configs = {
        "batching on (max batch 32, 5 ms)": {"max_batch_size": 32},
        "batching off (max batch 1)": {"max_batch_size": 1},
    }
    servers: dict[str, Server] = {}
    with tempfile.TemporaryDirectory() as scratch:
        repo = repository(args.repository, Path(scratch))
        try:
            for label, settings in configs.items():
                log = Path(scratch) / f"server-{len(servers)}.log"
                servers[label] = Server(
                    repo,
                    log,
                    max_queue_delay_ms=5,
                    max_queue_size=1024,
                    backend=args.backend,
                    device=args.device,
                    **settings,
                )
            energy = EnergyTally()
            results, ratios = measure(servers, payloads, concurrencies, args.requests, args.rounds, energy)
            batching = servers[next(iter(configs))]
            before = batching.rss_mb()
            if args.soak:
                asyncio.run(run_load(batching.url, payloads, 32, args.soak))
            rss = (before, batching.rss_mb())
            cost = model_cost(repo)
        finally:
            for server in servers.values():
                server.stop()
    ready = {label: server.ready_s for label, server in servers.items()}

    on, off = (results[label] for label in configs)
    rows = [
        [
            c,
            f"{on[c]['rps']:.0f}",
            f"{on[c]['p50']:.1f}",
            f"{on[c]['p99']:.1f}",
            f"{on[c]['batch']:.1f}",
            f"{on[c]['cpu_ms']:.2f}",
            f"{off[c]['rps']:.0f}",
            f"{off[c]['p50']:.1f}",
            f"{off[c]['p99']:.1f}",
            f"{off[c]['cpu_ms']:.2f}",
            f"{ratios[c]:.2f}x",
        ]
        for c in concurrencies
    ]
    header = ["concurrency", "on: req/s", "on: p50 ms", "on: p99 ms", "on: mean batch", "on: server CPU ms/req"]
    header += ["off: req/s", "off: p50 ms", "off: p99 ms", "off: server CPU ms/req"]
    command = " ".join(["python -m bench.load", *(sys.argv[1:] if argv is None else argv)])
    served = f"the {args.backend} backend on device `{args.device}`"
    body = (
        f"`{command}`: "
        f"`POST /v1/classify` of {', '.join(p.name for p in files)} in turn, against the model repository's "
        f"default model on {served}, server and load generator on the same "
        "machine (a minimal keep-alive HTTP/1.1 client on asyncio streams). "
        f"Medians of {args.rounds} rounds of {args.requests} requests, the two servers alternating round by round "
        "(both running, one loaded at a time); the ratio is the median of the per-round ratios. "
        "'on' = dynamic batching (max batch 32, max delay 5 ms, adaptive wait), 'off' = max_batch_size 1. "
        "'server CPU' is the server process's user+system CPU time per request, all threads; "
        "'mean batch' is samples per forward pass.\n\n"
        + table([*header, "on / off throughput"], rows)
        + f"\n\nBatching at concurrency {ratio_at}: **{ratios[ratio_at]:.2f}x** the throughput "
        "(target >= 1.5x at 32).\n\n"
        + energy_note(energy)
        + "\n\n"
        + f"The model alone (same ONNX Runtime CPU session settings, in process): {cost[1]:.2f} CPU ms per sample "
        f"at batch 1, {cost[32]:.2f} at batch 32. On a CPU the forward pass is a small part of a request's "
        "cost (HTTP, multipart parsing and decoding take the rest of the server CPU above), so gathering "
        "requests into one pass can only save that difference. On a GPU the fixed cost of a pass (a kernel "
        "launch per layer and time step) is paid once per batch, which is what the batcher is for"
        + ("." if args.device == "cuda" else "; this run served on no GPU.")
        + "\n\n"
        + (
            f"RSS of the batching server: {rss[0]:.1f} MB before and {rss[1]:.1f} MB after {args.soak:,} more "
            f"requests (growth {rss[1] - rss[0]:+.1f} MB; target < 50 MB).\n\n"
            if args.soak
            else ""
        )
        + "Process start to `/readyz` 200: "
        + ", ".join(f"{label}: {seconds:.2f} s" for label, seconds in ready.items())
        + "."
    )
    print(body)
    if not args.no_write:
        title = "Service load: dynamic batching on vs off"
        if args.label:
            title += f" ({args.label})"
        write_section(args.key, title, body, args.out)


if __name__ == "__main__":
    main()
