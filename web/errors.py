"""The one error type of a request and the JSON body every failure gets; never a traceback."""
import logging

from flask import jsonify, request
from gunicorn.http.errors import ParseException
from werkzeug.exceptions import HTTPException

from recognition.images import ImageRejected
from recognition.video import VideoError, VideoOverLimit

log = logging.getLogger("fer")

# HTTP status of each reason recognition/ gives for refusing an image; 400 for the others.
IMAGE_STATUS = {"too_many_pixels": 413, "too_many_scans": 413, "unsupported_image_type": 415}


class RequestError(Exception):
    """What is wrong with a request: an HTTP status, a machine-readable code and a sentence for people."""

    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def image_error(e, index=0, count=1):
    """The request error for an image that recognition/ refused, naming which one when several were sent."""
    where = f"image {index + 1} of {count}: " if count > 1 else ""
    return RequestError(IMAGE_STATUS.get(e.code, 400), e.code, where + e.message)


def video_error(e):
    """The request error for a video that recognition/ refused."""
    if isinstance(e, VideoOverLimit):
        return RequestError(413, "video_too_large", str(e))
    return RequestError(400, "invalid_video", f"{e} (send MP4, MOV, AVI, WebM or MKV)")


def error(status, code, message):
    """The JSON error body every failure uses."""
    return jsonify({"error": {"code": code, "message": message}}), status


def too_large_message(config):
    """Why Werkzeug refused the request with 413: the whole body, or one form field that is not a file."""
    length, limit = request.content_length, config["MAX_CONTENT_LENGTH"]
    field_limit = config.get("MAX_FORM_MEMORY_SIZE")
    if request.mimetype == "multipart/form-data" and length is not None and length <= limit and field_limit:
        return (f"a form field that is not a file is larger than the {field_limit / 1000:g} KB limit "
                "(send images as file parts)")
    return f"the request is larger than the {config['MAX_UPLOAD_MB']:g} MB limit"


def register_errors(app):
    """Every error becomes the JSON error body."""
    @app.errorhandler(RequestError)
    def rejected(e):
        return error(e.status, e.code, e.message)

    @app.errorhandler(ImageRejected)
    def image_rejected(e):
        return rejected(image_error(e))

    @app.errorhandler(VideoError)
    def video_rejected(e):
        return rejected(video_error(e))

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
