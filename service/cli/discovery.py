"""Which files ``stlsnn classify`` sends: named files as given, folders searched recursively.

Policy: a file named on the command line is always sent (the server says why it is refused);
inside a folder, a file is kept only when ``events.detect_format`` recognises its first bytes,
so READMEs, labels and images next to the recordings are skipped by content, not by suffix.
Hidden files and folders (names starting with ``.``) are skipped. Order is stable: arguments
in the order given, each folder's files sorted by path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from events import EventDecodeError, detect_format
from events.load import SNIFF_BYTES


@dataclass
class Discovery:
    """The files to send, the folder entries skipped as not event files, and arguments that do not exist."""

    files: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def is_event_file(path: Path) -> bool:
    """Whether the first bytes of ``path`` match a known event format."""
    try:
        with path.open("rb") as stream:
            head = stream.read(SNIFF_BYTES)
    except OSError:
        return False
    if not head:
        return False
    try:
        detect_format(head, path.name)
    except EventDecodeError:
        return False
    return True


def discover(arguments: list[str]) -> Discovery:
    """Expand files and folders into the files to classify."""
    found = Discovery()
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            for candidate in sorted(path.rglob("*")):
                relative = candidate.relative_to(path).parts
                if not candidate.is_file() or any(part.startswith(".") for part in relative):
                    continue
                (found.files if is_event_file(candidate) else found.skipped).append(candidate)
        elif path.is_file():
            found.files.append(path)
        else:
            found.missing.append(argument)
    return found
