"""The page in a real headless Chromium (Debian's), driven by Playwright."""
import json
import re
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect, sync_playwright
from werkzeug.serving import make_server

from app import create_app
from tests.support import ROOT
from tests.support.images import encode
from tests.support.server import free_port, post_image

SCREENSHOTS = ROOT / "test-output" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
MAX_UPLOAD_MB = 1


def serve(config):
    """Run the app in a background thread; returns (base URL, server)."""
    server = make_server("127.0.0.1", free_port(), create_app(config), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}", server


@pytest.fixture(scope="module")
def live_server():
    url, server = serve({"MAX_UPLOAD_MB": MAX_UPLOAD_MB})
    yield url
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/test.sh installs Debian's chromium package")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server, request):
    context = browser.new_context(base_url=live_server, viewport={"width": 1200, "height": 900})
    page = context.new_page()
    problems = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.problems = problems
    page.goto("/")
    yield page
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{request.node.name}.png", full_page=True)
    context.close()


def upload(page, name, data, mime="image/jpeg"):
    page.set_input_files("#file-input", files=[{"name": name, "mimeType": mime, "buffer": data}])


def test_page_loads_with_no_console_errors_and_a_strict_csp(page, live_server):
    expect(page.locator("h1, .navbar-brand")).to_contain_text("Facial emotion recognition")
    response = page.request.get(live_server + "/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert page.evaluate("typeof jQuery") == "function"
    page.wait_for_load_state("networkidle")  # every script and stylesheet has run or failed
    assert page.problems == []


def test_photo_with_one_face_shows_one_box_and_bars_matching_the_api(page, live_server, astronaut_jpeg):
    upload(page, "astronaut.jpg", astronaut_jpeg)
    expect(page.locator("#photo-overlay .face-box")).to_have_count(1)
    card = page.locator(".face-card")
    expect(card).to_have_count(1)
    rows = card.locator(".bar-row")
    expect(rows).to_have_count(7)
    status, body = post_image(live_server + "/predict", astronaut_jpeg)
    face = json.loads(body)["faces"][0]
    shown = {rows.nth(i).get_attribute("data-label"): rows.nth(i).locator(".pct").inner_text() for i in range(7)}
    assert list(shown) == list(face["emotions"])
    assert shown == {k: f"{100 * v:.1f}%" for k, v in face["emotions"].items()}
    # The box sits where the API put it, in the displayed image's coordinates.
    img, box = page.locator("#photo").bounding_box(), page.locator(".face-box").bounding_box()
    scale = img["width"] / 512
    assert abs(box["x"] - img["x"] - face["box"][0] * scale) < 3
    assert page.problems == []


def test_overlay_stays_aligned_when_the_window_is_resized(page, astronaut_jpeg):
    upload(page, "astronaut.jpg", astronaut_jpeg)
    expect(page.locator(".face-box")).to_have_count(1)
    page.set_viewport_size({"width": 420, "height": 800})
    img, box = page.locator("#photo").bounding_box(), page.locator(".face-box").bounding_box()
    relative = (box["x"] - img["x"]) / img["width"]
    assert 0.25 < relative < 0.45 and box["width"] < img["width"] / 3


def test_pointing_at_a_face_card_highlights_its_box_and_the_other_way_round(page, astronaut_jpeg):
    upload(page, "astronaut.jpg", astronaut_jpeg)
    page.locator(".face-card").hover()
    expect(page.locator(".face-box")).to_have_class("face-box active")
    page.mouse.move(0, 0)
    expect(page.locator(".face-box")).to_have_class("face-box")
    page.locator(".face-box").focus()
    expect(page.locator(".face-card")).to_have_class("face-card active")


def test_photo_without_a_face_offers_the_whole_image(page, no_face_jpeg):
    upload(page, "coffee.jpg", no_face_jpeg)
    expect(page.locator("#no-face")).to_be_visible()
    expect(page.locator(".face-card")).to_have_count(0)
    page.click("#classify-whole")
    expect(page.locator(".face-card")).to_have_count(1)
    expect(page.locator("#no-face")).to_be_hidden()


def test_sample_button_loads_and_analyses_a_sample(page):
    page.get_by_role("button", name="Astronaut").click()
    expect(page.locator(".face-card")).to_have_count(1)


def test_oversized_file_shows_the_size_limit(page):
    noise = np.random.default_rng(0).integers(0, 255, (800, 800, 3), dtype=np.uint8)
    big = encode(noise, "PNG")
    assert len(big) > MAX_UPLOAD_MB * 1024 * 1024
    upload(page, "big.png", big, "image/png")
    expect(page.locator("#error")).to_contain_text(f"too large: the limit is {MAX_UPLOAD_MB} MB")


def test_non_image_file_says_it_is_not_an_image(page):
    upload(page, "notes.jpg", b"these are my notes, not a photo")
    expect(page.locator("#error")).to_contain_text("not an image")


def test_unsupported_type_is_explained(page):
    tiff = encode(Image.new("RGB", (40, 40)), "TIFF")
    upload(page, "scan.tif", tiff, "image/tiff")
    expect(page.locator("#error")).to_contain_text("file type is not supported")


def test_webcam_mode_makes_round_trips_and_counts_frames(page):
    page.click("#tab-webcam")
    page.click("#webcam-start")
    expect(page.locator("#webcam-video")).to_be_visible()
    # A regular expression, not wait_for_function: the page's CSP (rightly) forbids eval.
    expect(page.locator("#webcam-frames")).to_have_text(re.compile(r"^([3-9]|\d{2,})$"), timeout=20000)
    assert float(page.locator("#webcam-fps").inner_text()) > 0
    assert int(page.locator("#webcam-latency").inner_text()) > 0
    page.click("#webcam-stop")
    expect(page.locator("#webcam-start")).to_be_enabled()
    assert page.problems == []


def test_denied_camera_is_explained(page):
    page.evaluate("""() => { navigator.mediaDevices.getUserMedia = () =>
        Promise.reject(new DOMException("denied", "NotAllowedError")); }""")
    page.click("#tab-webcam")
    page.click("#webcam-start")
    expect(page.locator("#webcam-error")).to_contain_text("Camera access was denied")


def test_upload_works_from_the_keyboard(page):
    # Count clicks on the hidden file input instead of waiting for Chromium's file chooser,
    # whose headless event proved unreliable; preventDefault keeps the chooser closed.
    page.evaluate("""() => { window.inputClicks = 0;
        document.getElementById('file-input').addEventListener('click', (e) => {
            window.inputClicks += 1; e.preventDefault(); }); }""")
    page.locator("#drop-zone").focus()
    page.keyboard.press("Enter")
    page.keyboard.press(" ")
    assert page.evaluate("() => window.inputClicks") == 2


def test_page_asks_for_the_api_token_once_and_sends_it(browser, astronaut_jpeg):
    url, server = serve({"API_TOKEN": "s3cret"})
    context = browser.new_context(base_url=url)
    page = context.new_page()
    try:
        page.goto("/")
        expect(page.locator("#token-box")).to_be_visible()
        page.fill("#token-input", "wrong")
        page.click("#token-form button")
        upload(page, "astronaut.jpg", astronaut_jpeg)
        expect(page.locator("#error")).to_contain_text("valid API token")
        expect(page.locator("#token-box")).to_be_visible()
        page.fill("#token-input", "s3cret")
        page.click("#token-form button")
        expect(page.locator(".face-card")).to_have_count(1)
        page.reload()
        expect(page.locator("#token-box")).to_be_hidden()
    finally:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOTS / "test_page_asks_for_the_api_token.png", full_page=True)
        context.close()
        server.shutdown()
