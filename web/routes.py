"""The routes: parse the request, call recognition/, answer JSON."""
import hmac
import time

from flask import jsonify, render_template, request

from recognition.batch import video_detector
from recognition.clip import analyze_clip
from recognition.images import ImageRejected, image_pixels
from recognition.pipeline import recognize
from web.errors import RequestError, error, image_error
from web.openapi import openapi_spec
from web.settings import page_settings
from web.uploads import extract_images, video_upload

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
                               "style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; "
                               "frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def check_token(config):
    """None when the request may use the API, else the 401 response."""
    expected = config["API_TOKEN"]
    if not expected:
        return None
    # RFC 9110 and 6750: the scheme is case-insensitive and required; a bare token is not a credential.
    scheme, _, sent = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(sent.strip().encode(), expected.encode()):
        return None
    body, status = error(401, "unauthorized", "this server needs an API token: send 'Authorization: Bearer <token>'")
    body.headers["WWW-Authenticate"] = "Bearer"
    return body, status


def recognize_all(images, classifier, detector, mode, max_pixels, large):
    """The result of each image, in order; the request error names the image that was refused."""
    # One image over the limit is refused as it is opened; only several need their headers read first.
    total = sum(image_pixels(data) for data in images) if len(images) > 1 else 0
    if total > max_pixels:
        raise RequestError(413, "too_many_pixels", f"the {len(images)} images hold {total:,} pixels together; "
                           f"the limit per request is {max_pixels:,}")
    results = []
    for i, data in enumerate(images):
        try:
            results.append(recognize(data, classifier, detector, mode, max_pixels, large))
        except ImageRejected as e:
            raise image_error(e, i, len(images)) from None
    return results


def answered(body, classifier, started):
    """The JSON response of a result, with the model's summary and the time the request took."""
    body["model"] = classifier.summary
    body["time_ms"] = round((time.perf_counter() - started) * 1e3, 2)
    return jsonify(body)


def register_routes(app, version):
    """The page, the API and the health and description endpoints."""
    config, classifier, detector = app.config, app.extensions["classifier"], app.extensions["detector"]

    @app.before_request
    def authorised():  # a CORS preflight (OPTIONS) carries no token by design
        if request.endpoint in ("predict", "predict_video") and request.method == "POST":
            return check_token(config)
        return None

    @app.get("/")
    def index():
        return render_template("index.html", page=page_settings(config, classifier.labels))

    @app.get("/healthz")
    def healthz():
        return jsonify({"status": "ok", "model": classifier.summary, "labels": list(classifier.labels),
                        "detector": detector.name, "version": version})

    @app.get("/openapi.json")
    def openapi():
        return jsonify(openapi_spec(version, list(classifier.labels), config))

    @app.post("/predict")
    def predict():
        started = time.perf_counter()
        images, mode = extract_images(request)
        if len(images) > config["MAX_IMAGES"]:
            raise RequestError(400, "too_many_images", f"{len(images)} images sent; at most "
                               f"{config['MAX_IMAGES']} per request")
        results = recognize_all(images, classifier, detector, mode, config["MAX_PIXELS"], app.extensions["large_decodes"])
        return answered(results[0] if len(results) == 1 else {"results": results}, classifier, started)

    @app.post("/predict/video")
    def predict_video():
        started = time.perf_counter()
        data = video_upload(request, config["MAX_VIDEO_MB"])
        # Not the shared detector, whose lock a video would hold for seconds: BlazeFace's models
        # without its lock (they run from several threads at once), or a Haar cascade of its own.
        body = analyze_clip(data, classifier, video_detector(detector.detector), config["VIDEO_FPS"],
                            config["MAX_VIDEO_SECONDS"], config["MAX_PIXELS"])
        return answered(body, classifier, started)

    @app.after_request
    def security_headers(response):
        response.headers.update(SECURITY_HEADERS)
        if request.path.startswith("/predict"):
            response.headers["Cache-Control"] = "no-store"  # answers describe a user's photo
        return response
