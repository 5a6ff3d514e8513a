"""The app on a free local port and Debian's Chromium with a fake camera: for the browser tests and the
README's pictures of the page (scripts/page_screenshots.py)."""
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

import flask
from werkzeug.serving import make_server

from app import create_app
from tests.support.server import free_port

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
# Page options for browser.new_page or new_context: a desktop window and a phone.
DESKTOP = {"viewport": {"width": 1200, "height": 900}}
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}


def serve(config=None):
    """Run the app in a background thread; returns (base URL, server). server.images lists how many
    images each POST /predict carried."""
    app = create_app(config)
    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    server.images = []

    @app.before_request
    def count_images():
        if flask.request.path == "/predict":
            server.images.append(len(flask.request.files.getlist("image")) or 1)

    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}", server


@contextmanager
def launch(playwright, camera=None):
    """Headless Chromium whose camera plays `camera` (Y4M bytes; Chromium's own test pattern if None)."""
    if not Path(CHROMIUM).exists():
        raise FileNotFoundError(f"{CHROMIUM} is missing: scripts/test.sh installs Debian's chromium package")
    with tempfile.TemporaryDirectory() as scratch:
        args = list(FLAGS)
        if camera is not None:
            video = Path(scratch) / "camera.y4m"
            video.write_bytes(camera)
            args.append(f"--use-file-for-fake-video-capture={video}")
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            yield browser
        finally:
            browser.close()
