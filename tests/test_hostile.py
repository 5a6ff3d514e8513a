"""Issue 17's findings, one regression test each: uploads sent as an attacker would, answered with the documented JSON."""
import io
import json
import re
import socket
import struct
import subprocess
import sys
import time
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image

from app import create_app
from tests.support import ROOT
from tests.support.images import encode, oriented
from tests.support.server import post_image, procfile_server, slow_clients

PNG = encode(Image.new("L", (8, 8)), "PNG")


def chunked(client, body, content_type):
    """POST a body the way a chunked request reaches the app under gunicorn: no Content-Length, stream terminated."""
    return client.post("/predict", input_stream=io.BytesIO(body), content_type=content_type,
                       headers={"Transfer-Encoding": "chunked"}, environ_overrides={"wsgi.input_terminated": True})


def test_json_nested_100000_levels_deep_is_a_400(client):
    response = client.post("/predict", data=b"[" * 100_000 + b"]" * 100_000, content_type="application/json")
    assert response.status_code == 400 and response.json["error"]["code"] == "invalid_json"
    assert "nested too deeply" in response.json["error"]["message"]


@pytest.mark.parametrize("content_type", ["image/png", "application/json"])
def test_chunked_body_over_the_limit_is_413(client, content_type):
    response = chunked(client, b"\0" * (11 * 1024 * 1024), content_type)
    assert response.status_code == 413 and response.json["error"]["code"] == "payload_too_large"
    assert "10 MB limit" in response.json["error"]["message"]


def test_chunked_body_under_the_limit_is_analysed(client):
    response = chunked(client, PNG, "image/png")
    assert response.status_code == 200 and response.json["image"] == {"width": 8, "height": 8}


def test_a_large_form_field_is_named_as_such(client):
    response = client.post("/predict", data={"image": (io.BytesIO(PNG), "a.png"), "mode": "x" * 600_000},
                           content_type="multipart/form-data")
    assert response.status_code == 413 and response.json["error"]["code"] == "payload_too_large"
    message = response.json["error"]["message"]
    assert "form field" in message and "500 KB" in message and "10 MB" not in message


@pytest.mark.parametrize("body", [
    b'<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8"/></svg>',
    b'\xef\xbb\xbf<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>',
    b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + b"\0" * 64,
    b"\0\0\0\x1cftypmif1\0\0\0\0mif1heic" + b"\0" * 64,
], ids=["svg", "svg-with-xml-declaration", "heic", "heif-mif1"])
def test_svg_and_heic_are_415(client, body):
    response = client.post("/predict", data={"image": (io.BytesIO(body), "photo")}, content_type="multipart/form-data")
    assert response.status_code == 415 and response.json["error"]["code"] == "unsupported_image_type"


@pytest.mark.parametrize("request_kwargs", [
    {"path": "/predict", "json": {"image": "aGVsbG8=", "mode": 0}},
    {"path": "/predict", "json": {"image": "aGVsbG8=", "mode": ["faces"]}},
    {"path": "/predict", "json": {"image": "aGVsbG8=", "mode": ""}},
    {"path": "/predict?mode=", "data": PNG, "content_type": "image/png"},
    {"path": "/predict", "data": {"image": (io.BytesIO(PNG), "a.png"), "mode": ""}, "content_type": "multipart/form-data"},
], ids=["zero", "list", "empty-json", "empty-query", "empty-field"])
def test_a_mode_that_is_not_a_known_string_is_400(client, request_kwargs):
    response = client.post(**request_kwargs)
    assert response.status_code == 400 and response.json["error"]["code"] == "invalid_mode"


@pytest.fixture(scope="module")
def token_client():
    return create_app({"API_TOKEN": "s3cret"}).test_client()


@pytest.mark.parametrize("authorization,status", [
    ("Bearer s3cret", 200), ("bearer s3cret", 200), ("BEARER  s3cret ", 200),
    ("s3cret", 401), ("Basic s3cret", 401), ("Bearers3cret", 401), ("Bearer", 401), ("", 401),
])
def test_the_bearer_scheme_is_case_insensitive_and_required(token_client, authorization, status):
    response = token_client.post("/predict", data=PNG, content_type="image/png", headers={"Authorization": authorization})
    assert response.status_code == status, response.json
    if status == 401:
        assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("request_kwargs", [
    {"data": PNG, "content_type": "image/png"},
    {"data": b"junk", "content_type": "image/png"},
], ids=["answer", "error"])
def test_predict_answers_are_not_stored(client, request_kwargs):
    assert client.post("/predict", **request_kwargs).headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("method,path,allowed", [("get", "/predict", "POST"), ("post", "/healthz", "GET")])
def test_405_names_the_allowed_methods(client, method, path, allowed):
    response = getattr(client, method)(path)
    assert response.status_code == 405 and response.json["error"]["code"] == "method_not_allowed"
    assert allowed in response.headers["Allow"].split(", ")


@pytest.fixture(scope="module")
def server_address():
    """The Procfile's server (nginx in front of gunicorn) on loopback, one worker of two threads, and
    nginx's client timeouts cut to 2 s and 3 large bodies at once: server-level errors happen before
    the app is called."""
    env = {"WEB_CONCURRENCY": "1", "GUNICORN_THREADS": "2", "NGINX_CLIENT_TIMEOUT": "2", "NGINX_LARGE_BODIES": "3"}
    with procfile_server(env=env) as (base, _, _):
        url = urlsplit(base)
        yield url.hostname, url.port


def raw_exchange(address, request):
    """Send request bytes as they are; (status, headers text, body bytes) of the answer, read up to
    its Content-Length (nginx keeps the connection open after an answer it passes on)."""
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
            head, _, body = answer.partition(b"\r\n\r\n")
            length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            if _ and length and len(body) >= int(length[1]):
                break
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), head.decode("latin-1"), body


@pytest.mark.parametrize("request_bytes,status", [
    (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 30000000\r\n\r\n", 413),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 431),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(120)) + b"\r\n", 431),
    (b"<script>alert(1)</script>\r\n\r\n", 400),
    (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    (b"TRACE / HTTP/1.1\r\nHost: x\r\n\r\n", 405),
    (b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    (b"GET /_error/503 HTTP/1.1\r\nHost: x\r\n\r\n", 404),
], ids=["url-too-long", "url-too-long-for-nginx", "body-over-nginx-cap", "header-too-large", "too-many-headers",
        "malformed-request-line", "bad-chunk-size", "trace", "unknown-transfer-encoding", "http-2-request-line",
        "nginx-internal-page"])
def test_errors_raised_by_the_servers_themselves_are_json(server_address, request_bytes, status):
    got, head, body = raw_exchange(server_address, request_bytes)
    assert got == status and "Content-Type: application/json" in head
    error = json.loads(body)["error"]
    assert error["code"] and error["message"] and b"<" not in body


def test_slow_clients_do_not_hold_the_apps_threads(server_address, astronaut_jpeg):
    """Twelve clients sending their bodies a byte every quarter second, against one worker of two
    threads: with gunicorn alone they held both threads and every other request timed out."""
    with slow_clients(server_address, 12) as sockets:
        time.sleep(1)  # every slow client is in its body
        base = f"http://{server_address[0]}:{server_address[1]}"
        for _ in range(5):
            status, body = post_image(base + "/predict", astronaut_jpeg, timeout=5)
            assert status == 200 and len(json.loads(body)["faces"]) == 1
        assert all(still_waiting(sock) for sock in sockets), "the slow clients must still be sending, not dropped"


def still_waiting(sock):
    """Whether the server has neither answered nor closed this connection yet."""
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return True
    finally:
        sock.settimeout(timeout)
    return False


def test_large_bodies_past_the_limit_get_a_json_503_at_once(server_address, astronaut_jpeg):
    """The fixture's nginx reads 3 bodies of 1 MB or more at once; a fourth is refused before it is
    read, while small ones still pass."""
    with slow_clients(server_address, 3, length=2_000_000):
        time.sleep(0.5)
        head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 2000000\r\n\r\n"
        t0 = time.perf_counter()
        status, headers, body = raw_exchange(server_address, head)
        assert status == 503 and time.perf_counter() - t0 < 2 and "Retry-After: 5" in headers
        assert json.loads(body)["error"]["code"] == "server_busy"
        base = f"http://{server_address[0]}:{server_address[1]}"
        assert post_image(base + "/predict", astronaut_jpeg, timeout=5)[0] == 200


def test_a_chunked_upload_passes_through_nginx(server_address, astronaut_jpeg):
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part)
                      for part in (astronaut_jpeg[i:i + 4096] for i in range(0, len(astronaut_jpeg), 4096)))
    request = (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n"
               b"Connection: close\r\n\r\n" + chunks + b"0\r\n\r\n")
    status, _, body = raw_exchange(server_address, request)
    assert status == 200 and len(json.loads(body)["faces"]) == 1


@pytest.mark.parametrize("request_bytes", [b"POST /predict HTTP/1.1\r\nHost: x\r\n",
                                           b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nab"],
                         ids=["headers-stall", "body-stalls"])
def test_a_client_that_stalls_is_dropped_after_the_timeout(server_address, request_bytes):
    with socket.create_connection(server_address, timeout=10) as sock:
        sock.sendall(request_bytes)
        t0 = time.perf_counter()
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
        waited = time.perf_counter() - t0
    # nginx closes the connection of a client that sends nothing for 2 s (the fixture's timeout),
    # without an answer: the client is not reading one
    assert 1.5 < waited < 6 and answer == b""


def scan_bomb(image, repeats):
    """A progressive JPEG whose last scan is repeated: each repeat costs Pillow one more pass over the image."""
    progressive = encode(image, "JPEG", quality=90, progressive=True)
    last, end = progressive.rfind(b"\xff\xda"), progressive.rfind(b"\xff\xd9")
    return progressive[:end] + progressive[last:end] * repeats + progressive[end:]


def test_a_jpeg_with_thousands_of_scans_is_refused_before_decoding(client):
    bomb = scan_bomb(Image.new("RGB", (2000, 2000), (120, 90, 60)), 3000)  # 78 KB; Pillow took 20 s to decode it
    started = time.perf_counter()
    response = client.post("/predict", data=bomb, content_type="image/jpeg")
    assert response.status_code == 413 and response.json["error"]["code"] == "too_many_scans"
    assert "3,010 scans; the limit is 100" in response.json["error"]["message"]
    assert time.perf_counter() - started < 3


def test_an_ordinary_progressive_jpeg_is_analysed(client, astronaut):
    response = client.post("/predict", data=scan_bomb(astronaut, 0), content_type="image/jpeg")
    assert response.status_code == 200 and len(response.json["faces"]) == 1


# Decodes the image file named by argv[1] in a fresh process; prints the peak memory growth in bytes per pixel.
# VmHWM, not ru_maxrss: the latter keeps the peak of the forking parent (pytest with torch loaded) across exec.
PEAK_PER_PIXEL = """
import re, sys
from recognition.images import decode_image
def peak_kb():
    return int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
data = open(sys.argv[1], "rb").read()
before = peak_kb()
rgb = decode_image(data)
print((peak_kb() - before) * 1024 / (rgb.shape[0] * rgb.shape[1]))
"""


def transparent_palette(width, height):
    image = Image.new("P", (width, height))
    image.putpalette([i % 256 for i in range(768)])
    return encode(image, "PNG", compress_level=1, transparency=0)


REDUCED_PEAK_PER_PIXEL = PEAK_PER_PIXEL.replace("decode_image", "decode_reduced").replace(
    "rgb = decode_reduced(data)\nprint((peak_kb() - before) * 1024 / (rgb.shape[0] * rgb.shape[1]))",
    "rgb, (width, height) = decode_reduced(data)\nprint((peak_kb() - before) * 1024 / (width * height))")


@pytest.mark.parametrize("make", [
    lambda w, h: encode(Image.fromarray((np.arange(w, dtype=np.uint16) * 9)[None, :].repeat(h, axis=0)), "PNG",
                        compress_level=1),
    transparent_palette,
    lambda w, h: oriented(np.full((h, w, 3), 120, np.uint8), 6, "JPEG"),
], ids=["16-bit", "palette-with-transparency", "exif-rotated-jpeg"])
@pytest.mark.parametrize("script, limit", [(PEAK_PER_PIXEL, 12), (REDUCED_PEAK_PER_PIXEL, 4.5)],
                         ids=["full-size", "reduced-for-detection"])
def test_wide_palette_and_turned_images_decode_in_a_few_bytes_per_pixel(tmp_path, make, script, limit):
    # Full size: once 28 (16-bit, through float64), 24 (palette, through RGBA) and 17 (EXIF-turned JPEG:
    # turned and converted copies) bytes per pixel, up to 1 GB at 40 megapixels; now about 6, 5 and 10.
    # Reduced by 2 on each side for the detector, as the app decodes images over 10 megapixels: measured
    # 3.3, 3.1 and 2.6 bytes per full-size pixel at 40 megapixels (the JPEG never exists at full size).
    path = tmp_path / "image"
    path.write_bytes(make(4000, 4000))
    result = subprocess.run([sys.executable, "-c", script, str(path)], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, env={"OMP_NUM_THREADS": "1", "PATH": ""})
    assert result.returncode == 0, result.stderr
    assert float(result.stdout) < limit


def rle8_bmp(width, height, rows):
    """An 8-bit run-length compressed BMP (BI_RLE8) with a grey palette and the given encoded rows."""
    palette = b"".join(bytes((i, i, i, 0)) for i in range(256))
    payload = rows + b"\x00\x01"  # end of bitmap
    offset = 14 + 40 + len(palette)
    dib = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(payload), 2835, 2835, 256, 0)
    return b"BM" + struct.pack("<IHHI", offset + len(payload), 0, 0, offset) + dib + palette + payload


def test_a_large_run_length_bmp_is_refused_before_decoding(client):
    # One pixel, then end of line, on every row: Pillow pads each row in Python a byte at a time (about 12 s).
    bomb = rle8_bmp(6000, 6600, b"\x01\x07\x00\x00" * 6600)
    started = time.perf_counter()
    response = client.post("/predict", data=bomb, content_type="image/bmp")
    assert response.status_code == 413 and response.json["error"]["code"] == "too_many_pixels"
    assert "run-length compressed BMP" in response.json["error"]["message"]
    assert time.perf_counter() - started < 3


def test_a_small_run_length_bmp_is_analysed(client):
    response = client.post("/predict?mode=whole", data=rle8_bmp(64, 64, b"\x40\x80\x00\x00" * 64), content_type="image/bmp")
    assert response.status_code == 200 and response.json["image"] == {"width": 64, "height": 64}


def test_cors_is_off_by_default(client, astronaut_jpeg):
    response = client.post("/predict", data=astronaut_jpeg, content_type="image/jpeg",
                           headers={"Origin": "https://example.org"})
    assert response.status_code == 200 and "Access-Control-Allow-Origin" not in response.headers


def test_cors_origins_may_call_the_api_with_a_token(astronaut_jpeg):
    client = create_app({"CORS_ORIGINS": ("https://example.org",), "API_TOKEN": "s3cret"}).test_client()
    preflight = client.options("/predict", headers={
        "Origin": "https://example.org", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert preflight.status_code == 200  # the preflight carries no token and must not be refused
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://example.org"
    assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()
    answer = client.post("/predict", data=astronaut_jpeg, content_type="image/jpeg",
                         headers={"Origin": "https://example.org", "Authorization": "Bearer s3cret"})
    assert answer.status_code == 200 and answer.headers["Access-Control-Allow-Origin"] == "https://example.org"
    refused = client.post("/predict", data=b"not an image", content_type="image/jpeg",
                          headers={"Origin": "https://example.org", "Authorization": "Bearer s3cret"})
    assert refused.status_code == 400 and refused.headers["Access-Control-Allow-Origin"] == "https://example.org"
    other = client.post("/predict", data=astronaut_jpeg, content_type="image/jpeg",
                        headers={"Origin": "https://evil.example", "Authorization": "Bearer s3cret"})
    assert "Access-Control-Allow-Origin" not in other.headers


@pytest.mark.parametrize("value", ["example.org", "https://example.org/path", "ftp://example.org"])
def test_a_bad_cors_origin_stops_start_up(value, monkeypatch):
    monkeypatch.setenv("FER_CORS_ORIGINS", value)
    with pytest.raises(SystemExit, match="FER_CORS_ORIGINS"):
        create_app()



def test_faces_of_a_large_photo_are_found_reduced_and_boxed_in_full_size_pixels(client, astronaut):
    small = client.post("/predict", data=encode(astronaut, "JPEG", quality=95), content_type="image/jpeg").json
    large = client.post("/predict", data=encode(astronaut.resize((4096, 4096), Image.Resampling.BICUBIC), "JPEG",
                                                quality=92), content_type="image/jpeg").json
    assert large["image"] == {"width": 4096, "height": 4096}
    expected = np.array(small["faces"][0]["box"]) * 8
    assert np.abs(np.array(large["faces"][0]["box"]) - expected).max() <= 16  # 2 pixels of the 512-pixel photo
    assert abs(large["faces"][0]["emotions"]["happy"] - small["faces"][0]["emotions"]["happy"]) < 0.02


def test_the_images_of_one_request_share_one_pixel_budget():
    client = create_app({"MAX_PIXELS": 1_000_000}).test_client()
    photo = encode(Image.new("RGB", (800, 800), (120, 120, 120)), "PNG")
    one = client.post("/predict", data={"image": [(io.BytesIO(photo), "a.png")]}, content_type="multipart/form-data")
    assert one.status_code == 200
    two = client.post("/predict", data={"image": [(io.BytesIO(photo), "a.png"), (io.BytesIO(photo), "b.png")]},
                      content_type="multipart/form-data")
    assert two.status_code == 413 and two.json["error"]["code"] == "too_many_pixels"
    assert "1,280,000 pixels together" in two.json["error"]["message"]


def test_a_large_image_waits_for_the_one_large_decode_slot_then_gets_a_503():
    app = create_app({"LARGE_DECODE_WAIT_S": 0.2})
    large = encode(Image.new("RGB", (4000, 3000), (120, 120, 120)), "JPEG")  # 12 megapixels: a large decode
    small = encode(Image.new("RGB", (640, 480), (120, 120, 120)), "JPEG")
    with app.extensions["large_decodes"]():  # another request holds the slot
        busy = app.test_client().post("/predict", data=large, content_type="image/jpeg")
        assert busy.status_code == 503 and busy.json["error"]["code"] == "server_busy"
        assert app.test_client().post("/predict", data=small, content_type="image/jpeg").status_code == 200
    assert app.test_client().post("/predict", data=large, content_type="image/jpeg").status_code == 200


def test_options_needs_no_token(token_client):
    response = token_client.options("/predict")
    assert response.status_code == 200 and "POST" in response.headers["Allow"]
