"""The page in a real headless Chromium (Debian's), driven by Playwright."""
import csv
import io
import json
import re
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect, sync_playwright

from scripts.analysis_media import write_video
from tests.support import ROOT
from tests.support.browser import DESKTOP, PHONE, launch, serve
from tests.support.images import encode
from tests.support.page_media import camera_frames, camera_video, group_photo
from tests.support.server import post_image

SCREENSHOTS = ROOT / "test-output" / "screenshots"
MAX_UPLOAD_MB = 1
MAX_IMAGES = 3
AXE = ROOT / "tests" / "vendor" / "axe-core-4.14.1" / "axe.min.js"


@pytest.fixture(scope="module")
def live():
    _, server = serve({"MAX_UPLOAD_MB": MAX_UPLOAD_MB, "MAX_IMAGES": MAX_IMAGES})
    yield server
    server.shutdown()


@pytest.fixture(scope="module")
def live_server(live):
    return f"http://127.0.0.1:{live.server_port}"


@pytest.fixture(scope="module")
def browser():
    """Chromium whose fake camera shows the astronaut for 2 s, then 2 s of a coffee cup (no face), in a loop."""
    with sync_playwright() as p, launch(p, camera_video(camera_frames(), 2)) as browser:
        yield browser


@contextmanager
def opened(browser, base_url, name, **options):
    """A new page at base_url that collects console errors in page.problems; a screenshot when done."""
    context = browser.new_context(base_url=base_url, **{**DESKTOP, **options})
    page = context.new_page()
    problems = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.problems = problems
    try:
        page.goto("/")
        yield page
    finally:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)
        context.close()


@pytest.fixture
def page(browser, live_server, request):
    with opened(browser, live_server, request.node.name) as page:
        yield page


@pytest.fixture
def phone(browser, live_server, request):
    with opened(browser, live_server, request.node.name, **PHONE) as page:
        yield page


def upload(page, name, data, mime="image/jpeg"):
    page.set_input_files("#file-input", files=[{"name": name, "mimeType": mime, "buffer": data}])


def test_page_loads_with_no_console_errors_and_a_strict_csp(page, live_server):
    expect(page.locator("h1")).to_contain_text("Facial emotion recognition")
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


def noise_png(side):
    """A PNG of random pixels (no face), side x side: about 3 * side**2 bytes."""
    return encode(np.random.default_rng(side).integers(0, 255, (side, side, 3), dtype=np.uint8), "PNG")


def test_oversized_file_is_refused_before_it_is_uploaded(page):
    big = noise_png(800)
    assert len(big) > MAX_UPLOAD_MB * 1024 * 1024
    posts = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    upload(page, "big.png", big, "image/png")
    expect(page.locator("#error")).to_contain_text(f"too large: the limit is {MAX_UPLOAD_MB} MB")
    assert posts == []


def test_non_image_file_says_it_is_not_an_image(page):
    upload(page, "notes.jpg", b"these are my notes, not a photo")
    expect(page.locator("#error")).to_contain_text("not an image")


def test_unsupported_type_is_explained_and_not_offered(page):
    # The server's list, as the page settings give it: the picker, the hint and the message all follow it.
    assert page.get_attribute("#file-input", "accept") == "image/jpeg,image/png,image/webp,image/bmp,image/gif"
    expect(page.locator("#drop-zone")).to_contain_text("JPEG, PNG, WebP, BMP or GIF, up to 1 MB each")
    tiff = encode(Image.new("RGB", (40, 40)), "TIFF")
    upload(page, "scan.tif", tiff, "image/tiff")
    expect(page.locator("#error")).to_have_text(
        "That file type is not supported. Use a JPEG, PNG, WebP, BMP or GIF image.")


def test_webcam_counts_frames_and_frames_per_second_over_the_last_answers(page):
    page.click("#tab-webcam")
    page.click("#webcam-start")
    expect(page.locator("#webcam-video")).to_be_visible()
    # A regular expression, not wait_for_function: the page's CSP (rightly) forbids eval.
    expect(page.locator("#webcam-frames")).to_have_text(re.compile(r"^([6-9]|\d{2,})$"), timeout=20000)
    shown, answers = page.evaluate("""() => [document.getElementById('webcam-fps').textContent,
        performance.getEntriesByType('resource').filter((e) => e.name.endsWith('/predict')).map((e) => e.responseEnd)]""")
    # The last answer may have arrived without being shown yet: the figure is right for one of the two.
    rates = [(len(recent) - 1) / (recent[-1] - recent[0]) * 1000 for ends in (answers, answers[:-1])
             for recent in [[t for t in ends if t > ends[-1] - 5000]]]
    assert min(abs(float(shown) - rate) / rate for rate in rates) < 0.1, (shown, rates)
    assert int(page.locator("#webcam-latency").inner_text()) > 0
    page.click("#webcam-stop")
    expect(page.locator("#webcam-start")).to_be_enabled()
    assert page.problems == []


def test_webcam_shows_bars_a_timeline_and_when_no_face_is_in_view_and_stop_clears_it(page):
    page.evaluate("""() => { window.announced = [];
        new MutationObserver(() => window.announced.push(document.getElementById('webcam-announce').textContent))
            .observe(document.getElementById('webcam-announce'), {childList: true, characterData: true, subtree: true}); }""")
    page.click("#tab-webcam")
    page.click("#webcam-start")
    started = time.monotonic()
    # The fake camera shows the astronaut for 2 s, then a coffee cup for 2 s.
    expect(page.locator("#webcam-bars [data-label='happy'] .pct")).to_have_text(re.compile(r"^\d+\.\d%$"), timeout=20000)
    expect(page.locator("#webcam-no-face")).to_be_visible(timeout=10000)
    notice, boxes, bars = page.evaluate("""() => [!document.getElementById('webcam-no-face').classList.contains('d-none'),
        document.querySelectorAll('#webcam-overlay .face-box').length, document.querySelector('#webcam-bars .pct').textContent]""")
    assert (notice, boxes, bars) == (True, 0, "-"), "a frame with no face leaves no box and no bars behind"
    _, first = saved(page, "#webcam-csv")
    expect(page.locator("#webcam-bars [data-label='happy'] .pct")).to_have_text(re.compile(r"^\d+\.\d%$"), timeout=10000)
    _, second = saved(page, "#webcam-csv")
    rows = list(csv.DictReader(io.StringIO(second.decode())))
    assert len(rows) > len(first.decode().splitlines()) - 1 and {"0", "1"} <= {row["face"] for row in rows}
    assert all(row["dominant_emotion"] == "happy" for row in rows if row["face"] == "1")
    times = [float(row["time_s"]) for row in rows]
    assert times == sorted(times) and times[-1] < time.monotonic() - started
    # The timeline is drawn: the happy line's colour is on the canvas.
    happy = page.evaluate("""() => { const c = document.getElementById('webcam-timeline');
        const hex = COLOURS[LABELS.indexOf('happy')], rgb = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
        for (let i = 0; i < d.length; i += 4) n += rgb.every((v, k) => Math.abs(d[i + k] - v) < 30);
        return n; }""")
    assert happy > 50
    # A screen reader hears the changes, not every frame: at most one every 3 s.
    announced, seconds = page.evaluate("() => window.announced"), time.monotonic() - started
    assert 2 <= len(announced) <= 1 + seconds / 3, (announced, seconds)
    assert announced[0].startswith("Face in view") or announced[0] == "No face in view"
    page.click("#webcam-stop")
    expect(page.locator("#webcam-view")).to_be_hidden()
    assert page.evaluate("() => document.getElementById('webcam-video').srcObject") is None
    expect(page.locator("#webcam-overlay > *")).to_have_count(0)
    expect(page.locator("#webcam-fps")).to_have_text("-")
    expect(page.locator("#webcam-bars .pct")).to_have_text(["-"] * 7)
    _, after = saved(page, "#webcam-csv")  # the run's timeline stays, to download
    assert len(after) >= len(second)
    assert page.problems == []


def watch_camera_and_requests(page, camera_ms=0, answer_ms=0):
    """Record in the page every camera stream it gets (window.streams; window.asked settles when the last
    one has arrived) and the most /predict requests in flight at once (window.mostInFlight); the camera
    arrives camera_ms late and each answer answer_ms late."""
    page.evaluate("""([cameraMs, answerMs]) => {
        const later = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
        const ask = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices), get = window.fetch;
        Object.assign(window, {streams: [], asked: Promise.resolve(), inFlight: 0, mostInFlight: 0});
        navigator.mediaDevices.getUserMedia = (constraints) => window.asked = ask(constraints).then(
            (stream) => { window.streams.push(stream); return later(cameraMs).then(() => stream); });
        window.fetch = async (url, options) => {
            if (!String(url).startsWith('/predict')) return get(url, options);
            window.mostInFlight = Math.max(window.mostInFlight, ++window.inFlight);
            try { const response = await get(url, options); await later(answerMs); return response; }
            finally { window.inFlight -= 1; }
        };
    }""", [camera_ms, answer_ms])


def live_tracks(page):
    """How many camera streams the page got, and how many of their tracks are still live."""
    page.evaluate("() => window.asked.then(() => new Promise((resolve) => setTimeout(resolve, 100)))")
    return page.evaluate("""() => [window.streams.length,
        window.streams.flatMap((s) => s.getTracks()).filter((t) => t.readyState !== 'ended').length]""")


def test_a_double_click_on_start_opens_one_camera_and_stop_turns_it_off(page):
    watch_camera_and_requests(page, camera_ms=300)
    page.click("#tab-webcam")
    page.dblclick("#webcam-start")
    expect(page.locator("#webcam-frames")).to_have_text(re.compile(r"^[1-9]"), timeout=20000)
    page.click("#webcam-stop")
    assert live_tracks(page) == [1, 0]
    assert page.problems == []


def test_leaving_the_tab_while_the_camera_is_asked_for_leaves_it_off(page):
    watch_camera_and_requests(page, camera_ms=500)
    page.click("#tab-webcam")
    page.click("#webcam-start")
    page.click("#tab-photo")
    assert live_tracks(page) == [1, 0]
    page.click("#tab-webcam")
    expect(page.locator("#webcam-view")).to_be_hidden()
    expect(page.locator("#webcam-start")).to_be_enabled()
    assert page.problems == []


def test_stop_and_start_while_a_frame_is_analysed_never_sends_two_frames_at_once(page):
    watch_camera_and_requests(page, answer_ms=400)
    page.click("#tab-webcam")
    page.click("#webcam-start")
    expect(page.locator("#webcam-frames")).to_have_text(re.compile(r"^[1-9]"), timeout=20000)
    page.evaluate("""() => new Promise((resolve) => { const restart = () => {
        if (!window.inFlight) return setTimeout(restart, 5);
        document.getElementById('webcam-stop').click();
        document.getElementById('webcam-start').click();
        resolve(); }; restart(); })""")
    expect(page.locator("#webcam-frames")).to_have_text(re.compile(r"^([4-9]|\d{2,})$"), timeout=20000)
    page.click("#webcam-stop")
    assert page.evaluate("() => window.mostInFlight") == 1
    _, body = saved(page, "#webcam-csv")
    times = [float(row["time_s"]) for row in csv.DictReader(io.StringIO(body.decode()))]
    assert times == sorted(times) and times[0] >= 0, times
    # Stop keeps the run's count of frames, as the CSV keeps its rows.
    expect(page.locator("#webcam-frames")).to_have_text(str(len(times)))
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
    # The hidden input is no second stop: Tab goes from the zone to the first sample.
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent") == "Astronaut"


def test_page_asks_for_the_api_token_once_and_sends_it(browser, astronaut_jpeg, request):
    url, server = serve({"API_TOKEN": "s3cret"})
    try:
        with opened(browser, url, request.node.name) as page:
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
        server.shutdown()


def markers(page):
    """The photo's and each number's box on screen, as (x, y, width, height)."""
    rect = lambda b: (b["x"], b["y"], b["width"], b["height"])  # noqa: E731
    badges = page.locator("#photo-overlay .face-badge")
    return rect(page.locator("#photo").bounding_box()), [rect(badges.nth(i).bounding_box()) for i in range(badges.count())]


def overlap(a, b):
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


@pytest.mark.parametrize("faces, columns, device", [(24, 6, PHONE), (7, 4, DESKTOP)], ids=["24-on-a-phone", "7-on-desktop"])
def test_numbers_on_a_group_photo_never_overlap_and_stay_inside_it(browser, live_server, faces, columns, device, request):
    photo = group_photo(faces, columns)
    assert len(json.loads(post_image(live_server + "/predict", photo)[1])["faces"]) == faces
    with opened(browser, live_server, request.node.name, **device) as page:
        upload(page, "group.jpg", photo)
        expect(page.locator(".face-card")).to_have_count(faces)
        expect(page.locator("#photo-overlay .face-badge:visible")).to_have_count(faces)
        assert page.evaluate("() => document.documentElement.scrollWidth") <= device["viewport"]["width"]
        (x, y, w, h), numbers = markers(page)
        for i, a in enumerate(numbers):
            assert x - 0.5 <= a[0] and a[0] + a[2] <= x + w + 0.5 and y - 0.5 <= a[1] and a[1] + a[3] <= y + h + 0.5, i
            assert not [j for j, b in enumerate(numbers[:i]) if overlap(a, b)], f"number {i + 1} covers another"
        # No "paste (Ctrl+V)" where there is no keyboard to paste with.
        expect(page.locator(".paste-hint")).to_be_visible(visible=device is DESKTOP)
        assert page.problems == []


def test_the_photo_stays_in_view_while_the_list_of_faces_scrolls(page):
    upload(page, "group.jpg", group_photo(24, 6))
    expect(page.locator(".face-card")).to_have_count(24)
    page.locator(".face-card").last.scroll_into_view_if_needed()
    assert page.evaluate("() => scrollY") > 500
    photo = page.locator("#photo").bounding_box()
    assert 0 <= photo["y"] and photo["y"] + photo["height"] <= 900


def test_each_face_has_a_thumbnail_and_folds_out_its_seven_bars(page):
    upload(page, "group.jpg", group_photo(7, 4))
    cards = page.locator(".face-card")
    expect(cards).to_have_count(7)
    # A thumbnail cut from the photo: many colours, not an empty canvas.
    colours = page.evaluate("""() => [...document.querySelectorAll('.face-thumb')].map((c) => {
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data, seen = new Set();
        for (let i = 0; i < d.length; i += 4) seen.add((d[i] >> 4) * 256 + (d[i + 1] >> 4) * 16 + (d[i + 2] >> 4));
        return seen.size; })""")
    assert len(colours) == 7 and min(colours) > 30, colours  # a blank one has 1
    expect(cards.nth(2).locator(".bar-row").first).to_be_hidden()
    cards.nth(2).locator("summary").click()
    expect(cards.nth(2).locator(".bar-row")).to_have_count(7)
    expect(cards.nth(2).locator(".bar-row").first).to_be_visible()
    page.locator("#photo-overlay .face-badge").nth(4).hover()
    expect(cards.nth(4)).to_have_class(re.compile(r"\bactive\b"))
    expect(page.locator("#photo-overlay .face-box").nth(4)).to_have_class(re.compile(r"\bactive\b"))


def saved(page, button):
    """(file name, bytes) of the download a click on `button` starts."""
    with page.expect_download() as info:
        page.click(button)
    download = info.value
    return download.suggested_filename, Path(download.path()).read_bytes()


def test_exports_hold_the_apis_answer(browser, live_server, request):
    photo = group_photo(7, 4)
    api = json.loads(post_image(live_server + "/predict", photo)[1])
    with opened(browser, live_server, request.node.name, permissions=["clipboard-read", "clipboard-write"]) as page:
        upload(page, "party.jpg", photo)
        expect(page.locator(".face-card")).to_have_count(7)
        name, body = saved(page, "#export-json")
        exported = json.loads(body)
        assert name == "party-faces.json" and exported["model"] == api["model"]
        [result] = exported["results"]
        assert set(result) == {"image_index", "file", *api} - {"model", "time_ms"} and result["image_index"] == 1
        assert result["file"] == "party.jpg" and result["faces"] == api["faces"] and result["image"] == api["image"]

        name, body = saved(page, "#export-csv")
        rows = list(csv.DictReader(io.StringIO(body.decode())))
        labels = list(api["faces"][0]["emotions"])
        assert name == "party-faces.csv" and len(rows) == 7
        assert list(rows[0]) == ["image_index", "image", "status", "face", "x", "y", "width", "height", *labels,
                                 "dominant_emotion"]
        for row, face in zip(rows, api["faces"]):
            assert (row["image_index"], row["image"], row["status"]) == ("1", "party.jpg", "ok")
            assert [int(row[k]) for k in ("x", "y", "width", "height")] == face["box"]
            assert {k: float(row[k]) for k in labels} == face["emotions"] and row["dominant_emotion"] == face["dominant_emotion"]

        name, body = saved(page, "#export-png")
        png = Image.open(io.BytesIO(body)).convert("RGB")
        assert name == "party-faces.png" and png.size == (api["image"]["width"], api["image"]["height"])
        for x, y, w, h in (face["box"] for face in api["faces"]):  # each box's left edge is drawn in yellow
            r, g, b = png.getpixel((x + 1, y + h // 2))
            assert r > 200 and 150 < g < 230 and b < 90, (x, y, (r, g, b))

        page.click("#copy-json")
        expect(page.locator("#export-status")).to_have_text("JSON copied.")
        assert json.loads(page.evaluate("() => navigator.clipboard.readText()")) == exported
        assert page.problems == []


def test_png_export_of_a_photo_just_chosen_in_the_gallery_draws_that_photo(page, astronaut_jpeg):
    files = [("one.jpg", astronaut_jpeg), ("party.jpg", group_photo(7, 4))]
    page.set_input_files("#file-input", files=[{"name": n, "mimeType": "image/jpeg", "buffer": b} for n, b in files])
    expect(page.locator("#gallery .gallery-item .state")).to_have_text(["1 face", "7 faces"])
    with page.expect_download() as info:  # the export asked for before the chosen photo is on show
        page.evaluate("""() => { document.querySelectorAll('.gallery-item')[1].click();
                                 document.getElementById('export-png').click(); }""")
    png = Image.open(info.value.path()).convert("RGB")
    assert info.value.suggested_filename == "party-faces.png" and png.size == (440, 220)
    assert len(png.getcolors(440 * 220)) > 1000, "the photo is drawn, not only its boxes"


def test_png_export_the_browser_cannot_make_says_so_and_saves_nothing(page, astronaut_jpeg):
    upload(page, "astronaut.jpg", astronaut_jpeg)
    expect(page.locator(".face-card")).to_have_count(1)
    page.evaluate("() => { HTMLCanvasElement.prototype.toBlob = function (callback) { callback(null); }; }")
    downloads = []
    page.on("download", lambda d: downloads.append(d))
    page.click("#export-png")
    expect(page.locator("#export-status")).to_have_text("The browser could not make the image; try again.")
    assert downloads == []


def test_several_files_make_a_gallery_in_as_few_requests_as_the_limits_allow(page, live, astronaut_jpeg, no_face_jpeg):
    files = [("astronaut.jpg", astronaut_jpeg), ("coffee.jpg", no_face_jpeg), ("party.jpg", group_photo(7, 4)),
             ("=notes.jpg", b"not a photo"), ("astronaut.jpg", astronaut_jpeg)]
    live.images.clear()
    page.set_input_files("#file-input", files=[{"name": n, "mimeType": "image/jpeg", "buffer": b} for n, b in files])
    states = page.locator("#gallery .gallery-item .state")
    expect(states).to_have_text(["1 face", "0 faces", "7 faces", "not analysed", "1 face"])
    # MAX_IMAGES (3) per request; the second request fails for =notes.jpg and is sent again file by file.
    assert live.images == [3, 2, 1, 1]
    page.locator("#gallery .gallery-item").nth(2).click()
    expect(page.locator("#photo-overlay .face-box")).to_have_count(7)
    name, body = saved(page, "#export-json")
    results = json.loads(body)["results"]
    assert name == "photos-faces.json"
    assert [(r["image_index"], r["file"]) for r in results] == [
        (1, "astronaut.jpg"), (2, "coffee.jpg"), (3, "party.jpg"), (5, "astronaut.jpg")]
    # Answers from a request of several (the first) and of one (the last) have the same shape: no model
    # or request time of their own.
    assert sorted(results[3]) == sorted(results[0]) and all({"model", "time_ms"}.isdisjoint(r) for r in results)
    # Every photo has a row in the CSV, the refused one under a name a spreadsheet will not run.
    _, body = saved(page, "#export-csv")
    rows = [(r["image_index"], r["image"], r["status"], r["face"]) for r in csv.DictReader(io.StringIO(body.decode()))]
    page.locator("#gallery .gallery-item").nth(3).click()
    expect(page.locator("#error")).to_contain_text("not an image")
    expect(page.locator("#result")).to_be_hidden()
    assert rows == [("1", "astronaut.jpg", "ok", "1"), ("2", "coffee.jpg", "no face", ""),
                    *[("3", "party.jpg", "ok", str(i)) for i in range(1, 8)],
                    ("4", "'=notes.jpg", page.locator("#error").inner_text(), ""), ("5", "astronaut.jpg", "ok", "1")]


def test_csv_fields_a_spreadsheet_would_run_as_a_formula_start_with_an_apostrophe(page):
    line = page.evaluate("""() => csvLine(['=SUM(A1)', '+1', '-2', '@x', '\\tTab', '\\rCR', 'a=b', '', -0.5, 3])""")
    assert line == "'=SUM(A1),'+1,'-2,'@x,'\tTab,\"'\rCR\",a=b,,-0.5,3\r\n"


def test_files_that_fill_the_upload_limit_together_go_in_separate_requests(page):
    half = noise_png(480)
    assert 0.5 * MAX_UPLOAD_MB * 1024 * 1024 < len(half) < MAX_UPLOAD_MB * 1024 * 1024
    posts = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.set_input_files("#file-input", files=[{"name": f"{i}.png", "mimeType": "image/png", "buffer": half} for i in "ab"])
    expect(page.locator("#gallery .gallery-item .state")).to_have_text(["0 faces", "0 faces"])
    assert len(posts) == 2


def test_files_dropped_on_the_zone_are_analysed_and_beside_it_are_ignored(page, astronaut_jpeg):
    # A drop the page does not cancel makes the browser leave the page to show the file.
    cancelled = page.evaluate("""() => ['dragover', 'drop'].map((type) => {
        const dataTransfer = new DataTransfer();
        dataTransfer.items.add(new File(['x'], 'a.jpg', {type: 'image/jpeg'}));
        return !document.querySelector('h1').dispatchEvent(new DragEvent(type, {dataTransfer, bubbles: true, cancelable: true}));
    })""")
    assert cancelled == [True, True]
    page.evaluate("""(bytes) => {
        const dataTransfer = new DataTransfer();
        for (const name of ['one.jpg', 'two.jpg']) {
            dataTransfer.items.add(new File([new Uint8Array(bytes)], name, {type: 'image/jpeg'}));
        }
        const drop = new DragEvent('drop', {dataTransfer, bubbles: true, cancelable: true});
        document.getElementById('drop-zone').dispatchEvent(drop);
    }""", list(astronaut_jpeg))
    expect(page.locator("#gallery .gallery-item .state")).to_have_text(["1 face", "1 face"])


def test_dark_mode_follows_the_system_setting(browser, live_server, request):
    with opened(browser, live_server, request.node.name, color_scheme="dark") as page:
        assert page.get_attribute("html", "data-bs-theme") == "dark"
        page.emulate_media(color_scheme="light")
        expect(page.locator("html")).to_have_attribute("data-bs-theme", "light")


def axe_violations(page):
    """axe-core's violations of any impact on the page as it is, as 'rule: targets' lines."""
    # Served from the page's own origin, so that its Content-Security-Policy (script-src 'self') allows it.
    page.route("**/axe.min.js", lambda route: route.fulfill(path=AXE, content_type="text/javascript"))
    page.add_script_tag(url="/axe.min.js")
    found = page.evaluate("() => axe.run(document, {resultTypes: ['violations']}).then((r) => r.violations)")
    return [f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']]}" for v in found]


def start_page(page):
    expect(page.locator("#drop-zone")).to_be_visible()


def a_result(page):
    page.get_by_role("button", name="Astronaut").click()
    expect(page.locator(".face-card")).to_have_count(1)


def the_no_face_state(page):
    page.get_by_role("button", name="Coffee (no face)").click()
    expect(page.locator("#no-face")).to_be_visible()


def a_gallery(page):
    page.set_input_files("#file-input", files=[{"name": n, "mimeType": "image/jpeg", "buffer": group_photo(7, 4)}
                                               for n in ("a.jpg", "b.jpg")])
    expect(page.locator("#gallery .gallery-item .state")).to_have_text(["7 faces", "7 faces"])
    expect(page.locator(".face-card")).to_have_count(7)


def the_webcam(page):
    page.click("#tab-webcam")
    page.click("#webcam-start")
    expect(page.locator("#webcam-bars .pct").first).not_to_have_text("-", timeout=20000)


@pytest.mark.parametrize("state, scheme", [(start_page, "light"), (a_result, "light"), (the_no_face_state, "light"),
                                           (a_gallery, "light"), (the_webcam, "light"), (a_result, "dark"),
                                           (the_webcam, "dark")], ids=lambda v: getattr(v, "__name__", v))
def test_axe_finds_no_violation(browser, live_server, state, scheme, request):
    with opened(browser, live_server, request.node.name, color_scheme=scheme) as page:
        state(page)
        assert axe_violations(page) == []
        assert page.problems == []


def test_video_tab_draws_each_faces_timeline_as_the_api_answers(page, live_server, tmp_path):
    clip = write_video(tmp_path / "two-faces.mp4", seconds=2.0, fps=10, faces=2).read_bytes()
    status, body = post_image(live_server + "/predict/video", clip, "video/mp4", timeout=60)
    expected = json.loads(body)
    assert status == 200 and len(expected["tracks"]) >= 1  # the clip's faces are found, so the page has work
    page.click("#tab-video")
    page.set_input_files("#video-input", files=[{"name": "two-faces.mp4", "mimeType": "video/mp4", "buffer": clip}])
    expect(page.locator("#video-result")).to_be_visible(timeout=60_000)
    cards = page.locator("#video-tracks .track-card")
    expect(cards).to_have_count(len(expected["tracks"]))
    for card, track in zip(cards.all(), expected["tracks"]):
        assert f"mostly {track['dominant_emotion']}" in card.inner_text()
        drawn = card.locator("canvas").evaluate(
            "c => c.getContext('2d').getImageData(0, 0, c.width, c.height).data.some((v, i) => i % 4 === 3 && v > 0)")
        assert drawn, "the timeline canvas is empty"
    count = len(expected["tracks"])
    assert f"{count} face{'s' if count > 1 else ''} followed" in page.inner_text("#video-summary")
    assert not page.problems


def test_video_tab_explains_a_file_that_is_not_a_video(page):
    page.click("#tab-video")
    page.set_input_files("#video-input", files=[{"name": "notes.mp4", "mimeType": "video/mp4", "buffer": b"not a video"}])
    expect(page.locator("#video-error")).to_be_visible(timeout=30_000)
    assert "FFmpeg" in page.inner_text("#video-error") and page.locator("#video-result").is_hidden()
