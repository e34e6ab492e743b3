"""Where a classify request's server CPU goes: py-spy samples a running ``python -m service`` under
``bench.load``'s client, and the stacks are summed per stage (multipart parsing, thread hops, decode,
frame, queue, model, response validation, JSON, metrics, logging, HTTP, event loop).

Each sample is charged to the innermost frame that names a stage (walking from the leaf towards the
root), so ``json.dumps`` inside the access log counts as logging, not as response JSON. Idle threads
are not sampled (py-spy's default), so the shares are of CPU, not of wall time. Run as root or with
ptrace permission; ``--write`` puts the table into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.load import Server, recordings, repository, run_load
from bench.report import table, write_section

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


@dataclass(frozen=True)
class Rule:
    """A frame belongs to ``stage`` when its file path contains ``file`` and its function matches ``func``."""

    stage: str
    file: str
    func: str = ""

    def matches(self, func: str, file: str) -> bool:
        return self.file in file and (not self.func or re.fullmatch(self.func, func) is not None)


# Innermost match wins; order only breaks ties within one frame.
RULES = (
    Rule("model", "service/backends/"),
    Rule("model", "onnxruntime"),
    Rule("frame", "events/fram"),
    Rule("frame", "service/ingest.py", "frame_events|prepare"),
    Rule("decode", "events/"),
    Rule("decode", "service/ingest.py"),
    Rule("queue (batcher)", "service/batcher.py"),
    Rule("metrics", "prometheus_client/"),
    Rule("logging", "service/request_logging.py"),
    Rule("logging", "logging/"),
    Rule("multipart parsing", "multipart/"),
    Rule("multipart parsing", "starlette/formparsers.py"),
    Rule("multipart parsing", "starlette/datastructures.py"),
    Rule("multipart parsing", "tempfile.py"),
    Rule("multipart parsing", "fastapi/dependencies/utils.py", r"_extract_form_body|request_body_to_args|.*form.*"),
    Rule("multipart parsing", "starlette/requests.py", r"form|_get_form|stream|body"),
    Rule("JSON serialisation", "orjson"),
    Rule("JSON serialisation", "starlette/responses.py", "render|__init__"),
    Rule("response validation", "fastapi/routing.py", "serialize_response|_prepare_response_content"),
    Rule("response validation", "fastapi/encoders.py"),
    Rule("response validation", "pydantic"),
    Rule("response build (result, energy)", "service/routes/classify.py", "build_result"),
    Rule("response build (result, energy)", "service/energy.py"),
    Rule("thread hops", "service/decode_pool.py"),
    Rule("thread hops", "concurrent/futures/"),
    Rule("thread hops", "asyncio/futures.py"),
    Rule("thread hops", "threading.py"),
    Rule("thread hops", "asyncio/base_events.py", "run_in_executor|call_soon_threadsafe"),
    Rule("request handling (routes, dependencies)", "service/"),
    Rule("request handling (routes, dependencies)", "fastapi/"),
    Rule("HTTP (uvicorn, starlette, middleware)", "uvicorn/"),
    Rule("HTTP (uvicorn, starlette, middleware)", "starlette/"),
    Rule("HTTP (uvicorn, starlette, middleware)", "httptools"),
    Rule("event loop (asyncio)", "asyncio/"),
    Rule("event loop (asyncio)", "uvloop"),
)
READING = (
    "Reading the stacks: 'thread hops' is `ThreadPoolExecutor.submit` and the decode worker waking in "
    "`work_queue.get` (uploads over 256 KiB or over the event loop's decode budget, NPZ and CSV, and uploads "
    "of the standard path while the model has samples pending), the batcher waking in `Condition.wait`, and "
    "the future callbacks that carry results back to the loop. py-spy counts a "
    "thread as busy while it is runnable, so a thread woken on a loaded machine is charged for its wait in the "
    "run queue too: this stage overstates what removing a hop saves (the per-thread CPU above is not sampled). "
    "'event loop' is uvloop's C code between Python "
    "frames (socket reads and writes, httptools, wake-ups); 'request handling' is our middleware (request log, "
    "upload limit), FastAPI's routing and the classify handler around decode and the model."
)
PY_SPY = Path(sys.executable).with_name("py-spy")  # the venv's, when the venv is not on PATH
SPY = (str(PY_SPY) if PY_SPY.exists() else "py-spy", "record", "--format", "raw", "--nonblocking")
STAGES = [*dict.fromkeys(rule.stage for rule in RULES), "other"]


def stage_of(stack: list[str]) -> str:
    """The stage of the innermost frame of ``stack`` (root first) that some rule names."""
    for frame in reversed(stack):
        match = FRAME.match(frame)
        if not match:
            continue
        func, file = match["func"], match["file"]
        for rule in RULES:
            if rule.matches(func, file):
                return rule.stage
    return "other"


def aggregate(raw: str) -> collections.Counter:
    """Samples per stage from py-spy's ``--format raw`` output (collapsed stacks: ``a;b;c COUNT``)."""
    counts: collections.Counter = collections.Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            counts[stage_of(stack.split(";"))] += int(count)
    return counts


THREAD_LINE = re.compile(r'^Thread (?P<tid>\d+) \([^)]*\): "(?P<name>[^"]+)"', re.MULTILINE)


def thread_cpu_s(pid: int) -> dict[int, float]:
    """User + system CPU seconds of each thread of ``pid``, by native thread id (from /proc, not sampled)."""
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "stat").read_text().rpartition(")")[2].split()
        cpu[int(task.name)] = (int(fields[11]) + int(fields[12])) / ticks
    return cpu


def thread_names(pid: int) -> dict[int, str]:
    """Python's names of the threads of ``pid`` by native id, from ``py-spy dump``; native-only threads are absent."""
    dump = subprocess.run([SPY[0], "dump", "--pid", str(pid)], capture_output=True, text=True).stdout
    return {int(m["tid"]): m["name"] for m in THREAD_LINE.finditer(dump)}


def per_thread(before: dict[int, float], after: dict[int, float], names: dict[int, str], requests: int) -> str:
    """'name ms/req' per thread that used CPU, busiest first; unnamed (native) threads are summed."""
    used = {tid: after[tid] - before.get(tid, 0.0) for tid in after}
    named = sorted(((names[t], cpu) for t, cpu in used.items() if t in names and cpu > 0), key=lambda x: -x[1])
    native = sum(cpu for t, cpu in used.items() if t not in names)
    parts = [f"{name} {cpu / requests * 1000:.2f}" for name, cpu in named]
    return ", ".join([*parts, f"native threads (ONNX Runtime's) {native / requests * 1000:.2f}"])


def profile(server: Server, payloads, concurrency: int, requests: int, rate: int, out: Path) -> tuple[float, float]:
    """Sample ``server`` with py-spy while ``requests`` classify requests run; (server CPU ms/request, req/s)."""
    spy = subprocess.Popen(
        [*SPY, "--pid", str(server.process.pid), "--rate", str(rate), "--output", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(1.0)  # py-spy attaches
    cpu = server.cpu_s()
    rps, _ = asyncio.run(run_load(server.url, payloads, concurrency, requests))
    cpu_ms = (server.cpu_s() - cpu) / requests * 1000
    spy.send_signal(2)
    _, err = spy.communicate(timeout=60)
    if not out.exists():
        raise RuntimeError(f"py-spy wrote nothing: {err.decode()[-2000:]}")
    return cpu_ms, rps


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repository", help="model repository (default ./model_repository or a demo export)")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--raw", type=Path, help="keep py-spy's collapsed stacks here")
    parser.add_argument("--write", action="store_true", help="write the section into BENCHMARKS.md")
    args = parser.parse_args(argv)

    load = os.getloadavg()
    files = recordings()
    payloads = [(p.name, p.read_bytes()) for p in files]
    with tempfile.TemporaryDirectory() as scratch:
        repo = repository(args.repository, Path(scratch))
        server = Server(repo, Path(scratch) / "server.log", max_batch_size=32, max_queue_delay_ms=5)
        try:
            asyncio.run(run_load(server.url, payloads, args.concurrency, 100))
            names = thread_names(server.process.pid)
            threads = thread_cpu_s(server.process.pid)
            asyncio.run(run_load(server.url, payloads, args.concurrency, args.requests))
            threads_ms = per_thread(threads, thread_cpu_s(server.process.pid), names, args.requests)
            raw_path = args.raw or Path(scratch) / "stacks.txt"
            cpu_ms, rps = profile(server, payloads, args.concurrency, args.requests, args.rate, raw_path)
            counts = aggregate(raw_path.read_text())
        finally:
            server.stop()
    total = sum(counts.values())
    outside = total - sum(counts[stage] for stage in ("decode", "frame", "model"))
    rows = [
        [stage, counts[stage], f"{100 * counts[stage] / total:.1f}%", f"{cpu_ms * counts[stage] / total:.2f}"]
        for stage in sorted(STAGES, key=lambda s: -counts[s])
        if counts[stage]
    ]
    command = " ".join(["python -m bench.profile_server", *(sys.argv[1:] if argv is None else argv)])
    body = (
        f"`{command}` as root (py-spy needs ptrace; py-spy {_py_spy_version()}, {args.rate} samples/s, idle "
        f"threads not sampled; load average {load[0]:.1f} before, {os.getloadavg()[0]:.1f} after, 2 shared cores): "
        f"{args.requests} `POST /v1/classify` of {', '.join(p.name for p in files)} in turn at concurrency "
        f"{args.concurrency} against one `python -m service` (ONNX Runtime, batching on). Server CPU "
        f"{cpu_ms:.2f} ms per request, {rps:.0f} req/s. Each sample goes to the innermost frame that names a "
        "stage; 'ms/req' splits the measured CPU per request by the shares.\n\n"
        + table(["stage", "samples", "share", "CPU ms/req"], rows)
        + f"\n\nOutside decode, framing and the model: **{cpu_ms * outside / total:.2f} ms** of server CPU per "
        "request (issue 15's target: at most 1 ms).\n\n"
        f"CPU ms per request by thread (/proc, a second run of {args.requests} requests without py-spy): "
        f"{threads_ms}.\n\n" + READING
    )
    print(body)
    if args.write:
        write_section("profile", "Service profile: where a request's CPU goes", body)


def _py_spy_version() -> str:
    return subprocess.run([SPY[0], "--version"], capture_output=True, text=True).stdout.split()[-1]


if __name__ == "__main__":
    main()
