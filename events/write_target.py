"""Where the spec-exact writers (AEDAT, ...) put their bytes: a path or an open binary file."""

from __future__ import annotations

import os
from collections.abc import Iterable


def write_parts(path_or_file, parts: Iterable[bytes]) -> None:
    """Write ``parts`` in order to an open binary file object or to a new file at a path."""
    if hasattr(path_or_file, "write"):
        for part in parts:
            path_or_file.write(part)
        return
    with open(os.fspath(path_or_file), "wb") as f:
        for part in parts:
            f.write(part)
