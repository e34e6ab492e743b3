"""Event-camera files in, count frames out. Imports nothing else of this project.

Public API: ``load``, ``Recording``, ``EventDecodeError``, ``EVENT_DTYPE``, ``FramingSpec``,
``frame_events``, ``frame_and_report``, ``NoiseReport``, ``remove_noise``, ``frame_windows``,
``Windows``, ``resolve_sensor_size``, ``warm_up_decoders``, ``StreamDecoder`` (incremental
decoding of a live byte stream) and ``write_events`` (packed records, the ``events`` format).
"""

from events.denoise import NoiseReport, remove_noise
from events.errors import EventDecodeError, LimitExceededError, UnknownFormatError
from events.format import DecodeLimits
from events.formats import BY_NAME as FORMATS
from events.framing import FramingSpec, frame_and_report, frame_events
from events.load import detect_format, load
from events.packed_records import write_events
from events.recording import EVENT_DTYPE, Recording, make_events, resolve_sensor_size
from events.stream_decoder import STREAM_FORMATS, StreamDecoder
from events.warm_up import warm_up_decoders
from events.windows import Windows, frame_windows

__all__ = [
    "EVENT_DTYPE",
    "FORMATS",
    "STREAM_FORMATS",
    "DecodeLimits",
    "EventDecodeError",
    "FramingSpec",
    "LimitExceededError",
    "NoiseReport",
    "Recording",
    "StreamDecoder",
    "UnknownFormatError",
    "Windows",
    "detect_format",
    "frame_and_report",
    "frame_events",
    "frame_windows",
    "load",
    "make_events",
    "remove_noise",
    "resolve_sensor_size",
    "warm_up_decoders",
    "write_events",
]
