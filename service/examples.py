"""The bundled example recordings the web page offers: which files of the examples folder count.

A file counts when it is a regular, visible file whose content one of our decoders recognises
(so ``generate.py`` and notes are skipped). Its label is the gesture its name starts with
(``swipe_left.aedat4`` -> ``swipe_left``, as ``examples/generate.py`` names them). Only names in
this listing are ever served, so no request can reach a file outside the folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import events
from events.load import SNIFF_BYTES


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
        with path.open("rb") as fh:
            head = fh.read(SNIFF_BYTES)
        try:
            format = events.detect_format(head, path.name).name
        except events.EventDecodeError:
            continue
        found.append(Example(path.name, format, path.stat().st_size, path.name.split(".")[0], path))
    return found


def find_example(folder: Path, name: str) -> Example | None:
    """The listed example called exactly ``name``, or None."""
    return next((example for example in list_examples(folder) if example.name == name), None)
