"""Read the few flatbuffer tables AEDAT 4 uses, with every offset bounds-checked.

Why our own and not the ``flatbuffers`` runtime: AEDAT 4 files are untrusted uploads, and the
generic Python runtime follows offsets without checking them (a crafted offset reads past the
buffer or loops); the parts we need are four primitives (root, vtable field, vector, string),
so each read here checks ``0 <= position`` and ``position + size <= len(buffer)`` and raises
``EventDecodeError`` with the file offset of the bad field.
"""

from __future__ import annotations

import struct

from events.errors import EventDecodeError

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_I64 = struct.Struct("<q")


class FlatBuffer:
    """A flatbuffer in ``data`` (bytes-like) that starts at byte ``file_offset`` of the file."""

    def __init__(self, data, format: str, file_offset: int = 0):
        self.data = memoryview(data).cast("B")
        self.format = format
        self.file_offset = file_offset

    def fail(self, problem: str, position: int) -> EventDecodeError:
        return EventDecodeError(self.format, f"flatbuffer: {problem}", self.file_offset + max(position, 0))

    def check(self, position: int, size: int, what: str) -> None:
        if position < 0 or size < 0 or position + size > len(self.data):
            problem = f"{what} at {position} (+{size} bytes) lies outside the {len(self.data)}-byte buffer"
            raise self.fail(problem, position)

    def _read(self, fmt: struct.Struct, position: int, what: str) -> int:
        self.check(position, fmt.size, what)
        return fmt.unpack_from(self.data, position)[0]

    def root(self, identifier: bytes | None = None) -> int:
        """Position of the root table, after checking the 4-byte file identifier if one is given."""
        if identifier is not None:
            self.check(4, 4, "file identifier")
            if bytes(self.data[4:8]) != identifier:
                raise self.fail(f"identifier {bytes(self.data[4:8])!r}, expected {identifier!r}", 4)
        return self._read(_U32, 0, "root offset")

    def field(self, table: int, index: int) -> int | None:
        """Position of field ``index`` of the table at ``table``, or None when the field is absent."""
        vtable = table - self._read(_I32, table, "table")
        vtable_size = self._read(_U16, vtable, "vtable size")
        table_size = self._read(_U16, vtable + 2, "vtable table size")
        if vtable_size < 4 or vtable_size % 2:
            raise self.fail(f"vtable size {vtable_size}", vtable)
        self.check(vtable, vtable_size, "vtable")
        self.check(table, table_size, "table")
        slot = 4 + 2 * index
        if slot + 2 > vtable_size:
            return None
        offset = self._read(_U16, vtable + slot, "vtable entry")
        if offset == 0:
            return None
        if offset < 4 or offset >= table_size:
            raise self.fail(f"field {index} offset {offset} outside its {table_size}-byte table", vtable + slot)
        return table + offset

    def scalar(self, table: int, index: int, fmt: str, default: int) -> int:
        """A scalar field (``fmt`` a struct code such as ``'<i'``), or its schema default."""
        position = self.field(table, index)
        return default if position is None else self._read(struct.Struct(fmt), position, f"field {index}")

    def vector(self, table: int, index: int, element_size: int) -> tuple[int, int]:
        """``(position of the first element, element count)`` of a vector field; (0, 0) if absent."""
        position = self.field(table, index)
        if position is None:
            return 0, 0
        start = position + self._read(_U32, position, "vector offset")
        count = self._read(_U32, start, "vector length")
        self.check(start + 4, count * element_size, "vector elements")
        return start + 4, count

    def string(self, table: int, index: int) -> bytes | None:
        """The bytes of a string field (without its terminating NUL), or None if absent."""
        start, count = self.vector(table, index, 1)
        return None if count == 0 and start == 0 else bytes(self.data[start : start + count])
