"""The app's settings: defaults, then FER_* environment variables, then the caller's dict."""
import os
import re

from modelfile import DEFAULT_PATH
from recognition.images import DEFAULT_MAX_PIXELS, IMAGE_TYPES

DEFAULTS = {
    "MODEL_PATH": str(DEFAULT_PATH),
    "MAX_UPLOAD_MB": 10.0,
    "MAX_PIXELS": DEFAULT_MAX_PIXELS,
    "MAX_IMAGES": 16,
    "API_TOKEN": "",
    "DETECTOR": "blazeface",
    "FUSION": True,
    "MAX_VIDEO_MB": 20.0,
    "MAX_VIDEO_SECONDS": 30.0,
    "VIDEO_FPS": 5.0,
    "CORS_ORIGINS": (),
    # Images over recognition.images.WORK_PIXELS decoded at once by all workers together, and how
    # long a request waits for its turn: two 40-megapixel PNGs at once would burst a 512 MB dyno.
    "LARGE_DECODES": 1,
    "LARGE_DECODE_WAIT_S": 15.0,
}
# An origin as browsers send it: scheme, host and an optional port, no path.
ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?$")


def boolean(text):
    """An environment switch: on/off, true/false, yes/no or 1/0."""
    value = {"1": True, "on": True, "true": True, "yes": True,
             "0": False, "off": False, "false": False, "no": False}.get(text.strip().lower())
    if value is None:
        raise ValueError(text)
    return value


def origins(text):
    """FER_CORS_ORIGINS: "*" or a comma-separated list of origins such as https://example.org."""
    listed = tuple(o.strip() for o in text.split(",") if o.strip())
    if listed != ("*",) and not all(ORIGIN.match(o) for o in listed):
        raise ValueError(text)
    return listed


origins.expected = "comma-separated list of origins such as https://example.org, or *"


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
    "FER_CORS_ORIGINS": ("CORS_ORIGINS", origins),
}


def load_config(overrides):
    """Defaults, then environment variables, then the caller's dict."""
    config = dict(DEFAULTS)
    for variable, (key, kind) in ENVIRONMENT.items():
        if variable in os.environ:
            try:
                config[key] = kind(os.environ[variable])
            except ValueError:
                raise ValueError(f"{variable} is {os.environ[variable]!r}, not a valid {getattr(kind, 'expected', kind.__name__)}") from None
    config.update(overrides or {})
    config["MAX_CONTENT_LENGTH"] = int(config["MAX_UPLOAD_MB"] * 1024 * 1024)
    return config


def page_settings(config, labels):
    """What the page needs from the server: the label order of the served model and the limits."""
    return {"labels": list(labels), "token_required": bool(config["API_TOKEN"]),
            "max_upload_mb": config["MAX_UPLOAD_MB"], "max_pixels": config["MAX_PIXELS"],
            "max_images": config["MAX_IMAGES"], "max_video_mb": config["MAX_VIDEO_MB"],
            "max_video_seconds": config["MAX_VIDEO_SECONDS"], "image_types": list(IMAGE_TYPES),
            "image_names": ", ".join(list(IMAGE_TYPES.values())[:-1]) + " or " + list(IMAGE_TYPES.values())[-1]}
