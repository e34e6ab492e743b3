"""``input.frames`` of a classify answer (DESIGN.md section 11): the frames the model saw, compact.

Counts are sent as little-endian uint16 in base64 (a 16-step 64x64 sample is 256 KiB raw, ~340 KiB
encoded); a pixel that counted more than 65535 events in one step saturates at 65535.
"""

from __future__ import annotations

import base64

import numpy as np

UINT16_MAX = np.iinfo(np.uint16).max


def encode_frames(frames: np.ndarray) -> dict:
    """``float32 [T, 2, h, w]`` counts -> ``{"shape", "dtype": "uint16", "data": base64}``."""
    counts = np.clip(np.rint(frames), 0, UINT16_MAX).astype("<u2")
    return {"shape": list(counts.shape), "dtype": "uint16", "data": base64.b64encode(counts.tobytes()).decode("ascii")}
