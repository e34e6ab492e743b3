"""What a decoder module provides: a name, how to recognise its content, and how to decode it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from events.recording import Recording


@dataclass(frozen=True)
class DecodeLimits:
    """Caps that keep a hostile file from costing unbounded memory or time.

    ``max_events`` bounds the output; ``max_decompressed_bytes`` and ``max_compression_ratio``
    are checked before a compressed block is inflated.
    """

    max_events: int = 100_000_000
    max_decompressed_bytes: int = 4 << 30
    max_compression_ratio: float = 2000.0


@dataclass(frozen=True)
class Format:
    """One file format: ``sniff`` sees the first bytes of the content, ``decode`` reads it all.

    ``decode`` gets a seekable binary stream positioned at offset 0 and must raise only
    ``EventDecodeError`` for malformed input.
    """

    name: str
    extensions: tuple[str, ...]
    sniff: Callable[[bytes], bool]
    decode: Callable[[BinaryIO, DecodeLimits], Recording]
    description: str = ""
