"""The status page in a real browser: headless Chromium (apt) driven by Selenium, against a running gate."""

from __future__ import annotations

import base64
import json
import logging
import queue
import shutil
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from maskipy.edge.config import load_edge_config
from maskipy.edge.runtime import EdgeRuntime
from maskipy.edge.service.sdnotify import SystemdNotifier
from maskipy.edge.sources.replay import ReplaySource

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1100,1000")
PASSWORD = "correct horse"
# The goal: a counted person reaches the page within 2 s.
PAGE_LATENCY_GOAL_S = 2.0


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """One headless Chromium for the module (about a second to start)."""
    webdriver = pytest.importorskip("selenium.webdriver")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("chromium and chromium-driver not installed (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium')}")
    # The browser's own record of each response, to read the status code of a page it shows blank.
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    chrome = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver))
    chrome.execute_cdp_cmd("Network.enable", {})
    yield chrome
    chrome.quit()


def send_password(chrome, password: str | None) -> None:
    """Make the browser send HTTP Basic credentials with every request (or none)."""
    headers = {}
    if password is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"gate:{password}".encode()).decode()
    chrome.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": headers})


class LiveCamera:
    """A camera at about 20 frames/s showing an empty corridor until a photo is ``show``-n once."""

    def __init__(self, idle: np.ndarray) -> None:
        self.idle, self.shown = idle, queue.Queue()
        self.stopped = threading.Event()

    def frames(self) -> Iterator[np.ndarray]:
        while not self.stopped.is_set():
            time.sleep(0.05)
            try:
                yield self.shown.get_nowait()
            except queue.Empty:
                yield self.idle

    def show(self, frame: np.ndarray) -> None:
        self.shown.put(frame)


@pytest.fixture
def live_gate(tmp_path, default_bundle, scene_frames):
    """``live_gate(http_lines) -> (runtime, camera, url)``: a gate running in a thread on a live camera."""
    started: list[tuple[EdgeRuntime, LiveCamera, threading.Thread]] = []

    def start(http: str) -> tuple[EdgeRuntime, LiveCamera, str]:
        config_path = tmp_path / "config.ini"
        config_path.write_text(f"[counts]\nstate_dir = {tmp_path / 'state'}\n"
                               f"[http]\nenabled = yes\nport = 0\n{http}", encoding="utf-8")
        idle = np.full_like(scene_frames[0], 90)
        camera = LiveCamera(idle)
        runtime = EdgeRuntime(load_edge_config(config_path), model=default_bundle,
                              notifier=SystemdNotifier(""),
                              source_opener=lambda: ReplaySource(camera.frames(), name="live", stills=True))
        thread = threading.Thread(target=runtime.run, daemon=True)
        thread.start()
        started.append((runtime, camera, thread))
        page = next(o for o in runtime.outputs if o.name == "http")
        return runtime, camera, page.server.url

    yield start
    for runtime, camera, thread in started:
        camera.stopped.set()
        runtime.stop()
        thread.join(timeout=30)


def response_statuses(chrome, url: str) -> list[int]:
    """Status codes of the responses to ``url`` the browser received since the last call."""
    statuses = []
    for entry in chrome.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.responseReceived" and message["params"]["response"]["url"] == url:
            statuses.append(message["params"]["response"]["status"])
    return statuses


def text_of(chrome, element_id: str) -> str | None:
    return chrome.execute_script("const e = document.getElementById(arguments[0]); return e && e.textContent",
                                 element_id)


def wait(chrome, condition, timeout: float = 15.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(chrome, timeout, poll_frequency=0.02).until(lambda _: condition())


def test_the_page_shows_counts_and_a_counted_person_within_2_s(browser, live_gate, scene_frames):
    runtime, camera, url = live_gate(f"bind = 0.0.0.0\npassword = {PASSWORD}\n")
    send_password(browser, PASSWORD)
    browser.get(url.replace("0.0.0.0", "127.0.0.1"))
    wait(browser, lambda: text_of(browser, "count-unmasked") == "0" and text_of(browser, "health") == "ok")
    assert text_of(browser, "today-total") == "0"
    assert text_of(browser, "model-sha") == runtime.bundle.sha256[:16]
    assert browser.execute_script("return document.querySelectorAll('#chart text').length") > 0

    shown = time.monotonic()
    camera.show(scene_frames[-1])  # without_mask/test2.jpg: one face
    wait(browser, lambda: text_of(browser, "today-total") != "0")
    latency = time.monotonic() - shown
    print(f"count to page: {latency:.2f} s")
    counted = dict(runtime.counts)
    assert sum(counted.values()) == 1, counted
    label = next(iter(counted))
    assert text_of(browser, f"count-{label}") == "1" and text_of(browser, "today-total") == "1"
    assert label.replace("_", " ") in text_of(browser, "recent")
    assert browser.execute_script("return document.querySelectorAll('#chart rect').length") == 1
    assert latency < PAGE_LATENCY_GOAL_S, f"the count took {latency:.2f} s to reach the page"


def test_the_preview_shows_frames(browser, live_gate):
    runtime, _, url = live_gate("preview = yes\npreview_fps = 10\n")
    send_password(browser, None)
    browser.get(url)
    width = wait(browser, lambda: browser.execute_script(
        "const img = document.getElementById('preview');"
        "return img && img.complete !== undefined && img.naturalWidth;"))
    assert 0 < width <= runtime.config.http.preview_width
    preview = next(o for o in runtime.outputs if o.name == "http").preview
    assert preview.watchers >= 1 and preview.encoded >= 1
    browser.get("about:blank")  # closes the stream; the loop stops encoding once nobody watches
    wait(browser, lambda: preview.watchers == 0)
    encoded = preview.encoded
    time.sleep(0.5)
    assert preview.encoded <= encoded + 1


def test_a_wrong_password_is_refused(browser, live_gate, caplog):
    _, _, url = live_gate(f"bind = 0.0.0.0\npassword = {PASSWORD}\n")
    url = url.replace("0.0.0.0", "127.0.0.1")
    response_statuses(browser, url)
    with caplog.at_level(logging.WARNING, logger="maskipy.edge.web.server"):
        send_password(browser, "wrong horse")
        browser.get(url)
        assert response_statuses(browser, url) == [401]
        assert text_of(browser, "today-total") is None  # headless Chromium shows nothing of the page
    assert [r.getMessage() for r in caplog.records] == ["http: wrong password from 127.0.0.1 for /"]
    send_password(browser, PASSWORD)
    browser.get(url)
    wait(browser, lambda: text_of(browser, "today-total") == "0")
    assert response_statuses(browser, url) == [200]
