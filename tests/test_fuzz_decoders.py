"""Short fuzzing of every registered decoder (the long run is ``bench/fuzz.py``).

Every format in ``events.formats.FORMATS`` (decoders added later included: seeds come from each
format's own ``write_<name>`` and the samples in ``tests/data``) gets hypothesis-chosen edits of
its valid files and plain random bytes. The only allowed outcomes are a well-formed ``Recording``
or ``EventDecodeError``, through the decoder itself and through ``events.load`` with detection,
each within a time bound. For the formats ``events.StreamDecoder`` reads, the mutated files are
also fed to it cut at hypothesis-chosen points: it must give the file decoder's events and
sensor size, or reject the input too.
"""

from __future__ import annotations

import contextlib
import io
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import events
from bench.fuzz import LIMITS, check, check_stream, seeds_for
from events.errors import EventDecodeError
from events.formats import FORMATS

SECONDS_PER_INPUT = 20.0
SEEDS = {fmt.name: seeds_for(fmt) for fmt in FORMATS}
POOL = [s for seeds in SEEDS.values() for s in seeds]
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)

edits = st.lists(
    st.tuples(
        st.sampled_from(["flip", "set", "cut", "insert", "delete", "splice", "repeat"]),
        st.floats(0, 1),
        st.integers(0, 600),
        st.binary(max_size=48),
    ),
    min_size=1,
    max_size=6,
)


def apply(data: bytes, changes) -> bytes:
    buf = bytearray(data)
    for op, where, size, payload in changes:
        pos = int(where * len(buf))
        if op == "flip" and buf:
            buf[min(pos, len(buf) - 1)] ^= 1 << (size % 8)
        elif op == "set" and buf:
            buf[pos : pos + len(payload)] = payload
        elif op == "cut":
            del buf[pos:]
        elif op == "insert":
            buf[pos:pos] = payload
        elif op == "delete":
            del buf[pos : pos + size]
        elif op == "splice":
            other = POOL[size % len(POOL)]
            buf[pos:pos] = other[: len(payload) * 8]
        elif op == "repeat":
            buf += bytes(buf[-(size % 64 + 2) :]) * (len(payload) + 1)
    return bytes(buf)


def decode_all_ways(fmt, data: bytes) -> None:
    start = time.perf_counter()
    try:
        check(fmt.name, fmt.decode(io.BytesIO(data), LIMITS))
    except EventDecodeError as exc:
        assert exc.format and str(exc)
    if data:
        with contextlib.suppress(EventDecodeError):
            check("load", events.load(data, limits=LIMITS))
    assert time.perf_counter() - start < SECONDS_PER_INPUT


@pytest.fixture(scope="module", autouse=True)
def warm_up():
    for fmt in FORMATS:  # imports and compiled-code caches outside the timed examples
        for seed in SEEDS[fmt.name][:2]:
            decode_all_ways(fmt, seed)


@pytest.mark.parametrize("fmt", FORMATS, ids=[f.name for f in FORMATS])
@FUZZ
@given(data=st.data())
def test_mutated_valid_files(fmt, data):
    seed = data.draw(st.sampled_from(SEEDS[fmt.name]))
    decode_all_ways(fmt, apply(seed, data.draw(edits)))


@pytest.mark.parametrize("fmt", FORMATS, ids=[f.name for f in FORMATS])
@FUZZ
@given(blob=st.binary(max_size=4096))
def test_random_bytes(fmt, blob):
    decode_all_ways(fmt, blob)


STREAM_FORMATS = [fmt for fmt in FORMATS if fmt.name in events.STREAM_FORMATS]


@pytest.mark.parametrize("fmt", STREAM_FORMATS, ids=[f.name for f in STREAM_FORMATS])
@FUZZ
@given(data=st.data())
def test_stream_decoder_agrees_with_file_decoder_on_mutated_files(fmt, data):
    blob = apply(data.draw(st.sampled_from(SEEDS[fmt.name])), data.draw(edits))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(blob)), max_size=12)))
    try:
        whole = fmt.decode(io.BytesIO(blob), LIMITS)
    except EventDecodeError as exc:
        whole = exc
    check_stream(fmt.name, blob, cuts, whole)


def test_every_stream_format_is_fuzzed():
    assert sorted(f.name for f in STREAM_FORMATS) == sorted(events.STREAM_FORMATS)


def test_every_format_has_seeds_from_its_writer():
    for fmt in FORMATS:
        assert any(SEEDS[fmt.name]), fmt.name
