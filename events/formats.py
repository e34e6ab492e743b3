"""The ordered list of formats ``events.load`` knows; detection tries them in this order.

Binary formats with magic bytes come first, text last, so a header line can never be taken
for CSV.
"""

from __future__ import annotations

from events.aedat2 import AEDAT2
from events.aedat3 import AEDAT3
from events.aedat4 import AEDAT4
from events.format import Format
from events.numpy_files import NPY, NPZ
from events.text_files import CSV

FORMATS: tuple[Format, ...] = (AEDAT4, AEDAT3, AEDAT2, NPZ, NPY, CSV)

BY_NAME: dict[str, Format] = {f.name: f for f in FORMATS}
