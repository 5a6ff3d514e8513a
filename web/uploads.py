"""Pull the uploads out of a request: images (multipart fields, a raw body, or JSON base64) and videos."""
import base64
import binascii
import io
import json
import re

from flask import Request
from werkzeug.exceptions import RequestEntityTooLarge

from recognition.pipeline import MODES
from web.errors import RequestError

FIELDS = ("image", "file")
RAW_TYPES = ("image/",)
UNSAFE = re.compile(r"[^\w.+/-]")
DATA_URL = re.compile(r"^data:(?P<type>[\w.+-]+/[\w.+-]+)?(;[\w=.+-]+)*;base64,", re.IGNORECASE)


class InMemoryRequest(Request):
    """Keep multipart uploads in memory: Werkzeug spools files over 500 KB to a temporary file,
    and nothing a client sends may reach the disk. MAX_CONTENT_LENGTH bounds the memory."""

    def _get_file_stream(self, total_content_length, content_type, filename=None, content_length=None):
        return io.BytesIO()


def shown(text, limit=60):
    """Client-sent text made safe to repeat in a message: word characters only, bounded length."""
    return UNSAFE.sub("?", text)[:limit]


def decode_base64(text):
    """Base64 or a data: URL -> bytes; RequestError (400) if it is neither."""
    if not isinstance(text, str):
        raise RequestError(400, "invalid_json", '"image" must be a string: base64 or a data: URL')
    match = DATA_URL.match(text)
    if match:
        media = (match.group("type") or "").lower()
        if media and not media.startswith("image/"):
            raise RequestError(415, "unsupported_media_type", "the data: URL must hold an image/* type")
        text = text[match.end():]
    elif text.startswith("data:"):
        raise RequestError(400, "invalid_base64", "only base64 data: URLs are accepted")
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(400, "invalid_base64", '"image" is not valid base64') from None


def images_from_multipart(files):
    """The uploaded files of the image/file fields, in the order they were sent."""
    uploads = [f for name, f in files.items(multi=True) if name in FIELDS]
    if not uploads:
        sent = ", ".join(shown(name) for name in sorted(set(files))[:10]) or "none"
        raise RequestError(400, "missing_image", f"send the image in a form field named 'image' (fields sent: {sent})")
    return [f.read() for f in uploads]


def images_from_json(payload):
    """The image of a JSON body {"image": "<base64 or data: URL>"}."""
    if not isinstance(payload, dict):
        raise RequestError(400, "invalid_json", 'the JSON body must be an object like {"image": "<base64>"}')
    if "image" not in payload:
        raise RequestError(400, "missing_image", 'the JSON object has no "image" key')
    return [decode_base64(payload["image"])]


def whole_body(request):
    """The request body; RequestEntityTooLarge (413) for a chunked body that reaches the limit.

    Without a Content-Length Werkzeug reads a chunked body up to MAX_CONTENT_LENGTH and silently
    stops there, so a cut-off body would otherwise be decoded and refused as a damaged image.
    """
    data = request.get_data()
    if request.content_length is None and request.max_content_length is not None \
            and len(data) >= request.max_content_length:
        raise RequestEntityTooLarge()
    return data


def parse_json(data):
    """The JSON value of a body; RequestError (400) for invalid or absurdly nested JSON."""
    try:
        return json.loads(data)
    except ValueError:
        raise RequestError(400, "invalid_json", "the body is not valid JSON") from None
    except RecursionError:
        raise RequestError(400, "invalid_json", "the JSON body is nested too deeply") from None


def checked_mode(mode):
    """The mode a client asked for, faces when it asked for none; RequestError (400) for anything else."""
    if mode is None:
        return MODES[0]
    if mode not in MODES:  # also refuses "" and non-strings such as 0, which once slipped through as faces
        shown_mode = shown(mode) if isinstance(mode, str) else type(mode).__name__
        raise RequestError(400, "invalid_mode", f"mode must be one of {', '.join(MODES)} (got {shown_mode or 'nothing'})")
    return mode


def extract_images(request):
    """(list of image bytes, mode) from a Flask request; RequestError for anything else."""
    mimetype = request.mimetype or ""
    if mimetype == "multipart/form-data":
        images, mode = images_from_multipart(request.files), request.form.get("mode")
    elif mimetype == "application/json":
        payload = parse_json(whole_body(request))
        images = images_from_json(payload)
        mode = payload.get("mode") if isinstance(payload, dict) else None
    elif mimetype.startswith(RAW_TYPES) or mimetype == "application/octet-stream":
        images, mode = [whole_body(request)], None
    elif not mimetype and not request.content_length:
        raise RequestError(400, "missing_image", "no image sent: POST multipart field 'image', a raw image body, "
                            'or JSON {"image": "<base64>"}')
    else:
        raise RequestError(415, "unsupported_media_type", f"Content-Type {shown(mimetype) or '(none)'} is not accepted; "
                            "use multipart/form-data, image/*, or application/json")
    return images, checked_mode(request.args.get("mode", mode))


def video_upload(request, max_mb):
    """The bytes of the video in this request (multipart field video or file, or a raw video/* body),
    read within max_mb; RequestError for anything else."""
    too_large = RequestError(413, "video_too_large", f"the video is larger than the {max_mb:g} MB limit")
    request.max_content_length = int(max_mb * 1024 * 1024)
    if (request.content_length or 0) > request.max_content_length:
        raise too_large
    try:
        if request.mimetype == "multipart/form-data":
            part = request.files.get("video") or request.files.get("file")
            if part is None:
                raise RequestError(400, "missing_video", "send the video in a form field named 'video'")
            kind, data = part.mimetype, part.read()
        else:
            kind, data = request.mimetype, request.get_data()
    except RequestEntityTooLarge:
        raise too_large from None
    if kind and not kind.startswith("video/") and kind != "application/octet-stream":
        raise RequestError(415, "unsupported_media_type", f"{shown(kind)} is not a video; send video/* "
                           "(MP4, MOV, AVI, WebM or MKV) as the body or in a form field named 'video'")
    if not data:
        raise RequestError(400, "missing_video", "no video sent: POST it in a form field named 'video' or as the body")
    return data
