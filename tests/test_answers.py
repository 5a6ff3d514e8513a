"""Known faces get their known emotions, and a deliberately broken model fails that check."""
import io
import json
import re

import pytest

from app import create_app
from tests.support import ROOT
from tests.support.known_answers import assert_known_answers, write_rewired


def test_the_committed_model_gives_every_known_face_its_emotion(client):
    assert_known_answers(client)


def rewired_client(app, tmp_path, **rewiring):
    """A client of an app serving the session app's model, rewired."""
    path = write_rewired(app.extensions["classifier"], tmp_path / "rewired.pt", **rewiring)
    return create_app({"MODEL_PATH": str(path), "FUSION": False}).test_client()


def test_the_check_passes_on_the_model_rewired_without_a_change(app, tmp_path):
    # The positive control for the two below: the rewiring itself changes nothing.
    assert_known_answers(rewired_client(app, tmp_path))


@pytest.mark.parametrize("rewiring", [{"swap": ("happy", "sad")}, {"input_scale": 255.0}],
                         ids=["happy-and-sad-exchanged", "pixels-0-to-255"])
def test_a_broken_model_fails_the_check(app, tmp_path, rewiring):
    with pytest.raises(AssertionError, match="static/samples/astronaut.jpg: expected happy"):
        assert_known_answers(rewired_client(app, tmp_path, **rewiring))


def test_the_readme_example_is_what_the_astronaut_sample_gets(client):
    readme = (ROOT / "README.md").read_text()
    example = json.loads(re.search(r"```json\n(.*?)```", readme, re.S).group(1))
    sample = (ROOT / "static" / "samples" / "astronaut.jpg").read_bytes()
    body = client.post("/predict", data={"image": (io.BytesIO(sample), "astronaut.jpg")},
                       content_type="multipart/form-data").json
    (documented,), (face,) = example["faces"], body["faces"]
    assert face["box"] == documented["box"] and face["dominant_emotion"] == documented["dominant_emotion"]
    # The README rounds to 4 places.
    assert face["emotions"] == pytest.approx(documented["emotions"], abs=5e-5)
    assert body["model"] == pytest.approx(example["model"], abs=5e-5)
    assert body["image"] == example["image"] and body["mode"] == example["mode"]
