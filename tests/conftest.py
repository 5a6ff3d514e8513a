"""Shared fixtures: the app on the committed model, a client, and images made in memory."""
import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import create_app  # noqa: E402


@pytest.fixture(scope="session")
def app():
    return create_app({"TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()


def encode(image, fmt="JPEG", **params):
    """A Pillow image or array -> file bytes in the given format."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def astronaut():
    """scikit-image's astronaut photo (public domain): one face, 512x512 RGB."""
    return Image.fromarray(skdata.astronaut())


@pytest.fixture(scope="session")
def astronaut_jpeg(astronaut):
    return encode(astronaut, "JPEG", quality=90)


@pytest.fixture(scope="session")
def no_face_jpeg():
    """scikit-image's coffee cup photo: a real photo with no face."""
    return encode(Image.fromarray(skdata.coffee()), "JPEG")
