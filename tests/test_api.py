"""POST /predict and the other routes through Flask's test client."""
import base64
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

import web.routes
from tests.support.images import encode, oriented
from tests.support.known_answers import SAMPLES, TOLERANCE, answer

LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def check_face(face):
    assert list(face["emotions"]) == LABELS
    assert abs(sum(face["emotions"].values()) - 1) < 1e-4
    assert face["dominant_emotion"] == max(face["emotions"], key=face["emotions"].get)
    assert face["confidence"] == face["emotions"][face["dominant_emotion"]]
    assert len(face["box"]) == 4 and all(isinstance(v, int) for v in face["box"])


def post_file(client, data, field="image", filename="photo.jpg", **kwargs):
    return client.post("/predict", data={field: (io.BytesIO(data), filename), **kwargs},
                       content_type="multipart/form-data")


@pytest.mark.parametrize("send", ["multipart", "multipart-file-field", "raw", "json-base64", "json-data-url"])
def test_every_input_format_finds_the_astronaut(client, astronaut_jpeg, send):
    b64 = base64.b64encode(astronaut_jpeg).decode()
    response = {
        "multipart": lambda: post_file(client, astronaut_jpeg),
        "multipart-file-field": lambda: post_file(client, astronaut_jpeg, field="file"),
        "raw": lambda: client.post("/predict", data=astronaut_jpeg, content_type="image/jpeg"),
        "json-base64": lambda: client.post("/predict", json={"image": b64}),
        "json-data-url": lambda: client.post("/predict", json={"image": "data:image/jpeg;base64," + b64}),
    }[send]()
    assert response.status_code == 200, response.json
    body = response.json
    assert body["image"] == {"width": 512, "height": 512}
    assert len(body["faces"]) == 1
    check_face(body["faces"][0])
    assert body["model"]["name"] and body["time_ms"] > 0


@pytest.mark.parametrize("fmt,mode", [("PNG", "RGBA"), ("PNG", "P"), ("WEBP", "RGB"), ("BMP", "RGB"),
                                      ("GIF", "P"), ("JPEG", "L"), ("JPEG", "CMYK")])
def test_every_image_format_is_accepted(client, astronaut, fmt, mode):
    response = post_file(client, encode(astronaut.convert(mode), fmt), filename=f"a.{fmt.lower()}")
    assert response.status_code == 200, response.json
    assert len(response.json["faces"]) == 1


@pytest.mark.parametrize("request_kwargs,status,code", [
    ({}, 400, "missing_image"),
    ({"data": {"photo": (io.BytesIO(b"x"), "a.jpg")}, "content_type": "multipart/form-data"}, 400, "missing_image"),
    ({"data": {"image": (io.BytesIO(b""), "a.jpg")}, "content_type": "multipart/form-data"}, 400, "empty_image"),
    ({"data": {"image": (io.BytesIO(b"%PDF-1.4 hello"), "a.jpg")}, "content_type": "multipart/form-data"}, 400, "invalid_image"),
    ({"data": b"plain text", "content_type": "text/plain"}, 415, "unsupported_media_type"),
    ({"data": b"<html></html>", "content_type": "image/jpeg"}, 400, "invalid_image"),
    ({"json": {"image": "***not base64***"}}, 400, "invalid_base64"),
    ({"json": {"image": 42}}, 400, "invalid_json"),
    ({"json": ["not", "an", "object"]}, 400, "invalid_json"),
    ({"json": {"picture": "abc"}}, 400, "missing_image"),
    ({"data": b"{not json", "content_type": "application/json"}, 400, "invalid_json"),
    ({"json": {"image": "data:text/plain;base64,aGVsbG8="}}, 415, "unsupported_media_type"),
])
def test_bad_requests_get_a_json_4xx(client, request_kwargs, status, code):
    response = client.post("/predict", **request_kwargs)
    assert response.status_code == status
    assert response.json["error"]["code"] == code and response.json["error"]["message"]


def test_unsupported_image_format_is_415(client):
    response = post_file(client, encode(Image.new("RGB", (20, 20)), "TIFF"), filename="a.tif")
    assert response.status_code == 415 and response.json["error"]["code"] == "unsupported_image_type"
    assert "TIFF" in response.json["error"]["message"]


def test_upload_over_the_limit_is_413(app):
    client = app.test_client()
    response = client.post("/predict", data=b"\xff" * (11 * 1024 * 1024), content_type="image/jpeg")
    assert response.status_code == 413 and response.json["error"]["code"] == "payload_too_large"


def test_upload_limit_is_configurable():
    from app import create_app
    client = create_app({"MAX_UPLOAD_MB": 0.01}).test_client()
    response = client.post("/predict", data=b"\0" * 20000, content_type="image/png")
    assert response.status_code == 413 and response.json["error"]["code"] == "payload_too_large"
    assert "0.01 MB" in response.json["error"]["message"]


def png_claiming(width, height):
    """A PNG whose header claims width x height pixels, with almost no pixel data behind it."""
    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("width,height,message", [
    (100000, 100000, "more pixels than Pillow will open; the limit is 40 megapixels"),
    (8000, 6000, "8000x6000 = 48,000,000 pixels; the limit is 40,000,000"),
    (8001, 5000, "8001x5000 = 40,005,000 pixels; the limit is 40,000,000"),
])
def test_decompression_bomb_is_refused_from_the_header(client, width, height, message):
    response = post_file(client, png_claiming(width, height), filename="bomb.png")
    assert response.status_code == 413 and response.json["error"]["code"] == "too_many_pixels"
    assert message in response.json["error"]["message"]


def test_an_image_of_exactly_40_megapixels_is_analysed(client):
    image = encode(Image.new("L", (8000, 5000), 120), "PNG", compress_level=1)
    response = client.post("/predict?mode=whole", data=image, content_type="image/png")
    assert response.status_code == 200 and response.json["image"] == {"width": 8000, "height": 5000}


@pytest.mark.parametrize("method,path,status,code", [("get", "/nope", 404, "not_found"),
                                                    ("get", "/predict", 405, "method_not_allowed"),
                                                    ("post", "/healthz", 405, "method_not_allowed")])
def test_http_errors_are_json(client, method, path, status, code):
    response = getattr(client, method)(path)
    assert response.status_code == status and response.json["error"]["code"] == code


def test_an_unexpected_failure_is_a_json_500_without_a_traceback(client, astronaut_jpeg, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(web.routes, "recognize", fail)
    response = client.post("/predict", data=astronaut_jpeg, content_type="image/jpeg")
    assert response.status_code == 500
    assert response.json == {"error": {"code": "internal_error", "message": "the server failed to process this request"}}
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_no_face_says_so(client, no_face_jpeg):
    body = post_file(client, no_face_jpeg).json
    assert body["faces"] == [] and "no face" in body["message"]


def test_mode_whole_classifies_the_whole_image(client, no_face_jpeg):
    body = post_file(client, no_face_jpeg, mode="whole").json
    assert len(body["faces"]) == 1 and body["mode"] == "whole"
    assert body["faces"][0]["box"] == [0, 0, body["image"]["width"], body["image"]["height"]]
    check_face(body["faces"][0])


def test_mode_whole_in_the_query_string(client, no_face_jpeg):
    response = client.post("/predict?mode=whole", data=no_face_jpeg, content_type="image/jpeg")
    assert len(response.json["faces"]) == 1


def test_invalid_mode_is_400(client, astronaut_jpeg):
    response = post_file(client, astronaut_jpeg, mode="everything")
    assert response.status_code == 400 and response.json["error"]["code"] == "invalid_mode"


def several(images):
    return {"data": {"image": [(io.BytesIO(data), f"{i}.png") for i, data in enumerate(images)]},
            "content_type": "multipart/form-data"}


def test_sixteen_images_are_accepted_and_seventeen_refused(client):
    tiny = encode(Image.new("L", (8, 8), 90), "PNG")
    accepted = client.post("/predict", **several([tiny] * 16))
    assert accepted.status_code == 200 and len(accepted.json["results"]) == 16
    refused = client.post("/predict", **several([tiny] * 17))
    assert refused.status_code == 400 and refused.json["error"]["code"] == "too_many_images"
    assert refused.json["error"]["message"] == "17 images sent; at most 16 per request"


def test_several_faces_come_largest_first(client, astronaut):
    canvas = Image.new("RGB", (900, 520), "white")
    canvas.paste(astronaut.resize((340, 340)), (20, 90))
    canvas.paste(astronaut, (380, 0))
    faces = post_file(client, encode(canvas)).json["faces"]
    assert len(faces) == 2
    areas = [f["box"][2] * f["box"][3] for f in faces]
    assert areas[0] > 1.5 * areas[1] and faces[0]["box"][0] > 380


def test_several_images_give_one_result_each_in_order(client, astronaut_jpeg, no_face_jpeg):
    results = client.post("/predict", **several([astronaut_jpeg, no_face_jpeg])).json["results"]
    assert [len(r["faces"]) for r in results] == [1, 0]


def test_a_bad_image_among_several_is_named(client, astronaut_jpeg):
    response = client.post("/predict", **several([astronaut_jpeg, b"junk"]))
    assert response.status_code == 400 and response.json["error"]["code"] == "invalid_image"
    assert response.json["error"]["message"].startswith("image 2 of 2")


@pytest.fixture(scope="module")
def upright_answer(app, astronaut):
    faces = post_file(app.test_client(), encode(astronaut, "PNG")).json["faces"]
    assert len(faces) == 1
    return faces


@pytest.mark.parametrize("orientation", range(2, 9))
def test_exif_oriented_photo_is_seen_upright(client, astronaut, upright_answer, orientation):
    body = post_file(client, oriented(np.asarray(astronaut), orientation, "PNG"), filename="a.png").json
    assert body["image"] == {"width": 512, "height": 512}
    assert body["faces"] == upright_answer  # the same box and the same probabilities


def test_healthz_reports_model_and_labels(client):
    body = client.get("/healthz").json
    assert body["status"] == "ok" and body["labels"] == LABELS and body["version"]


def test_openapi_describes_predict(client):
    spec = client.get("/openapi.json").json
    assert spec["openapi"].startswith("3.")
    assert set(spec["paths"]["/predict"]["post"]["responses"]) >= {"200", "400", "413", "415"}


@pytest.mark.parametrize("request_kwargs", [
    {"method": "GET", "path": "/healthz"},
    {"method": "POST", "path": "/predict", "data": encode(Image.new("L", (8, 8)), "PNG"), "content_type": "image/png"},
    {"method": "POST", "path": "/predict", "data": b"junk", "content_type": "image/png"},
], ids=["healthz", "predict", "predict-error"])
def test_responses_carry_security_headers(client, request_kwargs):
    headers = client.open(**request_kwargs).headers
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["Referrer-Policy"] == "no-referrer"


def test_predict_reports_its_mode_and_where_the_time_went(client, astronaut_jpeg):
    body = client.post("/predict", data=astronaut_jpeg, content_type="image/jpeg").json
    assert body["mode"] == "faces"
    timing = body["timing_ms"]
    assert list(timing) == ["decode", "detect", "classify"] and all(v > 0 for v in timing.values())
    assert sum(timing.values()) <= body["time_ms"] + 0.02  # each figure is rounded to 0.01 ms


def test_haar_detector_is_a_setting_and_gives_the_astronaut_her_known_emotion(monkeypatch):
    from app import create_app
    monkeypatch.setenv("FER_DETECTOR", "haar")
    client = create_app().test_client()
    assert client.get("/healthz").get_json()["detector"] == "haar"
    face = answer(client, (SAMPLES / "astronaut.jpg").read_bytes(), "faces")
    # Its box frames her a little differently from BlazeFace's: measured happy 0.9848.
    assert face["dominant_emotion"] == "happy" and face["confidence"] == pytest.approx(0.9848, abs=TOLERANCE)


def test_fusion_can_be_turned_off(monkeypatch, astronaut_jpeg):
    import torch

    from app import create_app
    monkeypatch.setenv("FER_FUSION", "off")
    client = create_app().test_client()
    assert not torch.jit.onednn_fusion_enabled()
    faces = client.post("/predict", data=astronaut_jpeg, content_type="image/jpeg").get_json()["faces"]
    assert len(faces) == 1


def test_default_detector_is_blazeface(client):
    assert client.get("/healthz").get_json()["detector"] == "blazeface"


@pytest.mark.parametrize("variable, value, message", [
    ("FER_DETECTOR", "yolo", "unknown face detector 'yolo'; choose one of blazeface, haar"),
    ("FER_MAX_IMAGES", "many", "FER_MAX_IMAGES is 'many', not a valid int"),
    ("FER_FUSION", "maybe", "FER_FUSION is 'maybe', not a valid boolean"),
])
def test_bad_settings_stop_start_up_with_one_line(monkeypatch, variable, value, message):
    from app import create_app
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as stopped:
        create_app()
    assert str(stopped.value).startswith("error: cannot start:") and message in str(stopped.value)
