"""The service behind Ray Serve vs the plain service: throughput and p50/p99 at concurrency 32 for
(a) ``python -m service``, (b) the Ray Serve application with 1 replica, (c) with 2 replicas, side by side
in one run, and the CPU milliseconds per request spent in each process (proxy, replicas, the rest of Ray,
the plain server, the load generator), so the ceiling on this machine's cores is visible.

(b) and (c) are two applications of ``deploy/ray/serve.yaml`` (route prefixes ``/one`` and ``/two``) on
one local Ray cluster of two simulated nodes behind the same proxy; rounds go a b c, c b a, ... so
background load on a shared machine hits all three alike. ``--profile`` then samples the proxy and a
replica with py-spy during one more (c) round and lists where their time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import psutil

from bench.load import Server, free_port, percentile, recordings, repository, run_load
from bench.ray_cluster import LocalRayCluster, serve_config
from bench.report import table, write_section

CONCURRENCY = 32
APPS = {"one": 1, "two": 2}  # application name (route prefix) -> replicas
LAST = "(c) Ray Serve, 2 replicas"
REST = "rest of Ray (GCS, raylets, agents, idle workers)"
PY_SPY = str(Path(sys.executable).parent / "py-spy")  # requirements/dev.txt; installed beside this Python


def two_applications(repo: Path, port: int) -> dict:
    """serve.yaml's application twice, 1 and 2 replicas, under ``/one`` and ``/two``."""
    config = serve_config(repo, port)
    template = config["applications"][0]
    config["applications"] = [
        template
        | {"name": name, "route_prefix": f"/{name}", "deployments": [template["deployments"][0] | {"num_replicas": n}]}
        for name, n in APPS.items()
    ]
    return config


def process_role(process: psutil.Process, plain_pid: int) -> str:
    """Which part of the system a process is, from its Ray process title."""
    if process.pid == plain_pid:
        return "plain server"
    title = " ".join(process.cmdline()) or process.name()
    if title.startswith("ray::ProxyActor"):
        return "Ray proxy"
    for name in APPS:
        if title.startswith(f"ray::ServeReplica:{name}:"):
            return f"replicas ({name})"
    if title.startswith("ray::ServeController"):
        return "Serve controller"
    return REST


def cpu_by_role(plain_pid: int) -> dict[str, float]:
    """User + system CPU seconds so far of this process (the load generator) and each of its descendants."""
    totals: dict[str, float] = collections.defaultdict(float)
    me = psutil.Process()
    times = me.cpu_times()
    totals["load generator (this process)"] = times.user + times.system
    for child in me.children(recursive=True):
        try:
            times = child.cpu_times()
            totals[process_role(child, plain_pid)] += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return totals


def measure(urls: dict[str, str], payloads, requests: int, rounds: int, plain_pid: int):
    """Per configuration: per-round (throughput, latencies) and CPU seconds per role over its rounds."""
    for url in urls.values():
        asyncio.run(run_load(url, payloads, 8, 64))
    runs: dict[str, list] = {label: [] for label in urls}
    cpu: dict[str, dict[str, float]] = {label: collections.defaultdict(float) for label in urls}
    labels = list(urls)
    for round_ in range(rounds):
        for label in labels if round_ % 2 == 0 else labels[::-1]:
            before = cpu_by_role(plain_pid)
            runs[label].append(asyncio.run(run_load(urls[label], payloads, CONCURRENCY, requests)))
            after = cpu_by_role(plain_pid)
            for role, seconds in after.items():
                cpu[label][role] += seconds - before.get(role, 0.0)
            print(f"round {round_} {label}: {runs[label][-1][0]:.0f} req/s", flush=True)
    return runs, cpu


def code_area(frame: str) -> str:
    """The source file of a py-spy frame (``function (path:line)``), as py-spy names it (package-relative)."""
    if "(" not in frame:
        return "no Python frame (native threads: Ray core, gRPC)"
    return frame.rpartition("(")[2].rpartition(":")[0]


def profile(pid: int, seconds: float, out: Path) -> list[tuple[str, float]]:
    """py-spy samples of one process for ``seconds``: own time (share of samples) by source file, top 10."""
    subprocess.run(
        [
            *(PY_SPY, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "200"),
            *("--format", "raw", "--output", str(out), "--nonblocking"),
        ],
        check=True,
        capture_output=True,
    )
    own: dict[str, int] = collections.Counter()
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        own[code_area(stack.rsplit(";", 1)[-1])] += int(count)
    total = sum(own.values()) or 1
    return [(name, count / total) for name, count in own.most_common(10)]


def profile_under_load(url: str, payloads, plain_pid: int, scratch: Path) -> dict[str, list[tuple[str, float]]]:
    """py-spy profiles of the proxy and one replica, each taken while a stream of requests runs."""
    pids = {process_role(p, plain_pid): p.pid for p in psutil.Process().children(recursive=True)}
    profiles = {}
    for role in ("Ray proxy", "replicas (two)"):
        load = threading.Thread(target=asyncio.run, args=(run_load(url, payloads, CONCURRENCY, 1500),))
        load.start()
        profiles[role] = profile(pids[role], 8, scratch / f"{role}.txt")
        load.join()
    return profiles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repository", help="model repository (default ./model_repository or a demo export)")
    parser.add_argument("--requests", type=int, default=300, help="requests per round (default 300)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="py-spy the proxy and a replica afterwards")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    files = recordings()
    payloads = [(p.name, p.read_bytes()) for p in files]
    env = serve_config(Path("."), 0)["applications"][0]["runtime_env"]["env_vars"]
    settings = {key.removeprefix("STLSNN_").lower(): value for key, value in env.items()}
    with tempfile.TemporaryDirectory() as scratch:
        repo = repository(args.repository, Path(scratch))
        settings.pop("model_repository")
        plain = Server(repo, Path(scratch) / "plain.log", **settings)
        cluster = LocalRayCluster(nodes=2, cpus_per_node=2).start()
        try:
            port = free_port()
            cluster.deploy(two_applications(repo, port))
            urls = {
                "(a) plain service": plain.url,
                "(b) Ray Serve, 1 replica": f"http://127.0.0.1:{port}/one",
                LAST: f"http://127.0.0.1:{port}/two",
            }
            runs, cpu = measure(urls, payloads, args.requests, args.rounds, plain.process.pid)
            load_avg = psutil.getloadavg()
            profiles = (
                profile_under_load(urls[LAST], payloads, plain.process.pid, Path(scratch)) if args.profile else {}
            )
        finally:
            cluster.stop()
            plain.stop()

    report(args, files, runs, cpu, load_avg, profiles)


def report(args, files, runs, cpu, load_avg, profiles) -> None:
    labels = list(runs)
    rows, summary = [], {}
    for label in labels:
        rps = statistics.median(r[0] for r in runs[label])
        summary[label] = rps
        rows.append(
            [
                label,
                f"{rps:.0f}",
                f"{statistics.median(percentile(r[1], 0.50) for r in runs[label]) * 1000:.1f}",
                f"{statistics.median(percentile(r[1], 0.99) for r in runs[label]) * 1000:.1f}",
            ]
        )
    a, b, c = (runs[label] for label in labels)
    b_over_a = statistics.median(y[0] / x[0] for x, y in zip(a, b, strict=True))
    c_over_b = statistics.median(y[0] / x[0] for x, y in zip(b, c, strict=True))
    roles = sorted({role for label in labels for role in cpu[label]})
    total = args.requests * args.rounds
    cpu_rows = [[role, *(f"{cpu[label].get(role, 0.0) / total * 1000:.2f}" for label in labels)] for role in roles]
    per_request = {label: {role: ms / total * 1000 for role, ms in cpu[label].items()} for label in labels}
    all_ms = {label: sum(per_request[label].values()) for label in labels}
    cpu_rows.append(["all processes", *(f"{all_ms[label]:.2f}" for label in labels)])
    cores = psutil.cpu_count()
    cpu_rows.append([f"ceiling on {cores} cores (req/s)", *(f"{cores * 1000 / all_ms[label]:.0f}" for label in labels)])
    b = per_request[labels[1]]
    ray_parts = {
        "proxy": b.get("Ray proxy", 0.0),
        "replica beyond the plain server's own work": b.get("replicas (one)", 0.0)
        - per_request[labels[0]]["plain server"],
        "rest of Ray": b.get(REST, 0.0) + b.get("Serve controller", 0.0),
    }
    overhead_ms = (1000 / summary[labels[1]] - 1000 / summary[labels[0]]) * CONCURRENCY
    body = (
        f"`python -m bench.ray_load --requests {args.requests} --rounds {args.rounds}"
        f"{' --profile' if profiles else ''}`: `POST /v1/classify` of {', '.join(p.name for p in files)} in turn "
        f"at concurrency {CONCURRENCY} (the keep-alive asyncio client of `bench/load.py`), against (a) `python -m "
        "service`, (b) and (c) the Ray Serve application of `deploy/ray/serve.yaml` with 1 and 2 replicas "
        "(0.5 CPU each) on a local Ray cluster of a head and a second simulated node, all on this 2-core "
        "machine, the same `STLSNN_*` settings everywhere (ONNX Runtime CPU, max batch 32, 5 ms). Medians of "
        f"{args.rounds} rounds of {args.requests} requests, the three alternating round by round; ratios are "
        "medians of per-round ratios. The machine was shared with other jobs during the run (load average "
        f"{load_avg[0]:.1f} over the last minute at the end), so absolute numbers are low; the ratios "
        "compare like with like.\n\n"
        + table(["configuration", "req/s", "p50 ms", "p99 ms"], rows)
        + f"\n\n(b) / (a) throughput: **{b_over_a:.2f}x** (target >= 0.75x); (c) / (b): **{c_over_b:.2f}x** "
        f"(target >= 1.3x). Ray's added time per request at this concurrency (1/throughput difference x "
        f"{CONCURRENCY}): {overhead_ms:.1f} ms.\n\n"
        "CPU milliseconds per request in each process (user + system, from /proc via psutil, summed over the "
        "process's threads and over every process of that role; each column covers that configuration's "
        "rounds only, so idle processes show their background cost):\n\n"
        + table(["process", *labels], cpu_rows)
        + f"\n\nWhere Ray's time goes: with 1 replica a request costs {all_ms[labels[1]]:.1f} CPU ms in all against "
        f"{all_ms[labels[0]]:.1f} for the plain service; the extra is "
        + ", ".join(f"{name} {ms:.1f} ms" for name, ms in ray_parts.items())
        + f". Every configuration is CPU-bound on the same {cores} cores, so its throughput is capped by cores "
        "divided by CPU per request (the ceiling row; other jobs on the machine take their share too), and a "
        "second replica on the same cores adds no capacity: (c) gains only what a second batcher overlaps. "
        "On a cluster each replica brings its own machine's cores (or GPU), and the proxy runs on every node."
    )
    for role, top in profiles.items():
        body += f"\n\nWhere the {role} spends its time (py-spy, 200 Hz, 8 s of (c) load; samples by the source "
        body += "file of their innermost frame):\n\n"
        body += table(["file", "share of samples"], [[f"`{name}`", f"{share:.0%}"] for name, share in top])
    print(body)
    if not args.no_write:
        write_section("ray-load", "Ray Serve vs the plain service (scale-out)", body)


if __name__ == "__main__":
    main()
