"""``events.load`` sources: paths, bytes, seekable file objects and pipes all decode the same."""

import importlib
import os
import threading

import numpy as np
import pytest

import events
from events import packed_records
from events.evt2 import write_evt2

load_module = importlib.import_module("events.load")  # the module, not the function events.load


@pytest.fixture
def evt2_file(tmp_path):
    rng = np.random.default_rng(3)
    n = 50_000
    x, y, p = rng.integers(0, 640, n), rng.integers(0, 480, n), rng.integers(0, 2, n)
    stream = events.make_events(np.arange(n) * 3, x, y, p)
    path = tmp_path / "pipe.raw"
    write_evt2(path, stream, (640, 480))
    return path, stream


def pipe_of(data: bytes):
    """A real OS pipe (not seekable) with ``data`` written into it by a thread."""
    read_fd, write_fd = os.pipe()

    def feed():
        with os.fdopen(write_fd, "wb") as writer:
            writer.write(data)

    threading.Thread(target=feed, daemon=True).start()
    return os.fdopen(read_fd, "rb")


@pytest.mark.parametrize("spool_bytes", [16 << 20, 4096])
def test_a_pipe_decodes_like_the_file_whether_spooled_in_memory_or_on_disk(evt2_file, monkeypatch, spool_bytes):
    path, written = evt2_file
    monkeypatch.setattr(load_module, "SPOOL_BYTES", spool_bytes)
    with pipe_of(path.read_bytes()) as pipe:
        assert not pipe.seekable()
        recording = events.load(pipe)
    assert recording.format == "evt2"
    np.testing.assert_array_equal(recording.events, written)
    np.testing.assert_array_equal(events.load(path).events, written)
    with open(path, "rb") as stream:
        np.testing.assert_array_equal(events.load(stream).events, written)
    np.testing.assert_array_equal(events.load(path.read_bytes()).events, written)


def test_a_truncated_pipe_is_a_decode_error(evt2_file):
    path, _ = evt2_file
    with pipe_of(path.read_bytes()[:-3]) as pipe, pytest.raises(events.EventDecodeError, match="evt2"):
        events.load(pipe)


def test_decoder_warm_up_round_trips_a_tiny_file_of_every_compiled_format():
    packed_records._compiled_feed.cache_clear()
    seconds = events.warm_up_decoders()
    assert set(seconds) == {"aedat2", "aedat3", "aedat4", "evt3", "nmnist", "events"}
    assert all(s > 0 for s in seconds.values())
    assert packed_records._compiled_feed.cache_info().currsize == 1  # the packed stream's code is loaded too
