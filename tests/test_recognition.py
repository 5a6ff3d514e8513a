"""The recognition functions on their own, without Flask."""
import io

import numpy as np
import pytest
from PIL import Image

from conftest import encode
from recognition.classifier import ModelError, classify, load_classifier
from recognition.faces import DetectorPool, DetectorSettings, crop_box, crop_face, detect_faces, load_detector
from recognition.images import ImageRejected, decode_image


def test_detects_the_one_face_in_the_astronaut_photo(astronaut):
    grey = np.asarray(astronaut.convert("L"))
    boxes = detect_faces(grey, load_detector())
    assert len(boxes) == 1
    x, y, w, h = boxes[0]
    # Eileen Collins' face lies around x 170-260, y 60-170 in the 512x512 photo.
    assert 140 < x + w / 2 < 260 and 60 < y + h / 2 < 170 and 60 < w < 160


def test_detects_nothing_on_a_blank_image():
    assert detect_faces(np.full((300, 400), 128, np.uint8), load_detector()) == []


def test_boxes_map_back_to_full_resolution(astronaut):
    big = np.asarray(astronaut.convert("L").resize((1536, 1536)))
    small = np.asarray(astronaut.convert("L"))
    (bx, by, bw, bh), = detect_faces(big, load_detector(), DetectorSettings(max_side=512))
    (sx, sy, sw, sh), = detect_faces(small, load_detector(), DetectorSettings(max_side=512))
    assert abs(bx - 3 * sx) <= 6 and abs(bw - 3 * sw) <= 6


def test_crop_is_square_centred_and_48_pixels():
    grey = np.zeros((200, 200), np.uint8)
    assert crop_box((50, 50, 100, 100), scale=1.2, shift_y=0.0) == (40, 40, 120, 120)
    assert crop_face(grey, (50, 50, 100, 100)).shape == (48, 48)


def test_crop_at_the_border_replicates_edge_pixels():
    grey = np.full((100, 100), 200, np.uint8)
    crop = crop_face(grey, (-20, -20, 60, 60))
    assert crop.shape == (48, 48) and crop.min() == 200


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P", "CMYK", "I;16", "LA", "1"])
def test_decodes_every_pillow_mode_to_grey(mode):
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8))
    image = rgb.convert(mode) if mode != "I;16" else Image.fromarray((np.asarray(rgb.convert("L")).astype(np.uint16) * 257))
    fmt = {"CMYK": "JPEG"}.get(mode, "PNG")
    grey = decode_image(encode(image, fmt))
    assert grey.shape == (30, 40) and grey.dtype == np.uint8


def test_16_bit_png_keeps_its_brightness():
    image = Image.fromarray(np.full((10, 10), 32768, np.uint16))
    assert abs(int(decode_image(encode(image, "PNG")).mean()) - 128) <= 1


def test_transparent_png_is_flattened_on_white():
    image = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    assert decode_image(encode(image, "PNG")).min() == 255


def test_gif_first_frame_is_used():
    frames = [Image.new("L", (8, 8), v) for v in (10, 240)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    assert decode_image(buffer.getvalue()).mean() < 50


def test_exif_orientation_is_applied():
    image = Image.new("L", (60, 20), 0)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    grey = decode_image(encode(image, "JPEG", exif=exif))
    assert grey.shape == (60, 20)


def test_refuses_too_many_pixels_before_decoding():
    with pytest.raises(ImageRejected) as e:
        decode_image(encode(Image.new("L", (2000, 1000)), "PNG"), max_pixels=1_000_000)
    assert e.value.status == 413 and "2000x1000" in e.value.message


@pytest.mark.parametrize("data,status", [(b"", 400), (b"not an image", 400), (b"\x89PNG\r\n\x1a\n" + b"\0" * 20, 400)])
def test_rejects_what_is_not_an_image(data, status):
    with pytest.raises(ImageRejected) as e:
        decode_image(data)
    assert e.value.status == status


def test_rejects_supported_but_unaccepted_formats():
    with pytest.raises(ImageRejected) as e:
        decode_image(encode(Image.new("L", (8, 8)), "TIFF"))
    assert e.value.status == 415 and "TIFF" in e.value.message


def test_truncated_jpeg_is_a_clear_error(astronaut_jpeg):
    with pytest.raises(ImageRejected) as e:
        decode_image(astronaut_jpeg[: len(astronaut_jpeg) // 2])
    assert e.value.status == 400 and "truncated" in e.value.message


def test_committed_model_honours_the_contract(app):
    classifier = app.extensions["classifier"]
    assert classifier.labels == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    probs = classify(classifier, np.random.default_rng(0).integers(0, 255, (5, 48, 48), dtype=np.uint8))
    assert probs.shape == (5, 7) and np.allclose(probs.sum(1), 1, atol=1e-4) and (probs >= 0).all()


def test_classify_of_no_faces_is_empty(app):
    assert classify(app.extensions["classifier"], np.zeros((0, 48, 48), np.uint8)).shape == (0, 7)


def test_missing_model_file_is_named(tmp_path):
    with pytest.raises(ModelError, match="nope.pt: model file not found"):
        load_classifier(tmp_path / "nope.pt")


def test_corrupt_model_file_is_named(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(ModelError, match="bad.pt: not a loadable TorchScript model"):
        load_classifier(bad)


def test_each_thread_gets_its_own_detector():
    import threading
    pool = DetectorPool()
    seen = []
    thread = threading.Thread(target=lambda: seen.append(pool.get()))
    thread.start()
    thread.join()
    assert seen[0] is not pool.get() and pool.get() is pool.get()
