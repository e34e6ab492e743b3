"""CSV / whitespace-separated text event files (``t x y p`` per line).

Policy: separators are commas or whitespace; lines starting with ``#`` are comments; one
optional header line names the columns (``t``/``timestamp``, ``x``, ``y``, ``p``/``polarity``/
``on``) in any order, else the order is ``t x y p``. Integer timestamps are microseconds; a
timestamp column written with a decimal point is seconds (the RPG event-camera dataset's
convention) and is converted to microseconds. Polarity ``1``/``true`` is ON, ``0``/``-1``/``false``
OFF. NumPy's C parser does the work; no geometry is stored, so the sensor size is a fallback.
"""

from __future__ import annotations

import io
import re
from typing import BinaryIO

import numpy as np

from events.errors import EventDecodeError, LimitExceededError
from events.format import DecodeLimits, Format
from events.recording import Recording, make_events, smallest_sensor

_ALIASES = {
    "t": "t",
    "ts": "t",
    "timestamp": "t",
    "time": "t",
    "x": "x",
    "y": "y",
    "p": "p",
    "pol": "p",
    "polarity": "p",
    "on": "p",
}
_NUMBER_LINE = re.compile(rb"^\s*-?[0-9][0-9.eE+-]*([ ,\t;]+-?[0-9][0-9.eE+-]*){3}\s*$")


def _sniff(head: bytes) -> bool:
    if not head.isascii() or b"\x00" in head:  # binary content: fail fast, before any line splitting
        return False
    lines = [ln for ln in head.splitlines() if ln.strip() and not ln.lstrip().startswith(b"#")]
    if lines and re.match(rb"^\s*[A-Za-z]", lines[0]):
        lines = lines[1:]
    complete = lines[:-1] if len(lines) > 1 else lines  # the last line may be cut by the window
    return bool(complete) and all(_NUMBER_LINE.match(ln) for ln in complete[:8])


def _decode(stream: BinaryIO, limits: DecodeLimits) -> Recording:
    raw = stream.read()
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise EventDecodeError("csv", "not ASCII text", exc.start) from None
    lines = text.splitlines()
    order = ["t", "x", "y", "p"]
    skip = 0
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            skip = i + 1
            continue
        if re.match(r"^[A-Za-z_]", stripped):
            names = [_ALIASES.get(tok.lower()) for tok in re.split(r"[ ,\t;]+", stripped)]
            if sorted(n for n in names if n) != ["p", "t", "x", "y"] or len(names) != 4:
                raise EventDecodeError("csv", f"header {stripped[:80]!r} does not name t, x, y, p", 0)
            order = names
            skip = i + 1
        break
    body = "\n".join(lines[skip:]).replace(",", " ").replace(";", " ")
    body = body.replace("true", "1").replace("false", "0").replace("True", "1").replace("False", "0")
    rows = (line.split("#", 1)[0].split() for line in body.split("\n"))
    first_row = next((row for row in rows if row), None)
    if first_row is None:
        table = np.empty((0, 4))
        seconds = False
    else:
        if len(first_row) != 4:
            raise EventDecodeError("csv", f"expected 4 columns, found {len(first_row)}")
        seconds = "." in first_row[order.index("t")]
        try:
            table = np.loadtxt(  # loadtxt allocates max_rows rows up front: never more than the lines
                io.StringIO(body),
                dtype=np.float64 if seconds else np.int64,
                comments="#",
                ndmin=2,
                max_rows=min(limits.max_events + 1, len(lines) - skip),
            )
        except ValueError as exc:
            raise EventDecodeError("csv", f"unparseable row ({exc})") from None
    if table.shape[0] > limits.max_events:
        raise LimitExceededError("csv", f"more than {limits.max_events} events")
    if table.shape[1] != 4:
        raise EventDecodeError("csv", f"expected 4 columns, found {table.shape[1]}")
    cols = {name: table[:, i] for i, name in enumerate(order)}
    t = np.rint(cols["t"] * 1e6).astype(np.int64) if seconds else cols["t"].astype(np.int64)
    x, y = cols["x"], cols["y"]
    if len(t) and (x.min() < 0 or y.min() < 0 or x.max() > 65535 or y.max() > 65535):
        raise EventDecodeError("csv", "coordinates outside 0..65535")
    events = make_events(t, x, y, (cols["p"] > 0).astype(np.uint8))
    return Recording(events, smallest_sensor(events), "csv", sensor_from_header=False)


def write_csv(path_or_file, events: np.ndarray, header: bool = True) -> None:
    """Write ``t,x,y,p`` rows (microseconds, 1 = ON)."""
    table = np.column_stack([events["t"], events["x"], events["y"], events["p"]]).astype(np.int64)
    np.savetxt(path_or_file, table, fmt="%d", delimiter=",", header="t,x,y,p" if header else "", comments="")


CSV = Format("csv", (".csv", ".txt"), _sniff, _decode, "text t,x,y,p (microseconds)")
