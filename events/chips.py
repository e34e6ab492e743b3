"""Event-camera chips named in AEDAT headers: their sensor size and jAER address layout.

AEDAT 2.0 (jAER) headers name a Java class (``eu.seebetter.ini.chips.davis.Davis346B``),
AEDAT 3.1 (cAER) headers a source description (``#Source 1: DVS128``); both are matched here
by a normalised substring so every spelling of one chip maps to one entry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Chip:
    """A sensor: its name, size, the jAER address layout it uses and the jAER class naming it."""

    name: str
    width: int
    height: int
    layout: str  # "dvs128" or "davis" (the AEDAT 2.0 address layouts)
    jaer_class: str


CHIPS = {
    "DVS128": Chip("DVS128", 128, 128, "dvs128", "ch.unizh.ini.jaer.chip.retina.DVS128"),
    "DAVIS240": Chip("DAVIS240", 240, 180, "davis", "eu.seebetter.ini.chips.davis.DAVIS240C"),
    "DAVIS346": Chip("DAVIS346", 346, 260, "davis", "eu.seebetter.ini.chips.davis.Davis346B"),
    "DAVIS640": Chip("DAVIS640", 640, 480, "davis", "eu.seebetter.ini.chips.davis.Davis640"),
    "DVXPLORERLITE": Chip("DVXPLORERLITE", 320, 240, "davis", ""),
    "DVXPLORER": Chip("DVXPLORER", 640, 480, "davis", ""),
}
_PATTERNS = (
    ("davis346", "DAVIS346"),
    ("davis240", "DAVIS240"),
    ("sbret10", "DAVIS240"),
    ("davis640", "DAVIS640"),
    ("dvxplorerlite", "DVXPLORERLITE"),
    ("dvxplorer", "DVXPLORER"),
    ("dvs128", "DVS128"),
    ("tmpdiff128", "DVS128"),
)


def chip_from_name(text: str) -> Chip | None:
    """The chip a jAER class, hardware interface or cAER source name refers to, if known."""
    normalized = re.sub(r"[^a-z0-9]", "", text.lower())
    for pattern, chip in _PATTERNS:
        if pattern in normalized:
            return CHIPS[chip]
    return None
