"""The one exception every decoder raises for malformed input."""

from __future__ import annotations


class EventDecodeError(ValueError):
    """A file could not be decoded: says which format, where (byte offset) and what is wrong.

    Subclasses ``ValueError`` so callers that only know "bad input" still catch it.
    ``status`` lets the service map an error to its HTTP status without string matching:
    400 for a broken file, 413 for a file over a limit, 415 for an unknown format.
    """

    def __init__(self, format: str, problem: str, offset: int | None = None, *, status: int = 400):
        self.format = format
        self.problem = problem
        self.offset = offset
        self.status = status
        where = f" at byte {offset}" if offset is not None else ""
        super().__init__(f"{format}: {problem}{where}")


class UnknownFormatError(EventDecodeError):
    """No decoder recognises the content (and no explicit format was given)."""

    def __init__(self, problem: str):
        super().__init__("unknown", problem, 0, status=415)


class LimitExceededError(EventDecodeError):
    """The input is well-formed but larger than the caller allows (events, bytes, ratio)."""

    def __init__(self, format: str, problem: str, offset: int | None = None):
        super().__init__(format, problem, offset, status=413)
