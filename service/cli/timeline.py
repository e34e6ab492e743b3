"""``stlsnn timeline FILE``: what happens when in a long recording, window by window (DESIGN section 10).

The server answers with windows and labelled segments; this prints the segments as a table
(or the whole answer with ``--json``). A server that has no timeline endpoint (a plain 404 for
the route) is a usage error, exit 2, saying so; any other problem exits 1 with its detail.
"""

from __future__ import annotations

import argparse
import json
import sys

import httpx

from service.cli.classify import add_server_options
from service.client import Client, ProblemError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="one event file")
    add_server_options(parser)
    parser.add_argument("--window-ms", type=float, help="window length (default: the model's training window)")
    parser.add_argument("--stride-ms", type=float, help="step between window starts (default: half a window)")
    parser.add_argument("--min-events", type=int, help="windows with fewer events are idle")
    parser.add_argument("--format", dest="event_format", help="decoder name (skips detection)")
    parser.add_argument("--json", action="store_true", help="print the server's whole answer as JSON")


def run(args: argparse.Namespace) -> int:
    params = {
        "window_ms": args.window_ms,
        "stride_ms": args.stride_ms,
        "min_events": args.min_events,
        "format": args.event_format,
    }
    try:
        with Client(args.url, api_key=args.api_key, timeout=args.timeout) as client:
            answer = client.timeline(args.file, model=args.model, **params)
    except ProblemError as problem:
        if problem.no_such_route:
            print(f"stlsnn timeline: the server at {args.url} has no timeline endpoint (404)", file=sys.stderr)
            return 2
        print(f"stlsnn timeline: {args.file}: {problem}", file=sys.stderr)
        return 1
    except (httpx.HTTPError, OSError) as error:
        print(f"stlsnn timeline: {args.file}: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    print(f"{'START_S':>9}  {'END_S':>9}  {'SCORE':>5}  LABEL")
    for segment in answer.get("segments", []):
        start, end = segment["start_us"] / 1e6, segment["end_us"] / 1e6
        print(f"{start:>9.3f}  {end:>9.3f}  {segment['score']:>5.3f}  {segment['label']}")
    return 0
