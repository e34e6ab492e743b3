"""Write a benchmark's table into its own marked section of BENCHMARKS.md (others untouched)."""

from __future__ import annotations

import datetime
import platform
import re
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"


def machine() -> str:
    import os

    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def write_section(key: str, title: str, body: str) -> None:
    """Replace (or append) the section between ``<!-- bench:key -->`` markers."""
    stamp = datetime.date.today().isoformat()
    heading = f"## {title}\n\n_Measured {stamp} on {machine()}._"
    block = f"<!-- bench:{key} -->\n{heading}\n\n{body.strip()}\n<!-- /bench:{key} -->"
    text = (
        BENCHMARKS.read_text()
        if BENCHMARKS.exists()
        else "# Benchmarks\n\nEvery figure here was produced by the script named in its section.\n"
    )
    pattern = re.compile(rf"<!-- bench:{re.escape(key)} -->.*?<!-- /bench:{re.escape(key)} -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    BENCHMARKS.write_text(text)


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
