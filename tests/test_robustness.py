"""Bad input, fuzzing, disk writes, tokens: the service must answer every request with JSON, never a 500."""
import base64
import builtins
import io
import json
import os
import re

import numpy as np
import pytest
from flask import Request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from app import create_app
from recognition.images import ImageRejected, decode_image
from tests.support.images import encode

ALLOWED = {200, 400, 413, 415}


def animated_gif():
    frames = [Image.new("RGB", (64, 64), c) for c in ("red", "green", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


def zip_bytes():
    import zipfile
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("a.txt", "hello")
    return buffer.getvalue()


def corpus(astronaut_jpeg):
    """(name, body bytes, expected status, expected error code or None for 200)."""
    png = encode(Image.new("RGB", (64, 64), "white"), "PNG")
    palette = Image.new("P", (64, 64))
    palette.putpalette([i % 256 for i in range(768)])
    return [
        ("0-byte file", b"", 400, "empty_image"),
        ("text named .jpg", b"just some text\n" * 10, 400, "invalid_image"),
        ("html named .jpg", b"<!doctype html><script>alert(1)</script>", 400, "invalid_image"),
        ("pdf named .jpg", b"%PDF-1.7\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", 400, "invalid_image"),
        ("zip named .jpg", zip_bytes(), 400, "invalid_image"),
        ("truncated jpeg", astronaut_jpeg[:2000], 400, "invalid_image"),
        ("truncated png", png[:60], 400, "invalid_image"),
        ("corrupt jpeg header", b"\xff\xd8\xff\xe0" + b"\x00" * 200, 400, "invalid_image"),
        ("corrupt png header", b"\x89PNG\r\n\x1a\n" + b"\xff" * 100, 400, "invalid_image"),
        ("animated gif", animated_gif(), 200, None),
        ("16-bit png", encode(Image.fromarray(np.full((40, 40), 40000, np.uint16)), "PNG"), 200, None),
        ("palette png", encode(palette, "PNG"), 200, None),
        ("cmyk jpeg", encode(Image.new("CMYK", (40, 40), (0, 0, 0, 0)), "JPEG"), 200, None),
        ("1x1 png", encode(Image.new("L", (1, 1)), "PNG"), 200, None),
        ("10000x10 png", encode(Image.new("L", (10000, 10)), "PNG"), 200, None),
    ]


@pytest.fixture(scope="module")
def cases(astronaut_jpeg):
    return {name: rest for name, *rest in corpus(astronaut_jpeg)}


@pytest.mark.parametrize("name", [c[0] for c in corpus(b"\xff\xd8" + b"\0" * 4000)])
def test_bad_input_corpus_gets_the_documented_answer(client, cases, name):
    body, status, code = cases[name]
    response = client.post("/predict", data={"image": (io.BytesIO(body), "upload.jpg")},
                           content_type="multipart/form-data")
    assert response.status_code == status, response.json
    if code:
        assert response.json["error"]["code"] == code
    else:
        assert isinstance(response.json["faces"], list)


@pytest.mark.parametrize("kwargs,status,code", [
    ({"data": b"", "content_type": "image/jpeg"}, 400, "empty_image"),
    ({"data": b"x", "content_type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"),
    ({"json": "just a string"}, 400, "invalid_json"),
    ({"data": b"null", "content_type": "application/json"}, 400, "invalid_json"),
    ({"data": b"\xff\xfe", "content_type": "application/json"}, 400, "invalid_json"),
    ({"json": {"image": "data:image/png;base64,%%%"}}, 400, "invalid_base64"),
    ({"data": json.dumps({"image": "A" * (11 * 1024 * 1024)}), "content_type": "application/json"}, 413, "payload_too_large"),
    ({"data": b"\0" * (50 * 1024 * 1024), "content_type": "image/png"}, 413, "payload_too_large"),
])
def test_bad_requests_of_every_shape(client, kwargs, status, code):
    response = client.post("/predict", **kwargs)
    assert response.status_code == status and response.json["error"]["code"] == code


def test_multipart_with_100_files_is_refused(client, astronaut_jpeg):
    files = [(io.BytesIO(b"x" * 100), f"{i}.jpg") for i in range(100)]
    response = client.post("/predict", data={"image": files}, content_type="multipart/form-data")
    assert response.status_code == 400 and response.json["error"]["code"] == "too_many_images"


def test_error_messages_never_echo_raw_markup(client):
    response = client.post("/predict", data=b"x", headers={"Content-Type": "text/<script>alert(1)</script>"})
    assert response.status_code == 415 and "<script>" not in response.get_data(as_text=True)
    response = client.post("/predict", data={"<img src=x>": (io.BytesIO(b"x"), "a.jpg")}, content_type="multipart/form-data")
    assert response.status_code == 400 and "<img" not in response.get_data(as_text=True)


mutations = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=20)


def mutate(data, changes, cut):
    out = bytearray(data)
    for position, value in changes:
        out[position % len(out)] = value
    return bytes(out[:max(1, int(len(out) * cut))])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=4096))
def test_fuzz_decode_random_bytes_never_crashes(data):
    try:
        rgb = decode_image(data)
        assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    except ImageRejected as e:
        assert e.code in {"empty_image", "invalid_image", "too_many_pixels", "too_many_scans", "unsupported_image_type"}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=mutations, cut=st.floats(0.05, 1.0), fmt=st.sampled_from(["JPEG", "PNG", "GIF", "WEBP", "BMP"]))
def test_fuzz_predict_with_mutated_images_answers_4xx_or_200(client, astronaut, changes, cut, fmt):
    data = mutate(encode(astronaut.resize((128, 128)).convert("RGB" if fmt != "GIF" else "P"), fmt), changes, cut)
    response = client.post("/predict", data=data, content_type="image/jpeg")
    assert response.status_code in ALLOWED, response.json
    assert response.is_json


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.one_of(st.binary(max_size=2048).map(lambda b: base64.b64encode(b).decode()),
                         st.text(max_size=200), st.integers(), st.none(), st.lists(st.integers(), max_size=3)))
def test_fuzz_json_bodies(client, payload):
    response = client.post("/predict", json={"image": payload})
    assert response.status_code in ALLOWED and response.is_json


def test_fuzzing_keeps_memory_bounded(client, astronaut_jpeg):
    def rss_mb():
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024

    rng = np.random.default_rng(0)
    for _ in range(20):
        client.post("/predict", data=astronaut_jpeg, content_type="image/jpeg")
    before = rss_mb()
    for _ in range(300):
        data = np.frombuffer(astronaut_jpeg, np.uint8).copy()
        data[rng.integers(100, len(data), 10)] = rng.integers(0, 255, 10, dtype=np.uint8)
        client.post("/predict", data=data[: rng.integers(200, len(data))].tobytes(), content_type="image/jpeg")
    assert rss_mb() - before < 50, f"RSS grew from {before:.0f} MB to {rss_mb():.0f} MB"


def disk_writes(client, data):
    """The files opened for writing while the app handles a multipart upload of data."""
    writes = []
    real_open, real_os_open = builtins.open, os.open

    def spy_open(file, mode="r", *args, **kwargs):
        if any(flag in mode for flag in "wax+"):
            writes.append(str(file))
        return real_open(file, mode, *args, **kwargs)

    def spy_os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            writes.append(str(path))
        return real_os_open(path, flags, *args, **kwargs)

    # Encode the multipart body here: Flask's test client would otherwise spool it to a
    # temporary file on the client side, which is not what is being tested.
    boundary = "----fer-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"big.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    with pytest.MonkeyPatch.context() as spies:
        spies.setattr(builtins, "open", spy_open)
        spies.setattr(os, "open", spy_os_open)
        response = client.post("/predict", data=body, content_type=f"multipart/form-data; boundary={boundary}")
    assert response.status_code == 200
    return writes


@pytest.fixture(scope="module")
def big_png(astronaut):
    data = encode(astronaut.resize((1500, 1500)), "PNG")
    assert len(data) > 600_000  # over Werkzeug's 500 KB spooling threshold
    return data


def test_nothing_uploaded_reaches_the_disk(client, big_png):
    assert disk_writes(client, big_png) == []


def test_the_disk_spy_sees_flasks_default_temporary_file(app, big_png, monkeypatch):
    # The positive control: with Flask's own request class the same upload is spooled to disk.
    monkeypatch.setattr(app, "request_class", Request)
    assert disk_writes(app.test_client(), big_png) != []


@pytest.fixture(scope="module")
def token_client():
    return create_app({"API_TOKEN": "s3cret"}).test_client()


def test_token_is_required_when_set(token_client, astronaut_jpeg):
    response = token_client.post("/predict", data=astronaut_jpeg, content_type="image/jpeg")
    assert response.status_code == 401 and response.json["error"]["code"] == "unauthorized"
    wrong = token_client.post("/predict", data=astronaut_jpeg, content_type="image/jpeg",
                              headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    right = token_client.post("/predict", data=astronaut_jpeg, content_type="image/jpeg",
                              headers={"Authorization": "Bearer s3cret"})
    assert right.status_code == 200


def test_page_and_static_assets_stay_public_with_a_token(token_client):
    page = token_client.get("/")
    assert page.status_code == 200 and page_settings(page)["token_required"] is True
    assert token_client.get("/static/app.js").status_code == 200
    assert token_client.get("/healthz").status_code == 200


def page_settings(response):
    """The settings the page reads from the server, embedded in its HTML."""
    found = re.search(r'<script type="application/json" id="settings">(.*?)</script>', response.text, re.S)
    assert found, "the page embeds no settings"
    return json.loads(found.group(1))


def test_page_takes_labels_and_limits_from_the_server():
    client = create_app({"MAX_IMAGES": 5, "MAX_PIXELS": 1_000_000}).test_client()
    settings = page_settings(client.get("/"))
    assert settings["labels"] == client.get("/healthz").json["labels"] and settings["token_required"] is False
    assert settings["max_images"] == 5 and settings["max_pixels"] == 1_000_000

