"""The web page in a real headless browser (Debian's chromium, driven by Playwright) while a clip plays.

One run of the demo clip at its own speed: the day's page follows the
visitors as they come (server-sent events), the set-up page draws a new
counting line with the mouse and saves it (the YAML keeps its comments and
the next visitors count by it), a zone that crosses itself is refused with
the config loader's message, the page's figures equal the report's, and the
page loads nothing from anywhere but the analyzer. Screenshots of both pages
go to ``$FOOTFALL_SCREENSHOTS`` (``make screenshots``: docs/images).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from analyzer.config import load_config
from analyzer.errors import ConfigError
from analyzer.pipeline.detect import FaceDetector
from analyzer.tools.demo import demo_clip
from tests.harness import free_port, wait_for

sync_api = pytest.importorskip("playwright.sync_api", reason="the browser tests need playwright (the dev extra)")
CHROMIUM = os.environ.get("FOOTFALL_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium here (Debian: apt-get install chromium; .ci/run does)"),
]

SITE = """\
# Front door of the demo shop
cameras:
  - id: door            # the entrance camera
    source: {clip}
    realtime: true      # at the clip's own 15 fps, like a camera
    line:               # left to right is 'in'
      start: [0.5, 1.0]
      end: [0.5, 0.0]
      hysteresis: 0.02  # kept by the page
web:
  port: {port}          # the page under test
"""


def _json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _answers(url: str) -> bool:
    try:
        _json(url)
    except OSError:
        return False
    return True


def _drag(page: sync_api.Page, start: tuple[float, float], end: tuple[float, float]) -> None:
    """Press at ``start``, move in steps, release at ``end`` (fractions of the picture)."""
    box = page.locator("#overlay").bounding_box()
    assert box is not None

    def at(point: tuple[float, float]) -> tuple[float, float]:
        return box["x"] + point[0] * box["width"], box["y"] + point[1] * box["height"]

    page.mouse.move(*at(start))
    page.mouse.down()
    page.mouse.move(*at(end), steps=12)
    page.mouse.up()


def _click_corners(page: sync_api.Page, corners: list[tuple[float, float]]) -> None:
    box = page.locator("#overlay").bounding_box()
    assert box is not None
    for x, y in corners:
        page.mouse.click(box["x"] + x * box["width"], box["y"] + y * box["height"])


def _counts(page: sync_api.Page, selector: str, key: str, value: str) -> dict[str, int]:
    """``data-<key>: data-<value>`` of the elements ``selector`` finds, zeros left out."""
    counts = {}
    for element in page.locator(selector).all():
        count = int(element.get_attribute(f"data-{value}") or 0)
        if count:
            counts[element.get_attribute(f"data-{key}") or ""] = count
    return counts


def _page_figures(page: sync_api.Page) -> dict[str, object]:
    """What the day's page shows: visitors, the gender split, in/out and age groups, read from the page itself."""
    return {
        "visitors": int(page.locator("#visitors").text_content() or -1),
        "by_gender": _counts(page, "#gender li", "gender", "count"),
        "by_direction": _counts(page, "#directions [data-direction]", "direction", "count"),
        "age_bars": _counts(page, "#ages g.bar", "label", "value"),
    }


def _shows_visitors(page: sync_api.Page) -> bool:
    return (page.locator("#visitors").text_content() or "").isdigit() and int(
        page.locator("#visitors").text_content()
    ) > 0


def _loader_message(tmp_path: Path, polygon: list[list[float]]) -> str:
    """What the config loader says of this zone, written by hand."""
    by_hand = tmp_path / "by-hand.yaml"
    by_hand.write_text(
        "cameras:\n  - id: door\n    source: door.mp4\n    zones:\n"
        f"      - name: zone1\n        polygon: {json.dumps(polygon)}\n"
    )
    try:
        load_config(by_hand)
    except ConfigError as error:
        return str(error).replace(str(by_hand), "FILE")
    raise AssertionError("the loader took a zone that crosses itself")


def _face_in_still(base: str) -> tuple[int, bool]:
    """Faces our detector finds in a still taken while the run had a face in view."""
    wait_for(lambda: _json(f"{base}api/today")["health"]["door"]["faces_in_view"] > 0, 30, "a face in view")
    with urllib.request.urlopen(f"{base}api/cameras/door/still.jpg", timeout=30) as response:
        still = cv2.imdecode(np.frombuffer(response.read(), np.uint8), cv2.IMREAD_COLOR)
    detector = FaceDetector("full_range", min_score=0.5)
    try:
        found = detector.detect(cv2.cvtColor(still, cv2.COLOR_BGR2RGB), 1)
    finally:
        detector.close()
    return len(found), _json(f"{base}api/today")["health"]["door"]["faces_in_view"] > 0


def test_the_page_follows_a_run_and_a_line_drawn_with_the_mouse_counts_the_next_visitors(tmp_path: Path) -> None:
    port, clip = free_port(), demo_clip()
    config, report = tmp_path / "site.yaml", tmp_path / "report.json"
    config.write_text(SITE.format(clip=clip, port=port))
    base = f"http://127.0.0.1:{port}/"
    shots = Path(os.environ.get("FOOTFALL_SCREENSHOTS") or tmp_path)
    command = [sys.executable, "-m", "analyzer", "run", "-c", str(config), "--report", str(report)]
    command += ["--metrics-port", "0", "--zmq-bind", "", "--hold-metrics", "300"]
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    requested: list[str] = []
    complaints: list[str] = []
    try:
        wait_for(lambda: _answers(f"{base}api/today"), 120, "the page to answer")
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            context = browser.new_context(viewport={"width": 1360, "height": 1000})
            context.on("request", lambda request: requested.append(request.url))
            # the page's own policy (nothing from elsewhere, no inline code) is enforced: a breach is an error here
            context.on("console", lambda message: complaints.append(message.text) if message.type == "error" else None)
            today = context.new_page()
            today.goto(base)
            # visitors come in while the page stays open: pushed, not reloaded
            wait_for(lambda: _shows_visitors(today), 60, "the first visitor on the open page")
            assert today.locator("#live").text_content() == "live"

            setup = context.new_page()
            setup.goto(f"{base}setup")
            setup.wait_for_selector("#frame[data-ready='true']", timeout=30_000)
            faces, in_view = _face_in_still(base)
            assert faces == 0 and in_view  # a face was in view, and the still shows none

            # the line drawn top to bottom: crossing it left to right is now 'out'
            setup.click("[data-tool='line']")
            _drag(setup, (0.5, 0.05), (0.5, 0.95))
            setup.click("[data-testid='save']")
            setup.wait_for_selector(".message.ok", timeout=10_000)
            saved_at = time.time()
            text = config.read_text()
            line = yaml.safe_load(text)["cameras"][0]["line"]
            assert np.allclose(line["start"], [0.5, 0.05], atol=0.01) and np.allclose(
                line["end"], [0.5, 0.95], atol=0.01
            )
            for comment in ("# Front door of the demo shop", "# the entrance camera", "# left to right is 'in'"):
                assert comment in text
            assert line["hysteresis"] == 0.02

            # a zone whose corners go round in a bow tie: refused with the loader's words, the file untouched
            bow_tie = [(0.1, 0.1), (0.4, 0.4), (0.4, 0.1), (0.1, 0.4)]
            setup.click("[data-tool='zone']")
            _click_corners(setup, [*bow_tie, bow_tie[0]])
            setup.click("[data-testid='save']")
            setup.wait_for_selector(".message.error", timeout=10_000)
            shown_error = setup.locator("#message").text_content() or ""
            drawn = yaml.safe_load(config.read_text())["cameras"][0].get("zones")
            assert drawn is None and config.read_text() == text
            assert shown_error.replace(str(config), "FILE") == _loader_message(tmp_path, [list(p) for p in bow_tie])
            assert "its outline crosses itself" in shown_error
            setup.click("#revert")

            # a zone and a mask, drawn and saved: both in the file, the line kept
            setup.fill("#zone-name", "shelves")
            setup.click("[data-tool='zone']")
            _click_corners(setup, [(0.62, 0.15), (0.95, 0.15), (0.95, 0.85), (0.62, 0.85), (0.62, 0.15)])
            setup.click("[data-tool='mask']")
            _click_corners(setup, [(0.02, 0.02), (0.2, 0.02), (0.2, 0.12), (0.02, 0.02)])
            setup.click("[data-testid='save']")
            setup.wait_for_selector(".message.ok", timeout=10_000)
            door = yaml.safe_load(config.read_text())["cameras"][0]
            assert [zone["name"] for zone in door["zones"]] == ["shelves"] and len(door["zones"][0]["polygon"]) == 4
            assert len(door["masks"]) == 1 and len(door["masks"][0]) == 3 and door["line"] == line
            assert "# the entrance camera" in config.read_text()
            figures = setup.locator("#figures").text_content() or ""
            assert "px median" in figures and "crossed in / out" in figures  # check's figures of the last minutes

            wait_for(lambda: _json(f"{base}api/today")["health"]["door"]["state"] == "ended", 60, "the clip's end")
            today.wait_for_timeout(1500)  # the last visit's event
            shown = _page_figures(today)
            today.bring_to_front()
            today.screenshot(path=str(shots / "web-today.png"), full_page=True)
            setup.bring_to_front()
            setup.click("#refresh-figures")
            setup.wait_for_timeout(500)
            setup.screenshot(path=str(shots / "web-setup.png"), full_page=True)
            browser.close()
    finally:
        run.send_signal(signal.SIGTERM)
        _, stderr = run.communicate(timeout=60)
    assert run.returncode == 0, stderr
    assert "set-up changed by local from 127.0.0.1" in stderr  # who and what, in the log

    reported = json.loads(report.read_text())["cameras"]["door"]
    totals = reported["totals"]
    assert shown["visitors"] == totals["visitors"] >= 5
    assert shown["by_gender"] == totals["by_gender"]
    assert shown["age_bars"] == totals["by_age_group"]
    assert shown["by_direction"] == {way: totals["by_direction"].get(way, 0) for way in ("in", "out")}
    before = [visit["direction"] for visit in reported["visits"] if visit["end"] < saved_at - 1]
    after = [visit["direction"] for visit in reported["visits"] if visit["start"] > saved_at + 0.5]
    assert before and set(before) == {"in"}, reported["visits"]
    assert after and set(after) == {"out"}, reported["visits"]
    refused = "the server responded with a status of 400 (Bad Request)"  # the bow tie's save, and only that
    assert [complaint for complaint in complaints if refused not in complaint] == [] and len(complaints) == 1
    elsewhere = [url for url in requested if not url.startswith((base, "blob:", "data:"))]
    assert requested and not elsewhere
