"""The web app: a thin HTTP layer over recognition/.

    gunicorn 'app:create_app()'       (see Procfile and gunicorn.conf.py)
    flask --app app run                for development
"""
import hmac
import io
import logging
import os
import sys
import time
from pathlib import Path

import torch
from flask import Flask, Request, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from recognition.classifier import ModelError, load_classifier
from recognition.faces import SharedDetector
from recognition.images import ImageRejected
from recognition.openapi import openapi_spec
from recognition.pipeline import MODES, recognize
from recognition.uploads import extract_images

__version__ = "0.1.0"
ROOT = Path(__file__).resolve().parent

DEFAULTS = {
    "MODEL_PATH": str(ROOT / "model" / "fer.pt"),
    "MAX_UPLOAD_MB": 10.0,
    "MAX_PIXELS": 40_000_000,
    "MAX_IMAGES": 16,
    "API_TOKEN": "",
    "DETECTOR": "blazeface",
    "FUSION": True,
}


def boolean(text):
    """An environment switch: on/off, true/false, yes/no or 1/0."""
    value = {"1": True, "on": True, "true": True, "yes": True,
             "0": False, "off": False, "false": False, "no": False}.get(text.strip().lower())
    if value is None:
        raise ValueError(text)
    return value


# Environment variable -> (config key, type).
ENVIRONMENT = {
    "FER_MODEL_PATH": ("MODEL_PATH", str),
    "FER_MAX_UPLOAD_MB": ("MAX_UPLOAD_MB", float),
    "FER_MAX_PIXELS": ("MAX_PIXELS", int),
    "FER_MAX_IMAGES": ("MAX_IMAGES", int),
    "FER_API_TOKEN": ("API_TOKEN", str),
    "FER_DETECTOR": ("DETECTOR", str),
    "FER_FUSION": ("FUSION", boolean),
}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
                               "style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; "
                               "frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

log = logging.getLogger("fer")


class InMemoryRequest(Request):
    """Keep multipart uploads in memory: Werkzeug spools files over 500 KB to a temporary file,
    and nothing a client sends may reach the disk. MAX_CONTENT_LENGTH bounds the memory."""

    def _get_file_stream(self, total_content_length, content_type, filename=None, content_length=None):
        return io.BytesIO()


def error(status, code, message):
    """The JSON error body every failure uses."""
    return jsonify({"error": {"code": code, "message": message}}), status


def load_config(overrides):
    """Defaults, then environment variables, then the caller's dict."""
    config = dict(DEFAULTS)
    for variable, (key, kind) in ENVIRONMENT.items():
        if variable in os.environ:
            try:
                config[key] = kind(os.environ[variable])
            except ValueError:
                raise ValueError(f"{variable} is {os.environ[variable]!r}, not a valid {kind.__name__}") from None
    config.update(overrides or {})
    config["MAX_CONTENT_LENGTH"] = int(config["MAX_UPLOAD_MB"] * 1024 * 1024)
    return config


def create_app(config=None):
    """Build the app and load the model once; exit with one line if the model is unusable."""
    app = Flask(__name__)
    app.request_class = InMemoryRequest
    app.json.sort_keys = False  # keep emotions in label order
    torch.set_num_threads(1)  # one thread per worker: workers, not threads, use the cores
    try:
        app.config.update(load_config(config))
        app.extensions["detector"] = SharedDetector(app.config["DETECTOR"])
        app.extensions["classifier"] = load_classifier(app.config["MODEL_PATH"], fusion=app.config["FUSION"])
    except (ValueError, ModelError) as e:
        sys.exit(f"error: cannot start: {e}")
    register_routes(app)
    register_errors(app)
    return app


def check_token(app):
    """None when the request may use the API, else the 401 response."""
    expected = app.config["API_TOKEN"]
    if not expected:
        return None
    sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if hmac.compare_digest(sent.encode(), expected.encode()):
        return None
    return error(401, "unauthorized", "this server needs an API token: send 'Authorization: Bearer <token>'")


def register_routes(app):
    """The page, the API and the health and description endpoints."""
    classifier, detector = app.extensions["classifier"], app.extensions["detector"]

    @app.get("/")
    def index():
        return render_template("index.html", token_required=bool(app.config["API_TOKEN"]),
                               max_upload_mb=app.config["MAX_UPLOAD_MB"])

    @app.get("/healthz")
    def healthz():
        return jsonify({"status": "ok", "model": classifier.summary, "labels": list(classifier.labels),
                        "detector": detector.name, "version": __version__})

    @app.get("/openapi.json")
    def openapi():
        return jsonify(openapi_spec(__version__, list(classifier.labels), app.config))

    @app.post("/predict")
    def predict():
        denied = check_token(app)
        if denied:
            return denied
        t0 = time.perf_counter()
        images, mode = extract_images(request)
        if mode not in MODES:
            raise ImageRejected(400, "invalid_mode", f"mode must be one of {', '.join(MODES)}")
        if len(images) > app.config["MAX_IMAGES"]:
            raise ImageRejected(400, "too_many_images", f"{len(images)} images sent; at most "
                                f"{app.config['MAX_IMAGES']} per request")
        results = []
        for i, data in enumerate(images):
            try:
                results.append(recognize(data, classifier, detector, mode,
                                         app.config["MAX_PIXELS"]))
            except ImageRejected as e:
                if len(images) > 1:
                    e.message = f"image {i + 1} of {len(images)}: {e.message}"
                raise
        body = results[0] if len(results) == 1 else {"results": results}
        body["model"] = classifier.summary
        body["time_ms"] = round((time.perf_counter() - t0) * 1e3, 2)
        return jsonify(body)

    @app.after_request
    def security_headers(response):
        response.headers.update(SECURITY_HEADERS)
        return response


def register_errors(app):
    """Every error becomes the JSON error body; never a traceback."""
    @app.errorhandler(ImageRejected)
    def rejected(e):
        return error(e.status, e.code, e.message)

    @app.errorhandler(HTTPException)
    def http_error(e):
        code = e.name.lower().replace(" ", "_")
        if e.code == 413:
            return error(413, "payload_too_large", f"the request is larger than the {app.config['MAX_UPLOAD_MB']:g} MB limit")
        return error(e.code, code, e.description)

    @app.errorhandler(Exception)
    def unexpected(e):
        log.exception("unhandled error")
        return error(500, "internal_error", "the server failed to process this request")
