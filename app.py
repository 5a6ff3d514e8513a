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
from gunicorn.http.errors import ParseException
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from recognition.batch import video_detector
from recognition.classifier import ModelError, load_classifier
from recognition.clip import analyze_clip
from recognition.faces import SharedDetector
from recognition.images import ImageRejected
from recognition.openapi import openapi_spec
from recognition.pipeline import recognize
from recognition.uploads import extract_images, shown
from recognition.video import VideoError, VideoOverLimit

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
    "MAX_VIDEO_MB": 20.0,
    "MAX_VIDEO_SECONDS": 30.0,
    "VIDEO_FPS": 5.0,
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
    "FER_MAX_VIDEO_MB": ("MAX_VIDEO_MB", float),
    "FER_MAX_VIDEO_SECONDS": ("MAX_VIDEO_SECONDS", float),
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


def page_settings(config, labels):
    """What the page needs from the server: the label order of the served model and the limits."""
    return {"labels": list(labels), "token_required": bool(config["API_TOKEN"]),
            "max_upload_mb": config["MAX_UPLOAD_MB"], "max_pixels": config["MAX_PIXELS"],
            "max_images": config["MAX_IMAGES"], "max_video_mb": config["MAX_VIDEO_MB"],
            "max_video_seconds": config["MAX_VIDEO_SECONDS"]}


def check_token(app):
    """None when the request may use the API, else the 401 response."""
    expected = app.config["API_TOKEN"]
    if not expected:
        return None
    # RFC 9110 and 6750: the scheme is case-insensitive and required; a bare token is not a credential.
    scheme, _, sent = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(sent.strip().encode(), expected.encode()):
        return None
    body, status = error(401, "unauthorized", "this server needs an API token: send 'Authorization: Bearer <token>'")
    body.headers["WWW-Authenticate"] = "Bearer"
    return body, status


def register_routes(app):
    """The page, the API and the health and description endpoints."""
    classifier, detector = app.extensions["classifier"], app.extensions["detector"]

    @app.get("/")
    def index():
        return render_template("index.html", page=page_settings(app.config, classifier.labels))

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

    @app.post("/predict/video")
    def predict_video():
        denied = check_token(app)
        if denied:
            return denied
        t0 = time.perf_counter()
        data = video_upload(app.config["MAX_VIDEO_MB"])
        try:
            # A detector per request: a video holds it for seconds, and /predict's shared one stays free.
            body = analyze_clip(data, classifier, video_detector(app.config["DETECTOR"]), app.config["VIDEO_FPS"],
                                app.config["MAX_VIDEO_SECONDS"], app.config["MAX_PIXELS"])
        except VideoOverLimit as e:
            raise ImageRejected(413, "video_too_large", str(e)) from None
        except VideoError as e:
            raise ImageRejected(400, "invalid_video", f"{e} (send MP4, MOV, AVI, WebM or MKV)") from None
        body["model"] = classifier.summary
        body["time_ms"] = round((time.perf_counter() - t0) * 1e3, 2)
        return jsonify(body)

    @app.after_request
    def security_headers(response):
        response.headers.update(SECURITY_HEADERS)
        if request.path.startswith("/predict"):
            response.headers["Cache-Control"] = "no-store"  # answers describe a user's photo
        return response


def video_upload(max_mb):
    """The bytes of the video in this request (multipart field video or file, or a raw video/* body),
    read within max_mb; ImageRejected (the API's error) for anything else."""
    too_large = ImageRejected(413, "video_too_large", f"the video is larger than the {max_mb:g} MB limit")
    request.max_content_length = int(max_mb * 1024 * 1024)
    if (request.content_length or 0) > request.max_content_length:
        raise too_large
    try:
        if request.mimetype == "multipart/form-data":
            part = request.files.get("video") or request.files.get("file")
            if part is None:
                raise ImageRejected(400, "missing_video", "send the video in a form field named 'video'")
            kind, data = part.mimetype, part.read()
        else:
            kind, data = request.mimetype, request.get_data()
    except RequestEntityTooLarge:
        raise too_large from None
    if kind and not kind.startswith("video/") and kind != "application/octet-stream":
        raise ImageRejected(415, "unsupported_media_type", f"{shown(kind)} is not a video; send video/* "
                            "(MP4, MOV, AVI, WebM or MKV) as the body or in a form field named 'video'")
    if not data:
        raise ImageRejected(400, "missing_video", "no video sent: POST it in a form field named 'video' or as the body")
    return data


def too_large_message(config):
    """Why Werkzeug refused the request with 413: the whole body, or one form field that is not a file."""
    length, limit = request.content_length, config["MAX_CONTENT_LENGTH"]
    field_limit = config.get("MAX_FORM_MEMORY_SIZE")
    if request.mimetype == "multipart/form-data" and length is not None and length <= limit and field_limit:
        return (f"a form field that is not a file is larger than the {field_limit / 1000:g} KB limit "
                "(send images as file parts)")
    return f"the request is larger than the {config['MAX_UPLOAD_MB']:g} MB limit"


def register_errors(app):
    """Every error becomes the JSON error body; never a traceback."""
    @app.errorhandler(ImageRejected)
    def rejected(e):
        return error(e.status, e.code, e.message)

    @app.errorhandler(HTTPException)
    def http_error(e):
        code = e.name.lower().replace(" ", "_")
        if e.code == 413:
            return error(413, "payload_too_large", too_large_message(app.config))
        body, status = error(e.code, code, e.description)
        for name, value in e.get_headers():  # Allow on a 405, as RFC 9110 requires
            if name != "Content-Type":
                body.headers[name] = value
        return body, status

    @app.errorhandler(ParseException)
    def malformed_body(e):  # gunicorn parses a chunked body only when the app reads it
        return error(400, "bad_request", "the request body is malformed: its chunked encoding cannot be parsed")

    @app.errorhandler(Exception)
    def unexpected(e):
        log.exception("unhandled error")
        return error(500, "internal_error", "the server failed to process this request")
