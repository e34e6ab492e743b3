"""Write a benchmark's table into its own marked section of BENCHMARKS.md (others untouched).

A run elsewhere (``bench/gpu_check.sh`` on a GPU machine) writes each section as its own file
``<key>.md`` in a folder instead; ``python -m bench.report --merge DIR`` splices those files
into BENCHMARKS.md, each replacing the section with the same key.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import re
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
BLOCK = re.compile(r"<!-- bench:(?P<key>[\w.-]+) -->.*?<!-- /bench:(?P=key) -->", re.S)


def machine() -> str:
    import os

    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def section_block(key: str, title: str, body: str, where: str | None = None) -> str:
    """The marked block for one section; ``where`` names the machine (default: this one)."""
    stamp = datetime.date.today().isoformat()
    heading = f"## {title}\n\n_Measured {stamp} on {where or machine()}._"
    return f"<!-- bench:{key} -->\n{heading}\n\n{body.strip()}\n<!-- /bench:{key} -->"


def splice(text: str, block: str) -> str:
    """``text`` with ``block``'s section replaced, or appended when it has none yet."""
    key = BLOCK.match(block)["key"]
    pattern = re.compile(rf"<!-- bench:{re.escape(key)} -->.*?<!-- /bench:{re.escape(key)} -->", re.S)
    return pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"


def _read_benchmarks() -> str:
    if BENCHMARKS.exists():
        return BENCHMARKS.read_text()
    return "# Benchmarks\n\nEvery figure here was produced by the script named in its section.\n"


def write_section(key: str, title: str, body: str, out_dir: Path | None = None, where: str | None = None) -> None:
    """Replace (or append) the section between ``<!-- bench:key -->`` markers; to ``out_dir/key.md`` if given."""
    block = section_block(key, title, body, where)
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / f"{key}.md").write_text(block + "\n")
        return
    BENCHMARKS.write_text(splice(_read_benchmarks(), block))


def merge(folder: Path) -> list[str]:
    """Splice every section file in ``folder`` into BENCHMARKS.md; returns the keys merged."""
    text, keys = _read_benchmarks(), []
    for path in sorted(Path(folder).glob("*.md")):
        match = BLOCK.fullmatch(path.read_text().strip())
        if match is None:
            continue
        text = splice(text, match.group(0))
        keys.append(match["key"])
    BENCHMARKS.write_text(text)
    return keys


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Merge section files written elsewhere into BENCHMARKS.md")
    parser.add_argument("--merge", type=Path, required=True, help="folder of <key>.md section files")
    args = parser.parse_args(argv)
    keys = merge(args.merge)
    print(f"merged {len(keys)} section(s) into {BENCHMARKS}: {', '.join(keys) or 'none'}")


if __name__ == "__main__":
    main()
