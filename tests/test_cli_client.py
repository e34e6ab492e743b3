"""The ``stlsnn`` command line and the Python client it talks to the server with.

The command line runs as a user runs it: a subprocess, its exit status and its output. Classify,
timeline and the client run against one real server for the module (``tests/service_harness``,
API keys on, PyTorch unimportable); their answers are checked against the same files posted with
plain httpx. ``inspect`` reads recordings whose content the tests write themselves.
"""

from __future__ import annotations

import binascii
import csv
import fcntl
import io
import json
import os
import pty
import shutil
import struct
import subprocess
import sys
import termios
import tomllib
import zlib
from pathlib import Path

import httpx
import numpy as np
import pytest
from service_harness import ROOT, Server, demo_repository, write_npz

from service.__main__ import parse_settings
from service.client import Client, ProblemError
from service.settings import Settings

API_KEY = "cli-test-key"
SWIPE_LEFT = ROOT / "examples" / "swipe_left.aedat4"
# the serve image: no PyTorch, and of models/ and export/ only the manifest
SERVE_IMAGE = (
    "import sys, runpy; sys.modules['torch'] = None; "  # the image's models/ is energy.py alone: torch-free
    "runpy.run_module('service.cli', run_name='__main__')"
)
SUBCOMMANDS = ("serve", "export", "train", "evaluate", "classify", "timeline", "inspect")


def stlsnn(*args: str, serve_image: bool = False) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", SERVE_IMAGE] if serve_image else [sys.executable, "-m", "service.cli"]
    return subprocess.run([*command, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repo = demo_repository(tmp_path_factory.getbasetemp() / "service-demo")
    srv = Server(repo, tmp_path_factory.mktemp("cli-log") / "server.log", without_torch=True, api_keys=API_KEY)
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def direct(server):
    """The server through plain httpx: the reference the command line's answers are checked against."""
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Three recordings in a tree, a truncated AEDAT4 file (recognised, undecodable), two files not of events."""
    root = tmp_path_factory.mktemp("recordings")
    (root / "nested" / "deeper").mkdir(parents=True)
    shutil.copy(SWIPE_LEFT, root / "a_swipe_left.aedat4")
    write_npz(root / "nested" / "b_noise.npz", 3000, seed=1)
    write_npz(root / "nested" / "deeper" / "c_noise.npz", 3000, seed=2)
    (root / "nested" / "z_truncated.aedat4").write_bytes(SWIPE_LEFT.read_bytes()[:3000])
    (root / "README.md").write_text("# recordings of the lab\n")
    (root / "nested" / "labels.json").write_text('{"a": "swipe_left"}\n')
    return root


EXPECTED_FILES = ["a_swipe_left.aedat4", "nested/b_noise.npz", "nested/deeper/c_noise.npz", "nested/z_truncated.aedat4"]


def classify_args(server, *args: str) -> list[str]:
    return ["classify", *args, "--url", server.url, "--api-key", API_KEY]


# --- help and usage: nothing starts --------------------------------------------------------------


@pytest.mark.parametrize("subcommand", SUBCOMMANDS)
def test_every_subcommand_answers_help_in_the_serve_image(subcommand):
    done = stlsnn(subcommand, "--help", serve_image=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: stlsnn {subcommand}"), done.stdout[:200]
    assert done.stderr == ""


def test_a_subcommand_that_needs_pytorch_says_so_in_the_serve_image():
    done = stlsnn("train", "--epochs", "1", serve_image=True)
    assert done.returncode == 1
    assert "needs PyTorch" in done.stderr and "Traceback" not in done.stderr


def test_the_root_help_lists_every_subcommand():
    done = stlsnn("--help", serve_image=True)
    assert done.returncode == 0
    for subcommand in SUBCOMMANDS:
        assert f"\n    {subcommand} " in done.stdout


def test_delegated_help_shows_the_module_options_where_pytorch_is_installed():
    done = stlsnn("train", "--help")
    assert done.returncode == 0
    assert "--epochs" in done.stdout and "--time-steps" in done.stdout


def test_python_m_service_help_prints_usage_and_starts_no_server():
    done = subprocess.run(
        [sys.executable, "-m", "service", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0
    assert done.stdout.startswith("usage: python -m service")


def test_serve_help_lists_every_setting_as_a_flag_with_its_variable():
    done = stlsnn("serve", "--help", serve_image=True)
    text = " ".join(done.stdout.split())  # argparse wraps long lines
    for name in Settings.model_fields:
        assert f"--{name.replace('_', '-')}" in text
        assert f"STLSNN_{name.upper()}" in text


@pytest.mark.parametrize(
    ("args", "usage"),
    [
        (["--bogus"], "usage: stlsnn"),
        (["classify", "x.raw", "--bogus"], "usage: stlsnn classify"),
        (["inspect", "--png"], "usage: stlsnn inspect"),
        (["bogus"], "usage: stlsnn"),
        (["serve", "--bogus"], "usage: stlsnn serve"),
        (["serve", "--port", "70000"], "usage: stlsnn serve"),
        ([], "usage: stlsnn"),
    ],
)
def test_an_unknown_flag_or_bad_value_is_a_usage_error(args, usage):
    done = stlsnn(*args, serve_image=True)
    assert done.returncode == 2
    assert done.stderr.startswith(usage), done.stderr[:300]
    assert done.stdout == ""


def test_serve_flags_override_environment_variables(monkeypatch):
    monkeypatch.setenv("STLSNN_MAX_BATCH_SIZE", "3")
    monkeypatch.setenv("STLSNN_BACKEND", "torchscript")
    from_env = parse_settings([])
    assert (from_env.max_batch_size, from_env.backend, from_env.nvml) == (3, "torchscript", True)
    flagged = parse_settings(["--max-batch-size", "7", "--model-repository", "/srv/models", "--no-nvml"])
    assert flagged.max_batch_size == 7
    assert flagged.model_repository == Path("/srv/models")
    assert flagged.nvml is False
    assert flagged.backend == "torchscript"


def test_the_console_script_is_declared():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"stlsnn": "service.cli.main:main"}


# --- classify -------------------------------------------------------------------------------------


def reference(direct, path: Path) -> httpx.Response:
    return direct.post("/v1/classify", files={"file": (path.name, path.read_bytes())})


def test_classify_a_folder_prints_a_table_and_fails_for_the_bad_file_only(server, direct, folder):
    done = stlsnn(*classify_args(server, str(folder)))
    assert done.returncode == 1
    assert "\x1b[" not in done.stdout and "\r" not in done.stdout + done.stderr  # a pipe gets no colour, no bar
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["FILE", "LABEL", "SCORE", "EVENTS", "DURATION", "MS"]
    rows = {Path(line.split()[0]).relative_to(folder).as_posix(): line for line in lines[1:]}
    assert sorted(rows) == EXPECTED_FILES
    for name in EXPECTED_FILES[:3]:
        expected = reference(direct, folder / name).json()
        cells = rows[name].split()
        assert cells[1] == expected["prediction"]["label"]
        assert cells[3] == str(expected["input"]["events"])
    assert rows["a_swipe_left.aedat4"].split()[1] == "swipe_left"
    failure = reference(direct, folder / "nested/z_truncated.aedat4")
    assert failure.status_code == 400
    assert f"FAILED 400  {failure.json()['detail']}" in rows["nested/z_truncated.aedat4"]
    assert "skipped 2 files that are not event recordings" in done.stderr
    assert "1 of 4 files failed" in done.stderr


def test_classify_json_csv_and_jsonl_carry_the_same_answers(server, direct, folder):
    as_json = json.loads(stlsnn(*classify_args(server, str(folder), "--json", "--top-k", "2")).stdout)
    assert [Path(item["file"]).relative_to(folder).as_posix() for item in as_json] == EXPECTED_FILES
    assert [item["ok"] for item in as_json] == [True, True, True, False]
    good = as_json[0]["result"]
    expected = reference(direct, folder / EXPECTED_FILES[0]).json()
    assert good["prediction"] == expected["prediction"]
    assert len(good["top_k"]) == 2
    assert as_json[3]["status"] == 400
    assert as_json[3]["error"] == reference(direct, folder / EXPECTED_FILES[3]).json()["detail"]

    done = stlsnn(*classify_args(server, str(folder), "--csv"))
    assert done.returncode == 1
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [row["label"] for row in rows[:3]] == [item["result"]["prediction"]["label"] for item in as_json[:3]]
    assert (rows[3]["status"], rows[3]["error"]) == ("400", as_json[3]["error"])
    assert f"{folder / EXPECTED_FILES[3]}: {as_json[3]['error']}" in done.stderr

    lines = stlsnn(*classify_args(server, str(folder), "--jsonl")).stdout.splitlines()
    assert [json.loads(line)["ok"] for line in lines] == [True, True, True, False]


def test_classify_on_a_terminal_draws_a_progress_bar_and_colours_the_failure(server, folder):
    """The same run with stdout and stderr on a pseudo-terminal, as a person sees it."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 columns, as a window has
    process = subprocess.Popen(
        [sys.executable, "-m", "service.cli", *classify_args(server, str(folder))],
        cwd=ROOT,
        stdout=follower,
        stderr=follower,
        env={k: v for k, v in os.environ.items() if k != "NO_COLOR"},
    )
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closes when the process exits
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    assert process.wait(timeout=120) == 1
    text = seen.decode()
    assert "file/s" in text or "s/file" in text  # tqdm's rate on stderr
    assert "\x1b[31mFAILED 400\x1b[0m" in text


def test_classify_named_files_are_sent_even_when_not_recordings(server, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not events at all\n")
    done = stlsnn(*classify_args(server, str(SWIPE_LEFT), str(text), "--json"))
    assert done.returncode == 1
    answer = json.loads(done.stdout)
    assert answer[0]["result"]["prediction"]["label"] == "swipe_left"
    assert answer[1]["status"] == 415


def test_classify_without_the_api_key_reports_the_server_refusal(server):
    done = stlsnn("classify", str(SWIPE_LEFT), "--url", server.url)
    assert done.returncode == 1
    assert "FAILED 401" in done.stdout and "API key" in done.stdout


def test_timeline_says_when_the_server_has_no_such_endpoint(server, direct):
    done = stlsnn("timeline", str(SWIPE_LEFT), "--url", server.url, "--api-key", API_KEY)
    if "/v1/timeline" in direct.get("/openapi.json").json()["paths"]:
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("  START_S")
    else:
        assert done.returncode == 2
        assert "has no timeline endpoint" in done.stderr


# --- inspect --------------------------------------------------------------------------------------

# t steps back three times (100 -> 50, 300 -> 250, 1000 -> 900): the largest by 100 us; the
# recording spans 0..1000 us although its last event is at 900.
INSPECTED = b"t,x@64,y@48,p\n0,2,3,1\n100,2,3,1\n50,5,1,0\n300,2,3,1\n250,40,30,1\n1000,5,1,0\n900,5,1,0\n"


def test_inspect_reports_what_the_recording_holds(tmp_path):
    path = tmp_path / "made.csv"
    path.write_bytes(INSPECTED)
    facts = json.loads(stlsnn("inspect", str(path), "--json").stdout)
    assert facts["format"] == "csv"
    assert facts["events"] == 7
    assert facts["duration_us"] == 1000
    assert facts["sensor_size"] == [64, 48] and facts["sensor_from_header"] is True
    assert facts["event_rate"] == pytest.approx(7000.0)
    assert (facts["on"], facts["off"]) == (4, 3)
    assert facts["on_fraction"] == pytest.approx(4 / 7)
    assert (facts["steps_back"], facts["largest_step_back_us"]) == (3, 100)
    text = stlsnn("inspect", str(path)).stdout
    assert "sensor      64 x 48 (from the file)" in text
    assert "time order  3 steps back (largest 100 us)" in text
    assert "ON / OFF    4 / 3 (57.1 % ON)" in text


def test_inspect_an_undecodable_file_exits_1_with_the_reason(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(b"5,6,1,100\n7,8,0,250\n")
    done = stlsnn("inspect", str(path))
    assert done.returncode == 1
    assert "add a header" in done.stderr


def read_png(data: bytes) -> np.ndarray:
    """An 8-bit RGB PNG without filters, read by the specification: every chunk's CRC checked."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    offset, chunks = 8, {}
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert binascii.crc32(kind + body) == crc, kind
        chunks[kind] = chunks.get(kind, b"") + body
        offset += 12 + length
    assert list(chunks)[-1] == b"IEND"
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert (depth, colour_type, interlace) == (8, 2, 0)
    rows = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), dtype=np.uint8).reshape(height, 1 + 3 * width)
    assert (rows[:, 0] == 0).all()
    return rows[:, 1:].reshape(height, width, 3)


def test_inspect_png_draws_on_and_off_events_in_two_colours(tmp_path):
    path = tmp_path / "made.csv"
    path.write_bytes(INSPECTED)
    out = tmp_path / "made.png"
    done = stlsnn("inspect", str(path), "--png", str(out))
    assert done.returncode == 0, done.stderr
    image = read_png(out.read_bytes())
    assert image.shape == (48, 64, 3)
    on, off, lone_on = image[3, 2].astype(int), image[1, 5].astype(int), image[30, 40].astype(int)
    assert on.argmax() != off.argmax()  # two colours
    assert 0 < lone_on.max() < on.max() and lone_on.argmax() == on.argmax()  # one ON event: the same colour, dimmer
    painted = np.zeros((48, 64), dtype=bool)
    painted[[3, 1, 30], [2, 5, 40]] = True
    assert not image[~painted].any()  # black wherever no event fell


# --- the Python client ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(server):
    with Client(server.url, api_key=API_KEY) as c:
        yield c


def test_client_lists_the_models(client, direct):
    assert client.models() == direct.get("/v1/models").json()["models"]
    assert "demo" in [model["name"] for model in client.models()]


def test_client_classifies_a_path_bytes_and_a_file_object(client, direct):
    reply = reference(direct, SWIPE_LEFT).json()
    expected, sensor = reply["prediction"], reply["input"]["sensor_size"]
    assert client.classify(SWIPE_LEFT)["prediction"] == expected
    assert client.classify(str(SWIPE_LEFT), model="demo")["prediction"] == expected
    assert client.classify(SWIPE_LEFT.read_bytes())["prediction"] == expected
    with SWIPE_LEFT.open("rb") as stream:
        answer = client.classify(stream, top_k=2, sensor_size=(sensor[0], sensor[1] + 1))
    assert len(answer["top_k"]) == 2
    assert answer["input"]["sensor_size"] == [sensor[0], sensor[1] + 1]


@pytest.mark.parametrize(
    ("call", "status", "kind", "detail"),
    [
        (lambda c: c.classify(SWIPE_LEFT, model="nope"), 404, "urn:stlsnn:problem:unknown-model", "'nope'"),
        (
            lambda c: c.classify(b"hello, these are not events"),
            415,
            "urn:stlsnn:problem:unknown-format",
            "matches none",
        ),
        (lambda c: c.classify(SWIPE_LEFT, top_k=0), 422, "urn:stlsnn:problem:invalid-parameters", "top_k"),
    ],
)
def test_client_raises_problem_error_with_the_servers_fields(client, call, status, kind, detail):
    with pytest.raises(ProblemError) as caught:
        call(client)
    assert (caught.value.status, caught.value.type) == (status, kind)
    assert detail in caught.value.detail
    assert not caught.value.no_such_route


def test_client_without_the_key_is_refused(server):
    with Client(server.url) as anonymous, pytest.raises(ProblemError) as caught:
        anonymous.models()
    assert caught.value.status == 401


def test_client_timeline_is_a_problem_until_the_server_has_the_route(client, direct):
    if "/v1/timeline" in direct.get("/openapi.json").json()["paths"]:
        assert "segments" in client.timeline(SWIPE_LEFT)
        return
    with pytest.raises(ProblemError) as caught:
        client.timeline(SWIPE_LEFT)
    assert caught.value.status == 404 and caught.value.no_such_route
