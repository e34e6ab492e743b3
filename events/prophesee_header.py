"""The ``%`` ASCII header of Prophesee files (EVT 2.0 / 2.1 / 3.0 ``.raw`` and ``.dat``).

Layout: lines that start with ``%``, each ``% <key> <value>``, before the binary data.
OpenEB writes ``% end`` as the last line (so the data may itself start with a ``%`` byte);
older files (and every ``.dat``) have no ``% end`` and the header stops at the first line that
does not start with ``%``. A ``.dat`` header is followed by two bytes: the event type
(``0x0C`` CD, ``0x00`` 2D, ``0x0E`` external trigger) and the event size (8).

Keys used (case-insensitive): ``evt`` (``2.0``, ``2.1``, ``3.0``), ``format``
(``EVT3;height=720;width=1280``, options ``;``-separated, ``endianness=legacy`` for the legacy EVT 2.1
word order), ``geometry`` (``640x480``), ``Width`` / ``Height`` (``.dat``), ``Version`` (``.dat``:
1 or 2), ``sensor_generation`` (``3.1``, ``4.2``), ``plugin_name`` (``hal_plugin_imx636_evk4``),
``sensor_name``, and ``t0`` (a faery extension: microseconds added to every timestamp; OpenEB
ignores it). Every other key is kept in ``metadata["header"]`` and otherwise ignored.

Sensor size policy: the size the header states (``geometry``, ``format`` options, or ``.dat``
``Width``/``Height``; when two of them disagree the file is rejected) wins and every event must lie
inside it. Without a stated size it is derived from the sensor generation when the header names
one: ``sensor_generation`` 3.x, or a plugin/sensor name containing ``gen3``/``gen31`` -> 640x480
(Gen3 VGA / Gen3.1); 4.x, ``gen4``/``gen41``/``imx636``/``imx646`` -> 1280x720; ``genx320``/``imx8``
(GenX320) -> 320x320; events must then lie inside it too, ``sensor_from_header`` is True and
``metadata["sensor_source"]`` says where the size came from. Otherwise (e.g. an EVT 2.0 file
whose header names nothing known) the recording gets the smallest size that holds every event and
``sensor_from_header=False``.

Detection (``format=None``) needs ``% evt`` or ``% format`` naming the EVT version in a ``.raw``
header; a ``.dat`` is recognised by a header without them followed by a CD/2D/trigger type byte
and the size 8. A ``.raw`` whose header names no version decodes with an explicit ``format=``.

Hostile headers: a header over 1 MiB, a line without its newline at the end of the file, a
non-numeric or zero size, a size beyond what the format's coordinate fields can address,
contradicting sizes or versions, and an unknown ``evt`` version all raise ``EventDecodeError``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import BinaryIO

from events.errors import EventDecodeError

HEADER_LIMIT = 1 << 20
MAX_T0 = 1 << 62

_EVT_VERSIONS = {
    "2": "2.0",
    "2.0": "2.0",
    "2.1": "2.1",
    "21": "2.1",
    "3": "3.0",
    "3.0": "3.0",
}
_FORMAT_NAMES = {
    "evt2": "2.0",
    "evt2.0": "2.0",
    "evt21": "2.1",
    "evt2.1": "2.1",
    "evt3": "3.0",
    "evt3.0": "3.0",
}
# (pattern in a lower-cased plugin / sensor name, sensor size)
_GENERATION_NAMES = (
    ("genx320", (320, 320)),
    ("imx8", (320, 320)),
    ("imx636", (1280, 720)),
    ("imx646", (1280, 720)),
    ("gen41", (1280, 720)),
    ("gen4", (1280, 720)),
    ("gen31", (640, 480)),
    ("gen3", (640, 480)),
)
_SIZE = re.compile(r"^\s*(\d{1,9})\s*x\s*(\d{1,9})\s*$")


@dataclass
class PropheseeHeader:
    """What a ``%`` header says; ``data_offset`` is where the binary data starts."""

    data_offset: int
    lines: list[str] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)  # lower-cased key -> last value
    evt_version: str | None = None  # "2.0", "2.1", "3.0" from `% evt` / `% format`, else None
    format_options: dict[str, str] = field(default_factory=dict)
    stated_size: tuple[int, int] | None = None  # what geometry / format / Width+Height say
    size_source: str | None = None
    t0: int = 0

    def metadata(self) -> dict:
        return {"header": list(self.lines)}


def split_lines(data: bytes) -> tuple[list[tuple[int, bytes]], int, str]:
    """Cut the ``%`` lines off the front of ``data``.

    Returns ``(lines, end, state)``: ``lines`` as ``(offset, text without the newline)``, ``end`` the
    offset right after the header, and ``state`` one of ``"done"`` (a non-``%`` byte or ``% end``
    follows), ``"eof"`` (the data ended right after a complete line) or ``"partial"`` (the data ended
    inside a line).
    """
    lines: list[tuple[int, bytes]] = []
    pos = 0
    n = len(data)
    while pos < n:
        if data[pos] != 0x25:  # '%'
            return lines, pos, "done"
        nl = data.find(b"\n", pos)
        if nl < 0:
            return lines, pos, "partial"
        text = data[pos:nl]
        lines.append((pos, text))
        pos = nl + 1
        if text[1:].strip().lower() == b"end":
            return lines, pos, "done"
    return lines, pos, "eof"


def _key_value(text: bytes) -> tuple[str, str]:
    body = text[1:].decode("latin-1").strip()
    parts = body.split(None, 1)
    if not parts:
        return "", ""
    return parts[0].lower(), (parts[1].strip() if len(parts) > 1 else "")


def sniff_fields(head: bytes) -> dict[str, str] | None:
    """The header fields found in the first bytes of a file, or None if it has no ``%`` header."""
    if not head.startswith(b"%"):
        return None
    lines, _, _ = split_lines(head)
    result: dict[str, str] = {}
    for _, text in lines:
        key, value = _key_value(text)
        if key:
            result[key] = value
    return result


def sniff_evt_version(head: bytes) -> str | None:
    """The EVT version ("2.0", "2.1", "3.0") the header of ``head`` declares, if any."""
    found = sniff_fields(head)
    if not found:
        return None
    version = _EVT_VERSIONS.get(found.get("evt", "").strip().lower())
    if version is None and "format" in found:
        version = _FORMAT_NAMES.get(found["format"].split(";", 1)[0].strip().lower())
    return version


def _positive_int(fmt: str, key: str, value: str, offset: int, limit: int) -> int:
    if not re.fullmatch(r"\s*\d{1,9}\s*", value):
        raise EventDecodeError(fmt, f"header {key} {value[:40]!r} is not a whole number", offset)
    number = int(value)
    if not 1 <= number <= limit:
        raise EventDecodeError(fmt, f"header {key} {number} outside 1..{limit}", offset)
    return number


def _set_size(header: PropheseeHeader, fmt: str, size: tuple[int, int], source: str, offset: int) -> None:
    if header.stated_size is not None and header.stated_size != size:
        raise EventDecodeError(
            fmt,
            f"header {source} {size[0]}x{size[1]} contradicts {header.size_source} "
            f"{header.stated_size[0]}x{header.stated_size[1]}",
            offset,
        )
    header.stated_size = size
    header.size_source = source


def read_header(stream: BinaryIO, fmt: str, max_width: int, max_height: int) -> PropheseeHeader:
    """Parse the ``%`` header at the stream's start and leave the stream at the first data byte.

    ``max_width`` / ``max_height`` are the largest sizes the format's coordinate fields can address;
    a stated size beyond them is rejected as absurd.
    """
    start = stream.tell()
    data = stream.read(HEADER_LIMIT + 1)
    lines, end, state = split_lines(data)
    if end > HEADER_LIMIT or (state != "done" and len(data) > HEADER_LIMIT):
        raise EventDecodeError(fmt, f"header longer than {HEADER_LIMIT} bytes", start)
    if state == "partial":
        raise EventDecodeError(fmt, "header line without a newline (truncated file)", start + end)
    header = PropheseeHeader(data_offset=start + end)
    width = height = None
    for offset, text in lines:
        offset += start
        header.lines.append(text.decode("latin-1").rstrip("\r"))
        key, value = _key_value(text)
        if not key:
            continue
        header.fields[key] = value
        if key == "evt":
            version = _EVT_VERSIONS.get(value.lower())
            if version is None:
                raise EventDecodeError(fmt, f"unsupported EVT version {value[:40]!r}", offset)
            if header.evt_version not in (None, version):
                raise EventDecodeError(fmt, f"header declares EVT {version} after EVT {header.evt_version}", offset)
            header.evt_version = version
        elif key == "format":
            name, *options = [part.strip() for part in value.split(";")]
            version = _FORMAT_NAMES.get(name.lower())
            if version is not None:
                if header.evt_version not in (None, version):
                    raise EventDecodeError(fmt, f"header format {name} contradicts EVT {header.evt_version}", offset)
                header.evt_version = version
            opts = {}
            for option in options:
                if "=" in option:
                    k, v = option.split("=", 1)
                    opts[k.strip().lower()] = v.strip()
            header.format_options = opts
            if "width" in opts or "height" in opts:
                if "width" not in opts or "height" not in opts:
                    raise EventDecodeError(fmt, "header format gives only one of width and height", offset)
                size = (
                    _positive_int(fmt, "format width", opts["width"], offset, max_width),
                    _positive_int(fmt, "format height", opts["height"], offset, max_height),
                )
                _set_size(header, fmt, size, "format", offset)
        elif key == "geometry":
            match = _SIZE.match(value)
            if not match:
                raise EventDecodeError(fmt, f"header geometry {value[:40]!r} is not WIDTHxHEIGHT", offset)
            size = (
                _positive_int(fmt, "geometry width", match.group(1), offset, max_width),
                _positive_int(fmt, "geometry height", match.group(2), offset, max_height),
            )
            _set_size(header, fmt, size, "geometry", offset)
        elif key == "width":
            width = (_positive_int(fmt, "Width", value, offset, max_width), offset)
        elif key == "height":
            height = (_positive_int(fmt, "Height", value, offset, max_height), offset)
        elif key == "t0":
            if not re.fullmatch(r"\d{1,19}", value) or int(value) >= MAX_T0:
                raise EventDecodeError(fmt, f"header t0 {value[:40]!r} is not a whole number below 2**62", offset)
            header.t0 = int(value)
    if width is not None or height is not None:
        if width is None or height is None:
            raise EventDecodeError(fmt, "header gives only one of Width and Height", (width or height)[1])
        _set_size(header, fmt, (width[0], height[0]), "Width/Height", width[1])
    stream.seek(header.data_offset)
    return header


def generation_size(header: PropheseeHeader) -> tuple[tuple[int, int], str] | None:
    """The sensor size implied by the sensor generation / plugin / sensor name, if any is known."""
    generation = header.fields.get("sensor_generation", "").strip()
    if generation:
        major = generation.split(".", 1)[0]
        if major == "3":
            return (640, 480), f"sensor_generation {generation}"
        if major == "4":
            return (1280, 720), f"sensor_generation {generation}"
    for key in ("sensor_name", "plugin_name"):
        name = re.sub(r"[^a-z0-9]", "", header.fields.get(key, "").lower())
        for pattern, size in _GENERATION_NAMES:
            if pattern in name:
                return size, f"{key} {header.fields[key]}"
    return None


def sensor_for(header: PropheseeHeader) -> tuple[tuple[int, int] | None, str | None]:
    """``(size, source)``: the stated size, else the generation's, else ``(None, None)``."""
    if header.stated_size is not None:
        return header.stated_size, header.size_source
    derived = generation_size(header)
    if derived is not None:
        return derived[0], f"derived from {derived[1]}"
    return None, None


def header_bytes(lines: list[str]) -> bytes:
    """``% `` lines joined with newlines, for the writers."""
    return "".join(f"% {line}\n" for line in lines).encode("ascii")
