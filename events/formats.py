"""The ordered list of formats ``events.load`` knows; detection tries them in this order.

Binary formats with magic bytes come first, text after them, so a header line can never be taken
for CSV; N-MNIST ``.bin`` (no header, only a plausibility sniff) comes last of all; packed records
(``events``) are never detected, only named.
"""

from __future__ import annotations

from events.aedat2 import AEDAT2
from events.aedat3 import AEDAT3
from events.aedat4 import AEDAT4
from events.evt2 import EVT2
from events.evt3 import EVT3
from events.evt21 import EVT21
from events.format import Format
from events.nmnist import NMNIST
from events.numpy_files import NPY, NPZ
from events.packed_records import EVENTS
from events.prophesee_dat import DAT
from events.text_files import CSV

FORMATS: tuple[Format, ...] = (AEDAT4, AEDAT3, AEDAT2, EVT3, EVT21, EVT2, DAT, NPZ, NPY, CSV, NMNIST, EVENTS)

BY_NAME: dict[str, Format] = {f.name: f for f in FORMATS}
