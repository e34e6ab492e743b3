"""What the command line may draw: colours and progress bars only on a terminal, plain text for pipes.

Colour also honours ``NO_COLOR`` (https://no-color.org). The progress bar goes to stderr and is
drawn only when stdout and stderr are both terminals, so ``stlsnn classify ... > out.csv`` and
``| jq`` see only the results.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

RED = "\033[31m"
RESET = "\033[0m"


def interactive(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (stdout by default) is a terminal."""
    stream = stream or sys.stdout
    return hasattr(stream, "isatty") and stream.isatty()


def colour(text: str, code: str, stream: TextIO | None = None) -> str:
    """``text`` in colour ``code`` on a terminal without ``NO_COLOR``; unchanged otherwise."""
    if not interactive(stream) or os.environ.get("NO_COLOR"):
        return text
    return f"{code}{text}{RESET}"


def show_progress(total: int) -> bool:
    """A bar is worth drawing for more than one file, and only where a person watches."""
    return total > 1 and interactive(sys.stdout) and interactive(sys.stderr)
