"""Shared fixtures: the app on the committed model, a client, and images made in memory; hermetic runs."""
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import settings
from PIL import Image
from skimage import data as skdata

from app import create_app
from tests.support.images import encode

ROOT = Path(__file__).resolve().parent.parent

# The same examples on every run, and no example database written into the working tree.
settings.register_profile("hermetic", derandomize=True, database=None)
settings.load_profile("hermetic")

SERVER_SETTINGS = ("WEB_CONCURRENCY", "GUNICORN_THREADS")
# Where caches would go under the home directory: the training data cache, matplotlib's font
# cache, XDG caches (pip's among them) and gunicorn's control socket.
CACHES = {"FER_CACHE": "fer", "MPLCONFIGDIR": "matplotlib", "XDG_CACHE_HOME": "cache", "XDG_RUNTIME_DIR": "run"}
hermetic = pytest.MonkeyPatch()
SCRATCH = pytest.StashKey[Path]()


def pytest_configure(config):
    """Run the tests without the shell's FER_* and server settings, with caches in a temporary folder.

    A hook rather than a session fixture: training.data reads FER_CACHE when it is imported,
    which happens while the tests are collected, before any fixture runs.
    """
    scratch = Path(tempfile.mkdtemp(prefix="fer-tests-"))
    for name in list(os.environ):
        if name.startswith("FER_") or name in SERVER_SETTINGS:
            hermetic.delenv(name)
    for name, folder in CACHES.items():
        (scratch / folder).mkdir(mode=0o700)
        hermetic.setenv(name, str(scratch / folder))
    config.stash[SCRATCH] = scratch


def pytest_unconfigure(config):
    hermetic.undo()
    if SCRATCH in config.stash:
        shutil.rmtree(config.stash[SCRATCH], ignore_errors=True)


@pytest.fixture(autouse=True)
def torch_settings():
    """Give back the process-wide torch settings a test changes: thread count, graph fusion, quantised engine.

    create_app and training.train set them for their whole process; the session's app is made
    before this fixture runs, so its settings are the ones kept.
    """
    saved = torch.get_num_threads(), torch.jit.onednn_fusion_enabled(), torch.backends.quantized.engine
    yield
    threads, fusion, engine = saved
    torch.set_num_threads(threads)
    torch.jit.enable_onednn_fusion(fusion)
    torch.backends.quantized.engine = engine


@pytest.fixture(scope="session")
def app():
    return create_app({"TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()


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
