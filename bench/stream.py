"""Stream throughput and latency: EVT 3.0 replayed in real time through the WebSocket at set event rates.

``python -m bench.stream [--rates 1,5,20] [--seconds 3]`` serves the demo with ``python -m service``
and, for each rate (million events per second), writes a recording of uniformly random events at
that rate as EVT 3.0 (our writer), then replays its bytes through ``/v1/models/demo/stream`` in
64 KB messages, each sent when the camera would have produced its last event (real time). The
server uses the model's window (stride half of it). Reported: the rate actually sent (a server
that cannot keep up slows the sender through TCP), windows answered and dropped, and the
server's ``latency_ms`` (last byte of a window received -> its message sent), p50 and p99.
Writes BENCHMARKS.md (key ``stream``).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from websockets.sync.client import connect

import events
from bench.load import Server, repository
from bench.report import table, write_section
from events.evt3 import write_evt3

SENSOR = (1280, 720)  # a Prophesee Gen4-size sensor: events spread as a real camera's would
CHUNK = 64 * 1024
FILTERS = {
    "model": "the model's (background activity as events arrive, hot pixels per window)",
    "off": "off",
}


def recording(rate: float, seconds: float, seed: int = 0) -> tuple[bytes, np.ndarray]:
    """EVT 3.0 bytes of ``rate`` events/s for ``seconds`` (sent paced by share of bytes), and the event times."""
    rng = np.random.default_rng(seed)
    n = int(rate * seconds)
    t = np.sort(rng.integers(0, int(seconds * 1e6), n))
    rec = events.make_events(t, rng.integers(0, SENSOR[0], n), rng.integers(0, SENSOR[1], n), rng.integers(0, 2, n))
    buffer = io.BytesIO()
    write_evt3(buffer, rec, SENSOR)
    return buffer.getvalue(), t


def replay(url: str, data: bytes, seconds: float, config: dict | None = None) -> dict:
    """Send ``data`` in real time over ``seconds``; collect every window message until the flush is acknowledged."""
    messages: list[dict] = []
    with connect(url, max_size=None) as ws:
        ws.send(json.dumps({"format": "evt3", **(config or {})}))
        done = threading.Event()

        def receive() -> None:
            while True:
                message = json.loads(ws.recv(timeout=300))
                if message.get("flushed"):
                    messages.append(message)
                    done.set()
                    return
                messages.append(message)

        reader = threading.Thread(target=receive, daemon=True)
        reader.start()
        chunks = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]
        started = time.perf_counter()
        for i, chunk in enumerate(chunks):
            due = started + seconds * (i + 1) / len(chunks)
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            ws.send(chunk)
        sent_s = time.perf_counter() - started
        ws.send(json.dumps({"flush": True}))
        done.wait(600)
    windows = [m for m in messages if "start_us" in m]
    return {"sent_s": sent_s, "windows": windows, "ack": messages[-1] if messages else {}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stream", description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="1,5,20", help="million events per second, comma-separated")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument(
        "--filters", choices=["model", "off"], default="model", help="the model's noise filters, or none per window"
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        # a window of the demo's 590 ms at 20 Mev/s holds ~12 M events: let one stream buffer that many
        buffered = int(max(rates) * 1e6 * 1.5)
        server = Server(repository(None, Path(tmp)), Path(tmp) / "server.log", stream_max_buffered_events=buffered)
        try:
            url = server.url.replace("http://", "ws://") + "/v1/models/demo/stream"
            replay(url, recording(1e5, 1.0, seed=1)[0], 1.0)  # warm-up: the stream path's first compiled calls
            for rate in rates:
                data, t = recording(rate * 1e6, args.seconds)
                config = {"denoise_us": 0, "hot_pixels": False} if args.filters == "off" else {}
                result = replay(url, data, args.seconds, config)
                latencies = [w["latency_ms"] for w in result["windows"]]
                dropped = result["ack"].get("dropped_windows", -1)
                sent_rate = len(t) / result["sent_s"] / 1e6
                kept_up = dropped == 0 and sent_rate >= 0.95 * rate
                rows.append(
                    [
                        f"{rate:g}",
                        f"{sent_rate:.2f}",
                        f"{len(data) / result['sent_s'] / 1e6:.1f}",
                        f"{len(result['windows'])}",
                        f"{dropped}",
                        f"{np.percentile(latencies, 50):.1f}" if latencies else "-",
                        f"{np.percentile(latencies, 99):.1f}" if latencies else "-",
                        "yes" if kept_up else "no",
                    ]
                )
                print(rows[-1], flush=True)
        finally:
            server.stop()
    load = os.getloadavg()[0]
    body = (
        f"`python -m bench.stream --rates {args.rates} --seconds {args.seconds:g} --filters {args.filters}`: "
        f"noise filters: {FILTERS[args.filters]}; uniformly "
        "random events on a "
        f"{SENSOR[0]}x{SENSOR[1]} sensor written as EVT 3.0, replayed in real time through the WebSocket in 64 KB "
        "messages to the demo model (its 590 ms window, stride 295 ms; server started with "
        f"`STLSNN_STREAM_MAX_BUFFERED_EVENTS={buffered}` so a window at the highest rate fits). `latency_ms` is the "
        "server's: last byte of a window received to its message sent. Kept up: no window dropped and at least 95 % "
        f"of the target rate sent. Load average at the end of the run: {load:.1f} on {os.cpu_count()} cores.\n\n"
        + table(
            [
                "target Mev/s",
                "sent Mev/s",
                "sent MB/s",
                "windows answered",
                "dropped",
                "latency p50 ms",
                "latency p99 ms",
                "kept up",
            ],
            rows,
        )
    )
    print(body)
    if not args.no_write:
        title = "Stream: real-time EVT 3.0 replay through the WebSocket" + (
            ", filters off" if args.filters == "off" else ""
        )
        write_section("stream" if args.filters == "model" else "stream-no-filters", title, body)


if __name__ == "__main__":
    main()
