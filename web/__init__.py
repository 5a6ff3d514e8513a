"""The web app: a thin HTTP layer over recognition/ (routes, settings, errors, uploads, the OpenAPI document)."""
import sys
from pathlib import Path

import torch
from flask import Flask
from flask_cors import CORS

from recognition.classifier import ModelError, load_classifier
from recognition.faces import DetectorError, SharedDetector
from web.errors import register_errors
from web.limits import LargeDecodes
from web.routes import register_routes
from web.settings import load_config
from web.uploads import InMemoryRequest

__version__ = "0.1.0"
ROOT = Path(__file__).resolve().parent.parent  # templates/ and static/ live beside app.py


def create_app(config=None):
    """Build the app and load the model once; exit with one line if the model is unusable."""
    app = Flask(__name__, root_path=str(ROOT))
    app.request_class = InMemoryRequest
    app.json.sort_keys = False  # keep emotions in label order
    torch.set_num_threads(1)  # one thread per worker: workers, not threads, use the cores
    try:
        app.config.update(load_config(config))
        app.extensions["detector"] = SharedDetector(app.config["DETECTOR"])
        app.extensions["classifier"] = load_classifier(app.config["MODEL_PATH"], fusion=app.config["FUSION"])
        app.extensions["large_decodes"] = LargeDecodes(app.config["LARGE_DECODES"], app.config["LARGE_DECODE_WAIT_S"])
    except (ValueError, ModelError, DetectorError) as e:
        sys.exit(f"error: cannot start: {e}")
    register_routes(app, __version__)
    register_errors(app)
    allow_origins(app, app.config["CORS_ORIGINS"])
    return app


def allow_origins(app, origins):
    """Let pages on these origins call the API from the browser (CORS); none by default."""
    if origins:
        CORS(app, resources={r"/predict.*": {}, "/healthz": {}, "/openapi.json": {}}, origins=list(origins),
             methods=["GET", "POST"], allow_headers=["Authorization", "Content-Type"], max_age=600)
