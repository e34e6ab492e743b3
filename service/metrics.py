"""Prometheus metrics of one app instance (own registry, so tests can build several apps).

With ``PROMETHEUS_MULTIPROC_DIR`` set (``python -m service`` does it when it runs several worker
processes), every process writes its values to files there and ``render`` adds up all of them,
so a scrape that reaches any worker sees the whole server: counters and histograms summed over
workers (dead ones included), queue depth and open streams summed over live workers, and a
model ready only when it is ready in every live worker.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
SPIKE_BUCKETS = tuple(10**k for k in range(0, 10))


class Metrics:
    """Counters, histograms and gauges the service updates; ``render`` gives the text exposition."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "stlsnn_requests", "Classify requests by model and HTTP status", ["model", "status"], registry=r
        )
        self.http_requests = Counter(
            "stlsnn_http_requests", "HTTP requests by route and status", ["route", "method", "status"], registry=r
        )
        self.latency = Histogram(
            "stlsnn_request_seconds", "Classify request latency", ["model"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.decode = Histogram("stlsnn_decode_seconds", "Decoding one file", buckets=LATENCY_BUCKETS, registry=r)
        self.frame = Histogram("stlsnn_frame_seconds", "Framing one recording", buckets=LATENCY_BUCKETS, registry=r)
        self.queue_wait = Histogram(
            "stlsnn_queue_seconds", "Time a sample waited for its batch", ["model"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.inference = Histogram(
            "stlsnn_inference_seconds", "One batched forward pass", ["model"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.batch_size = Histogram(
            "stlsnn_batch_size", "Samples per forward pass", ["model"], buckets=BATCH_BUCKETS, registry=r
        )
        self.queue_depth = Gauge(
            "stlsnn_queue_depth", "Samples waiting for a batch", ["model"], registry=r, multiprocess_mode="livesum"
        )
        self.dropped = Counter(
            "stlsnn_cancelled_samples", "Samples dropped before inference (caller gone)", ["model"], registry=r
        )
        self.spikes = Histogram(
            "stlsnn_spikes_per_request", "Spikes emitted for one sample", ["model"], buckets=SPIKE_BUCKETS, registry=r
        )
        self.windows = Counter(
            "stlsnn_windows_classified",
            "Windows classified, by model and source (timeline|stream)",
            ["model", "source"],
            registry=r,
        )
        self.open_streams = Gauge(
            "stlsnn_open_streams", "WebSocket streams now open", registry=r, multiprocess_mode="livesum"
        )
        self.stream_dropped = Counter(
            "stlsnn_stream_windows_dropped", "Stream windows dropped (model behind)", ["model"], registry=r
        )
        self.stream_latency = Histogram(
            "stlsnn_stream_latency_seconds",
            "Last byte of a window received -> its message sent",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.model_ready = Gauge(
            "stlsnn_model_ready",
            "1 when the model serves, 0 otherwise",
            ["model"],
            registry=r,
            multiprocess_mode="livemin",
        )

    def render(self) -> tuple[bytes, str]:
        if not os.environ.get(MULTIPROCESS_DIR):
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        every_worker = CollectorRegistry()
        multiprocess.MultiProcessCollector(every_worker)
        return generate_latest(every_worker), CONTENT_TYPE_LATEST

    def close(self) -> None:
        """At process exit: drop this worker's live gauges from the shared totals."""
        if os.environ.get(MULTIPROCESS_DIR):
            multiprocess.mark_process_dead(os.getpid())
