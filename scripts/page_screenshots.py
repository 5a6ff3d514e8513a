"""The README's pictures of the page: a desktop result, a phone result and the webcam view.

    python -m scripts.page_screenshots docs/    # writes page-desktop.png, page-phone.png, page-webcam.png

Runs the app on a free local port and Debian's Chromium (/usr/bin/chromium) through Playwright, on
the test's made photos and fake camera (tests/support/page_media.py), so that no one's face is published.
"""
import argparse
import io
import re
from pathlib import Path

from PIL import Image
from playwright.sync_api import expect, sync_playwright

from tests.support.browser import DESKTOP, PHONE, launch, serve
from tests.support.page_media import camera_frames, camera_video, group_photo
from tests.support.server import one_face_photo


def save_small(png, path):
    """Write a screenshot as a palette PNG (a third of the bytes, the difference hard to see)."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    image.quantize(256, method=Image.Quantize.FASTOCTREE).save(path, optimize=True)
    print(f"{path}: {image.width}x{image.height}, {path.stat().st_size / 1024:.0f} KB")


def photo_result(page, faces, columns):
    """A gallery of a group photo and the astronaut, the group shown with its first face unfolded."""
    page.set_input_files("#file-input", files=[
        {"name": "group.jpg", "mimeType": "image/jpeg", "buffer": group_photo(faces, columns, 150)},
        {"name": "astronaut.jpg", "mimeType": "image/jpeg", "buffer": one_face_photo()}])
    expect(page.locator(".face-card")).to_have_count(faces)
    page.locator(".face-card summary").first.click()
    page.locator("#gallery").scroll_into_view_if_needed()
    page.evaluate("() => window.scrollBy(0, document.getElementById('gallery').getBoundingClientRect().top - 12)")
    page.mouse.move(0, 0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for the three PNGs")
    args = parser.parse_args()
    url, server = serve()
    with sync_playwright() as p, launch(p, camera_video(camera_frames(), 4)) as browser:
        desktop = browser.new_page(base_url=url, **DESKTOP)
        desktop.goto("/")
        photo_result(desktop, 7, 4)
        save_small(desktop.screenshot(), args.out / "page-desktop.png")

        phone = browser.new_page(base_url=url, **PHONE)
        phone.goto("/")
        photo_result(phone, 12, 4)
        save_small(phone.screenshot(), args.out / "page-phone.png")

        desktop.click("#tab-webcam")
        desktop.click("#webcam-start")
        expect(desktop.locator("#webcam-frames")).to_have_text(re.compile(r"^([6-9]\d|\d{3,})$"), timeout=60000)
        expect(desktop.locator("#webcam-bars [data-label='happy'] .pct")).to_have_text(re.compile(r"%$"), timeout=20000)
        desktop.evaluate("() => window.scrollTo(0, 0)")
        save_small(desktop.screenshot(full_page=True), args.out / "page-webcam.png")
    server.shutdown()


if __name__ == "__main__":
    main()
