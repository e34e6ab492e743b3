"""The web page (DESIGN.md section 11) in a real Chromium driven by Playwright, against a real server.

Chromium is the system's (Debian's ``chromium``; ``.ci/run`` installs it); where none is installed
these tests skip and install nothing. Every test checks that no request left the server's origin
and that the page logged no console error (other than the browser's own line for a refused
request the test provoked). Screenshots go to ``test-artifacts/`` (git-ignored).
"""

from __future__ import annotations

import base64
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest
from service_harness import ROOT, Server, demo_repository

CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser") if shutil.which(name)), None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no system Chromium (apt-get install chromium); the browser tests need one"
)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements/dev.txt)")

ARTIFACTS = ROOT / "test-artifacts"
# what the page lists: every event file of examples/ (the long recording too, not its truth CSV)
EXAMPLES = sorted(p for p in (ROOT / "examples").iterdir() if p.is_file() and p.suffix not in (".py", ".csv"))
GESTURES = [p for p in EXAMPLES if not p.name.startswith("long_sequence.")]  # one gesture each
MAX_UPLOAD = 400_000
KEY = "page-test-key"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 812}


@dataclass
class PageLog:
    """What one page did: every request URL, its console errors, and the refusals a test expects."""

    origin: str
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    headers: dict[str, dict] = field(default_factory=dict)

    def assert_clean(self, expected_statuses: tuple[int, ...] = ()) -> None:
        outside = [url for url in self.requests if not url.startswith(self.origin + "/")]
        assert not outside, f"requests left the origin: {outside}"
        allowed = tuple(
            f"Failed to load resource: the server responded with a status of {s} " for s in expected_statuses
        )
        unexpected = [e for e in self.errors if not e.startswith(allowed)]
        assert not unexpected, unexpected


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    return demo_repository(tmp_path_factory.getbasetemp() / "service-demo")


def start(repo: Path, log: Path, **settings) -> Server:
    server = Server(repo, log, without_torch=True, max_upload_bytes=MAX_UPLOAD, **settings)
    server.wait_ready()
    return server


@pytest.fixture(scope="module")
def server(repo, tmp_path_factory):
    srv = start(repo, tmp_path_factory.mktemp("page-log") / "server.log")
    yield srv
    assert srv.stop() == 0


@pytest.fixture(scope="module")
def keyed_server(repo, tmp_path_factory):
    srv = start(repo, tmp_path_factory.mktemp("page-keyed-log") / "server.log", api_keys=KEY)
    yield srv
    assert srv.stop() == 0


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        chromium.close()


@pytest.fixture
def open_page(browser):
    """``open_page(server, viewport)`` -> (page, log), the page loaded and its traffic recorded."""
    contexts = []

    def opener(srv: Server, viewport: dict = DESKTOP, ready: bool = True):
        context = browser.new_context(viewport=viewport)
        contexts.append(context)
        page = context.new_page()
        log = PageLog(srv.url)
        page.on(
            "request",
            lambda request: (log.requests.append(request.url), log.headers.update({request.url: request.headers})),
        )
        page.on("console", lambda message: message.type == "error" and log.errors.append(message.text))
        page.on("pageerror", lambda error: log.errors.append(f"uncaught: {error}"))
        page.goto(srv.url + "/")
        if ready:
            wait_ready(page)
        return page, log

    yield opener
    for context in contexts:
        context.close()


def wait_ready(page) -> None:
    """Models and examples are listed: the page can classify."""
    sync_api.expect(page.locator("#status")).to_have_text("Ready: choose a recording.")


def classify_upload(page, path: Path) -> None:
    page.set_input_files("#file", str(path))
    sync_api.expect(page.locator("#status")).to_have_text(f"{path.name}: {gesture(path)}", timeout=30_000)


def gesture(path: Path) -> str:
    """The gesture an example holds: its name before the first dot (examples/generate.py)."""
    return path.name.split(".")[0]


def served_frames(server: Server, path: Path) -> np.ndarray:
    """The counts ``include=frames`` returns for ``path`` (checked against events.frame_events elsewhere)."""
    answer = httpx.post(
        server.url + "/v1/models/demo/classify",
        files={"file": (path.name, path.read_bytes())},
        data={"include": "frames"},
    ).json()["input"]["frames"]
    return np.frombuffer(base64.b64decode(answer["data"]), dtype="<u2").reshape(answer["shape"])


def assert_canvas_shows(page, frame: np.ndarray) -> None:
    """ON-only pixels are orange (red over blue), OFF-only blue (blue over red), empty ones the background."""
    off, on = frame[0], frame[1]
    rgba = page.locator("#frames").evaluate(
        "c => Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)"
    )
    red, blue = np.array(rgba).reshape(*on.shape, 4)[..., 0], np.array(rgba).reshape(*on.shape, 4)[..., 2]
    on_only, off_only, empty = (on > 0) & (off == 0), (off > 0) & (on == 0), (on == 0) & (off == 0)
    assert on_only.any() and off_only.any()
    assert (red[on_only] > blue[on_only]).all()
    assert (blue[off_only] > red[off_only]).all()
    assert (red[empty] == 17).all() and (blue[empty] == 17).all()


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def test_page_loads_models_and_examples_in_keyboard_order(server, open_page):
    page, log = open_page(server)
    expect = sync_api.expect
    expect(page.locator("#model")).to_have_value("demo")
    expect(page.locator("#examples button")).to_have_count(len(EXAMPLES))
    names = page.locator("#examples button").evaluate_all("buttons => buttons.map(b => b.dataset.name)")
    assert names == [p.name for p in EXAMPLES]

    order = []
    for _ in range(5):
        page.keyboard.press("Tab")
        order.append(page.evaluate("document.activeElement.id || document.activeElement.dataset.name"))
    assert order == ["api-key", None, "model", "file", EXAMPLES[0].name]
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"
    for control in ("api-key", "model", "file"):
        assert page.locator(f"label[for={control}]").count() == 1
    assert not any(url.endswith("/timeline") for url in log.requests)
    log.assert_clean()


def test_each_example_through_the_file_input_shows_its_gesture(server, open_page, repo):
    page, log = open_page(server)
    expect = sync_api.expect
    time_steps = httpx.get(server.url + "/v1/models/demo").json()["time_steps"]
    for path in GESTURES:
        classify_upload(page, path)
        expect(page.locator("#prediction-label")).to_contain_text(gesture(path) + " (")
        expect(page.locator("#topk svg rect")).to_have_count(5)
        lit = page.evaluate(
            "(() => { const c = document.getElementById('frames');"
            " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            " let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] > 17 || d[i + 2] > 17) n++; return n; })()"
        )
        assert lit > 0, f"{path.name}: the frame shows no event"
        if path.name == "swipe_left.aedat4":
            screenshot(page, "web-desktop-swipe_left.png")
    expect(page.locator("#raster-note")).to_be_hidden()  # the demo is exported with per-step outputs
    expect(page.locator("#raster svg rect").first).to_be_visible()
    assert page.locator("#frames").evaluate("c => [c.width, c.height]") == [64, 64]  # the demo frames at 64x64

    page.locator("#frames").focus()
    page.keyboard.press("ArrowRight")
    expect(page.locator("#play")).to_have_attribute("aria-pressed", "false")
    first = int(page.locator("#step").text_content().split()[1])
    page.keyboard.press("ArrowRight")
    expect(page.locator("#step")).to_have_text(f"step {first % time_steps + 1} of {time_steps}")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    step = (first - 2) % time_steps
    expect(page.locator("#step")).to_have_text(f"step {step + 1} of {time_steps}")
    assert_canvas_shows(page, served_frames(server, GESTURES[-1])[step])

    assumptions = page.locator("#assumptions li")
    expect(assumptions.first).to_be_hidden()
    page.locator("#energy-figure summary").click()
    expect(assumptions.first).to_be_visible()
    assert assumptions.count() >= 1
    log.assert_clean()


@pytest.mark.parametrize(
    ("name", "content", "status"),
    [("notes.bin", b"\x00\x01 not an event file \xff" * 50, 415), ("huge.npz", b"\x00" * (MAX_UPLOAD + 1), 413)],
)
def test_a_refused_upload_shows_the_problem_detail(server, open_page, tmp_path, name, content, status):
    answer = httpx.post(server.url + "/v1/models/demo/classify", files={"file": (name, content)})
    assert answer.status_code == status
    page, log = open_page(server)
    (tmp_path / name).write_bytes(content)
    page.set_input_files("#file", str(tmp_path / name))
    sync_api.expect(page.locator("#problem-detail")).to_have_text(answer.json()["detail"])
    sync_api.expect(page.locator("#problem")).to_be_visible()
    log.assert_clean(expected_statuses=(status,))


def test_a_file_dropped_on_the_drop_zone_is_classified(server, open_page):
    page, log = open_page(server)
    path = ROOT / "examples" / "approach.aedat"
    transfer = page.evaluate_handle(
        "([bytes, name]) => { const t = new DataTransfer(); t.items.add(new File([new Uint8Array(bytes)], name));"
        " return t; }",
        [list(path.read_bytes()), path.name],
    )
    page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})
    sync_api.expect(page.locator("#status")).to_have_text("approach.aedat: approach", timeout=30_000)
    log.assert_clean()


def test_phone_width_has_no_sideways_scroll(server, open_page):
    page, log = open_page(server, PHONE)
    classify_upload(page, ROOT / "examples" / "swipe_left.aedat4")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "web-phone-swipe_left.png")
    log.assert_clean()


def test_api_key_from_the_field_unlocks_the_page_and_stays_in_the_session(keyed_server, open_page):
    page, log = open_page(keyed_server, ready=False)
    expect = sync_api.expect
    refused = httpx.get(keyed_server.url + "/v1/models").json()["detail"]
    expect(page.locator("#problem-detail")).to_have_text(refused)
    expect(page.locator("#api-key")).to_be_focused()
    page.keyboard.type(KEY)
    page.keyboard.press("Enter")
    wait_ready(page)
    page.locator("#examples button[data-name='swipe_left.aedat4']").click()
    expect(page.locator("#status")).to_have_text("swipe_left.aedat4: swipe_left", timeout=30_000)
    assert page.evaluate("sessionStorage.getItem('stlsnn.apiKey')") == KEY
    assert page.evaluate("localStorage.length") == 0
    api_calls = [url for url in log.requests if "/v1/" in url]
    assert api_calls and all(log.headers[url].get("authorization") == f"Bearer {KEY}" for url in api_calls[-3:])
    log.assert_clean(expected_statuses=(401,))


def test_timeline_strip_draws_design_section_10_answer_where_the_endpoint_exists(server, open_page):
    """The endpoint is not served yet: the page's own /openapi.json and timeline answers are stubbed."""
    answer = {
        "model": {"name": "demo", "version": 1},
        "input": {"format": "aedat4", "events": 1, "duration_us": 3_000_000, "sensor_size": [128, 128]},
        "windows": [
            {"start_us": 1_000_000, "end_us": 2_000_000, "events": 900, "state": "classified"},
            {"start_us": 2_000_000, "end_us": 3_000_000, "events": 5, "state": "idle"},
            {"start_us": 3_000_000, "end_us": 4_000_000, "events": 800, "state": "classified"},
        ],
        "segments": [
            {"start_us": 1_000_000, "end_us": 2_000_000, "label": "swipe_left", "score": 0.5, "windows": 1},
            {"start_us": 3_000_000, "end_us": 4_000_000, "label": "approach", "score": 0.25, "windows": 1},
        ],
    }
    page, log = open_page(server)
    spec = httpx.get(server.url + "/openapi.json").json()
    spec["paths"]["/v1/models/{name}/timeline"] = {"post": {}}
    page.route("**/openapi.json", lambda route: route.fulfill(json=spec))
    page.route("**/v1/models/demo/timeline", lambda route: route.fulfill(json=answer))
    page.reload()
    wait_ready(page)
    classify_upload(page, ROOT / "examples" / "swipe_left.aedat4")
    sync_api.expect(page.locator("#timeline-figure")).to_be_visible()
    items = page.locator("#timeline-list li")
    sync_api.expect(items).to_have_text(
        ["0.00-1.00 s: swipe_left (0.5, 1 windows)", "2.00-3.00 s: approach (0.25, 1 windows)"]
    )
    widths = page.locator("#timeline svg rect").evaluate_all("rs => rs.map(r => Number(r.getAttribute('width')))")
    assert widths == [640, pytest.approx(640 / 3), pytest.approx(640 / 3)]
    log.assert_clean()


def test_raster_shades_each_layer_and_step_by_spikes_per_neuron(server, open_page):
    """Per-step counts (``spikes.layers[i].steps``, the lead's contract) are added to the real answer in the
    page: layer i fires half its neurons at step i and a quarter at step i + 1 (lif4: 12 of 50); the busiest
    cell is darkest."""
    page, log = open_page(server)
    page.add_init_script(ADD_STEPS)
    page.reload()
    wait_ready(page)
    classify_upload(page, ROOT / "examples" / "swipe_left.aedat4")
    sync_api.expect(page.locator("#raster-note")).to_be_hidden()
    fills = page.locator("#raster svg rect").evaluate_all("rs => rs.map(r => r.getAttribute('fill'))")
    layers = page.locator("#raster svg text").all_text_contents()[:-1]
    assert layers == ["lif1", "lif2", "lif3", "lif4"]
    expected = []
    quarter = ["rgb(128,128,168)"] * 3 + ["rgb(133,133,173)"]  # 0.25 and 0.24 of the top 0.5
    for row in range(4):
        shades = {row: "rgb(0,0,40)", row + 1: quarter[row]}
        expected += [shades.get(step, "rgb(255,255,255)") for step in range(8)]
    assert fills == expected
    log.assert_clean()


ADD_STEPS = """
const realFetch = window.fetch;
window.fetch = async (...args) => {
  const response = await realFetch(...args);
  if (!String(args[0]).endsWith("/classify") || !response.ok) return response;
  const body = await response.json();
  body.spikes.layers.forEach((layer, i) => {
    layer.steps = new Array(body.input.time_steps).fill(0);
    layer.steps[i] = layer.neurons / 2;
    layer.steps[i + 1] = Math.floor(layer.neurons / 4);
  });
  return new Response(JSON.stringify(body), { status: 200, headers: { "content-type": "application/json" } });
};
"""
