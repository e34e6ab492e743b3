"""Serving overhead before and after: the same load against the server of an older commit and of this
checkout, side by side in one run (rounds alternate), at concurrency 1 and 32.

The older commit is exported with ``git archive`` into a scratch folder and served from there with
the same interpreter, settings and model repository. Reports medians of throughput, p50 and server
CPU per request, the after/before throughput ratio, and the load average around the run.

Overhead is the server's CPU per request less the work itself, measured alone in this process after
the load: decoding and framing each recording of the mix (``service.ingest.prepare``, the server's
limits and framing, median thread CPU per file, averaged over the mix) and the model per sample on
the service's ONNX backend at the mean batch size that server ran (whole-process CPU, so ONNX
Runtime's threads count as they do in the server).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.load import ROOT, Server, measure, model_cost, newest_version, recordings, repository
from bench.report import table, write_section


def export_commit(rev: str, into: Path) -> Path:
    """The tree of ``rev`` as plain files under ``into`` (no git worktree is created)."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def prepare_cost(repo: Path, payloads: list[tuple[str, bytes]], model: str = "demo", repeats: int = 50) -> float:
    """Decoding and framing alone: CPU ms per request over the mix (median per file, then the mean)."""
    from export.manifest import Manifest
    from service.ingest import IngestLimits, prepare
    from service.settings import Settings

    manifest = Manifest.read(newest_version(repo, model))
    limits = IngestLimits.of(Settings(model_repository=repo))
    per_file = []
    for name, data in payloads:
        times = []
        for i in range(repeats + 3):
            started = time.process_time()
            prepare(io.BytesIO(data), name, None, None, manifest, limits)
            if i >= 3:  # the first calls compile and warm caches
                times.append(time.process_time() - started)
        per_file.append(statistics.median(times) * 1000)
    return statistics.fmean(per_file)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the commit to compare against")
    parser.add_argument("--repository", help="model repository (default ./model_repository or a demo export)")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", default="1,32")
    parser.add_argument("--workers", type=int, default=1, help="worker processes of this checkout's server")
    parser.add_argument("--key", default="overhead", help="BENCHMARKS.md section key")
    parser.add_argument("--write", action="store_true", help="write the section into BENCHMARKS.md")
    args = parser.parse_args(argv)

    concurrencies = tuple(int(c) for c in args.concurrency.split(","))
    payloads = [(p.name, p.read_bytes()) for p in recordings()]
    load_before = os.getloadavg()
    settings = {"max_batch_size": 32, "max_queue_delay_ms": 5, "max_queue_size": 1024}
    with tempfile.TemporaryDirectory() as scratch:
        repo = repository(args.repository, Path(scratch))
        old = export_commit(args.before, Path(scratch) / "before")
        labels = (f"before ({args.before[:10]})", f"after (this checkout, {args.workers} worker(s))")
        servers: dict[str, Server] = {}
        try:
            for label, root, workers in zip(labels, (old, ROOT), (1, args.workers), strict=True):
                log = Path(scratch) / f"{len(servers)}.log"
                servers[label] = Server(repo, log, root=root, workers=workers, **settings)
            results, ratios = measure(servers, payloads, concurrencies, args.requests, args.rounds, None)
        finally:
            for server in servers.values():
                server.stop()
        decode_frame_ms = prepare_cost(repo, payloads)
        batches = {label: {c: max(1, round(results[label][c]["batch"])) for c in concurrencies} for label in labels}
        model_ms = model_cost(repo, batches=tuple(sorted({b for per in batches.values() for b in per.values()})))
    outside = {
        label: {c: results[label][c]["cpu_ms"] - decode_frame_ms - model_ms[batches[label][c]] for c in concurrencies}
        for label in labels
    }
    before, after = (results[label] for label in labels)
    rows = [
        [
            c,
            f"{before[c]['rps']:.0f}",
            f"{after[c]['rps']:.0f}",
            f"{1 / ratios[c]:.2f}x",
            f"{before[c]['p50']:.1f}",
            f"{after[c]['p50']:.1f}",
            f"{before[c]['cpu_ms']:.2f}",
            f"{after[c]['cpu_ms']:.2f}",
            f"{before[c]['batch']:.1f} / {after[c]['batch']:.1f}",
            f"{outside[labels[0]][c]:.2f}",
            f"{outside[labels[1]][c]:.2f}",
        ]
        for c in concurrencies
    ]
    header = ["concurrency", "before req/s", "after req/s", "after / before", "before p50 ms", "after p50 ms"]
    header += ["before server CPU ms/req", "after server CPU ms/req", "mean batch before / after"]
    header += ["before outside decode, framing, model ms/req", "after outside ms/req"]
    command = " ".join(["python -m bench.overhead", *(sys.argv[1:] if argv is None else argv)])
    body = (
        f"`{command}`: both servers running (ONNX Runtime, batching on), rounds alternating; medians of "
        f"{args.rounds} rounds of {args.requests} requests; 'after / before' is the median of the per-round "
        f"throughput ratios; server CPU counts every worker process. Load average {load_before[0]:.1f} before "
        f"the run, {os.getloadavg()[0]:.1f} after (2 cores shared with other jobs). 'Outside' is server CPU per "
        f"request less the work measured alone afterwards (module docstring): decoding and framing "
        f"{decode_frame_ms:.2f} ms per request over the mix, the model "
        + ", ".join(f"{ms:.2f} ms per sample at batch {b}" for b, ms in sorted(model_ms.items()))
        + " (issue 15's target: at most 1 ms outside).\n\n"
        + table(header, rows)
    )
    print(body)
    if args.write:
        title = "Serving overhead: before and after, side by side"
        write_section(args.key, title + (f" ({args.workers} workers)" if args.workers > 1 else ""), body)


if __name__ == "__main__":
    main()
