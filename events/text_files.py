"""CSV / whitespace-separated text event files (``t x y p`` per line, or the order a header names).

Policy (one rule per question, so a file is read one way or refused, never guessed):

- separators are commas, semicolons or whitespace; ``#`` starts a comment (whole lines or the
  end of a line); blank lines are skipped;
- columns: an optional header line (the first line that is not a comment and starts with a
  letter) names the four columns in any order: ``t``/``ts``/``timestamp``/``time``, ``x``, ``y``,
  ``p``/``pol``/``polarity``/``on`` (case-insensitive, quotes ignored). Without a header the order
  is ``t x y p``; Metavision's ``x,y,p,t`` and any other order need a header that says so;
- sensor size: faery's header gives it as ``x@WIDTH`` and ``y@HEIGHT`` (``t,x@320,y@240,on``);
  then every event must lie inside it. Without it the file has no geometry (a fallback applies);
- time unit: a unit in the timestamp's header name wins (``t_us``, ``t[ms]``, ``time(s)``, ``ts_ns``);
  otherwise a timestamp written with a decimal point in the first row means seconds (the RPG
  event-camera dataset's ``0.003811`` and faery-less exports), and integers mean microseconds.
  Times are stored as integer microseconds (rounded to the nearest);
- polarity ``1``/``true`` is ON, ``0``/``-1``/``false`` OFF; any other value is an error. Without a
  header, a fourth column holding other values is refused with a hint to add a header (that is
  what a headerless ``x,y,p,t`` file looks like), rather than read as ``t,x,y,p``;
- coordinates are integers in 0..65535.

NumPy's C parser does the work; the column count is checked on the first row before anything
is allocated for the rest (NumPy's ``loadtxt`` allocates rows x columns up front).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
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
MICROSECONDS_PER = {"s": 1e6, "ms": 1e3, "us": 1.0, "ns": 1e-3}
_COLUMN = re.compile(r"^(?P<name>[a-z]+)(?:[_\[(](?P<unit>s|ms|us|ns)[\])]?)?(?:@(?P<size>\d{1,5}))?$")
_HEADER_START = re.compile(r"^[\"']?[A-Za-z_]")
_SEPARATORS = re.compile(r"[ ,\t;]+")
_VALUE = rb"(-?[0-9][0-9.eE+-]*|[Tt]rue|[Ff]alse)"
_NUMBER_LINE = re.compile(rb"^\s*" + _VALUE + rb"([ ,\t;]+" + _VALUE + rb"){3}\s*(#.*)?$")
_MAX_T_US = 2.0**62


@dataclass
class _Header:
    """What a header line says: the column order, the time unit if named, the sensor size if given."""

    order: list[str]
    unit: str | None = None
    sensor_size: tuple[int, int] | None = None


def _sniff(head: bytes) -> bool:
    if not head.isascii() or b"\x00" in head:  # binary content: fail fast, before any line splitting
        return False
    lines = [ln for ln in head.splitlines() if ln.strip() and not ln.lstrip().startswith(b"#")]
    if lines and _HEADER_START.match(lines[0].lstrip().decode("ascii")):
        lines = lines[1:]
    complete = lines[:-1] if len(lines) > 1 else lines  # the last line may be cut by the window
    return bool(complete) and all(_NUMBER_LINE.match(ln) for ln in complete[:8])


def _parse_header(line: str) -> _Header:
    tokens = [tok.strip("\"'").lower() for tok in _SEPARATORS.split(line.strip()) if tok.strip("\"'")]
    order, unit, sizes = [], None, {}
    for token in tokens:
        match = _COLUMN.match(token)
        name = _ALIASES.get(match["name"]) if match else None
        if name is None:
            raise EventDecodeError("csv", f"header {line[:80]!r}: column {token!r} is none of t, x, y, p", 0)
        if match["unit"] and name != "t":
            raise EventDecodeError("csv", f"header {line[:80]!r}: a unit on column {token!r}, not on the time", 0)
        if match["size"] and name not in ("x", "y"):
            raise EventDecodeError("csv", f"header {line[:80]!r}: a size on column {token!r}, not on x or y", 0)
        unit = match["unit"] or unit
        if match["size"]:
            sizes[name] = int(match["size"])
        order.append(name)
    if sorted(order) != ["p", "t", "x", "y"]:
        raise EventDecodeError("csv", f"header {line[:80]!r} does not name t, x, y, p once each", 0)
    if len(sizes) == 1 or any(not 0 < size <= 65536 for size in sizes.values()):
        raise EventDecodeError("csv", f"header {line[:80]!r}: give the sensor as x@WIDTH and y@HEIGHT (1..65536)", 0)
    return _Header(order, unit, (sizes["x"], sizes["y"]) if sizes else None)


def _decode(stream: BinaryIO, limits: DecodeLimits) -> Recording:
    raw = stream.read()
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise EventDecodeError("csv", "not ASCII text", exc.start) from None
    lines = text.splitlines()
    header = None
    skip = 0
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            skip = i + 1
            continue
        if _HEADER_START.match(stripped):
            header = _parse_header(stripped.split("#", 1)[0])
            skip = i + 1
        break
    order = header.order if header else ["t", "x", "y", "p"]
    body = "\n".join(lines[skip:]).replace(",", " ").replace(";", " ")
    body = body.replace("true", "1").replace("false", "0").replace("True", "1").replace("False", "0")
    rows = (line.split("#", 1)[0].split() for line in body.split("\n"))
    first_row = next((row for row in rows if row), None)
    unit = header.unit if header and header.unit else None
    if first_row is None:
        table = np.empty((0, 4))
        decimal = False
    else:
        if len(first_row) != 4:
            raise EventDecodeError("csv", f"expected 4 columns, found {len(first_row)}")
        decimal = "." in first_row[order.index("t")]
        unit = unit or ("s" if decimal else "us")
        try:
            table = np.loadtxt(  # loadtxt allocates max_rows rows up front: never more than the lines
                io.StringIO(body),
                dtype=np.float64 if decimal or unit != "us" else np.int64,
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
    t = _microseconds(cols["t"], unit or "us")
    x, y, p = cols["x"], cols["y"], cols["p"]
    if table.dtype.kind == "f" and not (
        np.isfinite(table).all() and (x == np.rint(x)).all() and (y == np.rint(y)).all()
    ):
        raise EventDecodeError("csv", "coordinates must be integers and every value finite")
    if len(t) and (x.min() < 0 or y.min() < 0 or x.max() > 65535 or y.max() > 65535):
        raise EventDecodeError("csv", "coordinates outside 0..65535")
    if len(p) and not np.isin(p, (-1, 0, 1)).all():
        where = "the polarity column" if header else "column 4 (polarity without a header)"
        hint = "" if header else "; for another column order (e.g. x,y,p,t) add a header line naming the columns"
        raise EventDecodeError("csv", f"{where} holds values other than -1, 0, 1{hint}")
    events = make_events(t, x, y, (p > 0).astype(np.uint8))
    if header and header.sensor_size:
        width, height = header.sensor_size
        if len(events) and (events["x"].max() >= width or events["y"].max() >= height):
            raise EventDecodeError("csv", f"an event lies outside the header's {width} x {height} sensor")
        return Recording(events, header.sensor_size, "csv", sensor_from_header=True)
    return Recording(events, smallest_sensor(events), "csv", sensor_from_header=False)


def _microseconds(column: np.ndarray, unit: str) -> np.ndarray:
    """Timestamps in ``unit`` as int64 microseconds (nearest); too large to hold is a decode error."""
    if column.dtype.kind == "i" and unit == "us":
        return column.astype(np.int64)
    scaled = column * MICROSECONDS_PER[unit]
    if len(scaled) and not (np.isfinite(scaled).all() and np.abs(scaled).max() < _MAX_T_US):
        raise EventDecodeError("csv", "timestamps out of range")
    return np.rint(scaled).astype(np.int64)


def write_csv(path_or_file, events: np.ndarray, header: bool = True) -> None:
    """Write ``t,x,y,p`` rows (microseconds, 1 = ON)."""
    table = np.column_stack([events["t"], events["x"], events["y"], events["p"]]).astype(np.int64)
    np.savetxt(path_or_file, table, fmt="%d", delimiter=",", header="t,x,y,p" if header else "", comments="")


CSV = Format("csv", (".csv", ".txt"), _sniff, _decode, "text t,x,y,p (microseconds)")
