"""``stlsnn classify PATH...``: classify files and folders of recordings through a running server.

Requests run concurrently (``--concurrency``, default 4: the server's dynamic batcher gathers
them into shared forward passes). A failed file does not stop the others; the exit status is 1
when any file failed or a named path does not exist, 0 otherwise. Results are printed in the
order the files were found; ``--jsonl`` streams them as that order allows.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from service.cli.discovery import discover
from service.cli.report import Outcome, write_csv, write_json, write_jsonl_line, write_table
from service.cli.terminal import show_progress
from service.client import DEFAULT_URL, Client, ProblemError

OUTPUTS = ("table", "json", "jsonl", "csv")


def add_server_options(parser: argparse.ArgumentParser) -> None:
    """The options shared by the subcommands that talk to a server."""
    parser.add_argument("--url", default=DEFAULT_URL, help=f"server base URL (default {DEFAULT_URL})")
    parser.add_argument("--model", help="model name (default: the server's default model)")
    parser.add_argument("--api-key", help="Bearer key when the server has API keys switched on")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for one answer (default 120)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="event files and folders (searched recursively)")
    add_server_options(parser)
    parser.add_argument("--top-k", type=int, help="classes listed per file (JSON outputs)")
    parser.add_argument("--format", dest="event_format", help="decoder name for every file (skips detection)")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight at once (default 4)")
    formats = parser.add_mutually_exclusive_group()
    for name in OUTPUTS[1:]:
        formats.add_argument(f"--{name}", dest="output", action="store_const", const=name, help=f"print {name}")
    parser.set_defaults(output="table")


def run(args: argparse.Namespace) -> int:
    if args.concurrency < 1:
        print("stlsnn classify: --concurrency must be at least 1", file=sys.stderr)
        return 2
    found = discover(args.paths)
    for missing in found.missing:
        print(f"stlsnn classify: no such file or folder: {missing}", file=sys.stderr)
    if found.skipped:
        print(f"stlsnn classify: skipped {len(found.skipped)} files that are not event recordings", file=sys.stderr)
    if not found.files:
        print("stlsnn classify: no event files to classify", file=sys.stderr)
        return 1
    params = {"top_k": args.top_k, "format": args.event_format}
    with Client(args.url, api_key=args.api_key, timeout=args.timeout) as client:
        outcomes = list(_print_as_done(_classify_all(client, found.files, args, params), args.output, len(found.files)))
    if args.output == "table":
        write_table(outcomes, sys.stdout)
    elif args.output == "json":
        write_json(outcomes, sys.stdout)
    elif args.output == "csv":
        write_csv(outcomes, sys.stdout)
    failed = [o for o in outcomes if not o.ok]
    if args.output != "table":
        for outcome in failed:
            print(f"stlsnn classify: {outcome.path}: {outcome.error}", file=sys.stderr)
    if failed:
        print(f"stlsnn classify: {len(failed)} of {len(outcomes)} files failed", file=sys.stderr)
    return 1 if failed or found.missing else 0


def _classify_all(client: Client, files: list[Path], args: argparse.Namespace, params: dict) -> Iterator[Outcome]:
    def one(path: Path) -> Outcome:
        try:
            return Outcome(path, result=client.classify(path, model=args.model, **params))
        except ProblemError as problem:
            return Outcome(path, status=problem.status, error=problem.detail)
        except (httpx.HTTPError, OSError) as error:
            return Outcome(path, error=f"{type(error).__name__}: {error}")

    with ThreadPoolExecutor(max_workers=min(args.concurrency, len(files))) as pool:
        yield from pool.map(one, files)


def _print_as_done(outcomes: Iterator[Outcome], output: str, total: int) -> Iterator[Outcome]:
    """Stream JSON lines as they come and tick the progress bar; other formats print at the end."""
    bar = None
    if show_progress(total):
        from tqdm import tqdm

        bar = tqdm(total=total, unit="file", file=sys.stderr, leave=False)
    try:
        for outcome in outcomes:
            if output == "jsonl":
                write_jsonl_line(outcome, sys.stdout)
            if bar is not None:
                bar.update(1)
            yield outcome
    finally:
        if bar is not None:
            bar.close()
