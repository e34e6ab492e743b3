"""The bundled example recordings the web page offers: which files of the examples folder count.

A file counts when it is a regular, visible file that one of our decoders reads (so
``generate.py``, notes and a truth table are skipped); that verdict is kept per file size and
modification time, so a listing decodes each file once. Its label is the gesture its name starts with
(``swipe_left.aedat4`` -> ``swipe_left``, as ``examples/generate.py`` names them). Only names in
this listing are ever served, so no request can reach a file outside the folder.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import events

MAX_EXAMPLE_BYTES = 64 << 20  # an example is for a browser upload; larger files are not offered


@dataclass(frozen=True)
class Example:
    """One servable recording: its file name, detected format, size in bytes and gesture label."""

    name: str
    format: str
    size: int
    label: str
    path: Path


def list_examples(folder: Path) -> list[Example]:
    """The event files directly in ``folder``, sorted by name; none when the folder is missing."""
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.is_symlink() or not path.is_file():
            continue
        stat = path.stat()
        format = _readable_format(path, stat.st_size, stat.st_mtime_ns)
        if format is not None:
            found.append(Example(path.name, format, stat.st_size, path.name.split(".")[0], path))
    return found


@functools.lru_cache(maxsize=256)
def _readable_format(path: Path, size: int, mtime_ns: int) -> str | None:
    """The format that decodes the whole file, or None (the size and time make a changed file a new key)."""
    if size > MAX_EXAMPLE_BYTES:
        return None
    try:
        return events.load(path).format
    except events.EventDecodeError:
        return None


def find_example(folder: Path, name: str) -> Example | None:
    """The listed example called exactly ``name``, or None."""
    return next((example for example in list_examples(folder) if example.name == name), None)
