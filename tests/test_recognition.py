"""The recognition functions on their own, without Flask."""
import io

import numpy as np
import pytest
from PIL import Image

from recognition.classifier import ModelError, classify, load_classifier
from recognition.faces import DETECTORS, BlazeFace, BlazeFaceSettings, SharedDetector, clip_box, crop_box, crop_face
from recognition.images import ImageRejected, decode_image
from tests.support.images import encode, oriented


@pytest.mark.parametrize("name", DETECTORS)
def test_detects_the_one_face_in_the_astronaut_photo(astronaut, name):
    boxes = DETECTORS[name]().detect(np.asarray(astronaut))
    assert len(boxes) == 1
    x, y, w, h = boxes[0]
    # Eileen Collins' face lies around x 170-260, y 60-170 in the 512x512 photo.
    assert 140 < x + w / 2 < 260 and 60 < y + h / 2 < 170 and 60 < w < 160


@pytest.mark.parametrize("name", DETECTORS)
def test_detects_nothing_on_a_blank_image(name):
    assert DETECTORS[name]().detect(np.full((300, 400, 3), 128, np.uint8)) == []


@pytest.mark.parametrize("name", DETECTORS)
def test_boxes_map_back_to_full_resolution(astronaut, name):
    detector = DETECTORS[name]()
    (bx, by, bw, bh), = detector.detect(np.asarray(astronaut.resize((1536, 1536))))
    (sx, sy, sw, sh), = detector.detect(np.asarray(astronaut))
    assert abs(bx - 3 * sx) <= 9 and abs(by - 3 * sy) <= 9 and abs(bw - 3 * sw) <= 9


def test_blazeface_finds_the_face_where_the_image_is_letterboxed(astronaut):
    wide = np.full((512, 1400, 3), 40, np.uint8)
    wide[:, 700:1212] = np.asarray(astronaut)
    (x, y, w, h), = DETECTORS["blazeface"]().detect(wide)
    assert 700 + 140 < x + w / 2 < 700 + 260 and 60 < y + h / 2 < 170


def test_tiles_find_a_small_face_in_a_large_photo(astronaut):
    canvas = np.full((1500, 2000, 3), 120, np.uint8)
    canvas[900:1360, 1400:1860] = np.asarray(astronaut.resize((460, 460)))  # a face about 90 px wide
    assert BlazeFace(BlazeFaceSettings(tile_above=100_000)).detect(canvas) == []
    (x, y, w, h), = BlazeFace().detect(canvas)
    assert 1400 + 120 < x + w / 2 < 1400 + 240 and 900 + 50 < y + h / 2 < 900 + 160


def test_a_face_cut_by_the_border_is_reported_inside_the_image():
    assert clip_box((-20, 10, 60, 50), 100, 40) == (0, 10, 40, 30)


def test_crop_is_square_centred_and_48_pixels():
    grey = np.zeros((200, 200), np.uint8)
    assert crop_box((50, 50, 100, 100), scale=1.2, shift_y=0.0) == (40, 40, 120, 120)
    assert crop_face(grey, (50, 50, 100, 100), BlazeFaceSettings()).shape == (48, 48)


def test_crop_at_the_border_replicates_edge_pixels():
    grey = np.full((100, 100), 200, np.uint8)
    crop = crop_face(grey, (-20, -20, 60, 60), BlazeFaceSettings())
    assert crop.shape == (48, 48) and crop.min() == 200


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P", "CMYK", "I;16", "LA", "1"])
def test_decodes_every_pillow_mode_to_rgb(mode):
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8))
    image = rgb.convert(mode) if mode != "I;16" else Image.fromarray((np.asarray(rgb.convert("L")).astype(np.uint16) * 257))
    fmt = {"CMYK": "JPEG"}.get(mode, "PNG")
    rgb = decode_image(encode(image, fmt))
    assert rgb.shape == (30, 40, 3) and rgb.dtype == np.uint8


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


def asymmetric_image():
    """40x60 RGB, smooth enough for JPEG, that no turn or mirror maps onto itself."""
    y, x = np.mgrid[0:40, 0:60]
    rgb = np.stack([x * 4, y * 6, np.zeros_like(x)], axis=2).astype(np.uint8)
    rgb[4:14, 6:20] = (255, 255, 255)  # a block near the top-left corner
    return rgb


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_turns_the_image_upright(orientation, fmt):
    upright = asymmetric_image()
    rgb = decode_image(oriented(upright, orientation, fmt))
    assert rgb.shape == upright.shape
    error = np.abs(rgb.astype(int) - upright).mean()
    # JPEG: measured 1.9 to 2.2 grey levels; a wrong turn or mirror gives 55 or more.
    assert error == 0 if fmt == "PNG" else error < 5


def test_refuses_too_many_pixels_before_decoding():
    with pytest.raises(ImageRejected) as e:
        decode_image(encode(Image.new("L", (2000, 1000)), "PNG"), max_pixels=1_000_000)
    assert e.value.code == "too_many_pixels" and "2000x1000" in e.value.message


@pytest.mark.parametrize("data,code", [(b"", "empty_image"), (b"not an image", "invalid_image"),
                                       (b"\x89PNG\r\n\x1a\n" + b"\0" * 20, "invalid_image")])
def test_rejects_what_is_not_an_image(data, code):
    with pytest.raises(ImageRejected) as e:
        decode_image(data)
    assert e.value.code == code


def test_rejects_supported_but_unaccepted_formats():
    with pytest.raises(ImageRejected) as e:
        decode_image(encode(Image.new("L", (8, 8)), "TIFF"))
    assert e.value.code == "unsupported_image_type" and "TIFF" in e.value.message


def test_truncated_jpeg_is_a_clear_error(astronaut_jpeg):
    with pytest.raises(ImageRejected) as e:
        decode_image(astronaut_jpeg[: len(astronaut_jpeg) // 2])
    assert e.value.code == "invalid_image" and "truncated" in e.value.message


def test_committed_model_honours_the_contract(app):
    classifier = app.extensions["classifier"]
    assert classifier.labels == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    probs = classify(classifier, np.random.default_rng(0).integers(0, 255, (5, 48, 48), dtype=np.uint8))
    assert probs.shape == (5, 7) and np.allclose(probs.sum(1), 1, atol=1e-4) and (probs >= 0).all()


def test_classify_of_no_faces_is_empty(app):
    assert classify(app.extensions["classifier"], np.zeros((0, 48, 48), np.uint8)).shape == (0, 7)


def test_fused_and_unfused_models_give_the_same_probabilities(app):
    import torch
    model = app.config["MODEL_PATH"]
    rng = np.random.default_rng(1)
    batches = [rng.integers(0, 255, (n, 48, 48), dtype=np.uint8) for n in (1, 3, 1, 3, 6)]
    plain = load_classifier(model, fusion=False)
    expected = [classify(plain, b) for b in batches]
    fused = load_classifier(model, fusion=True)
    assert torch.jit.onednn_fusion_enabled()
    # Measured: identical for the shipped int8 file, whose quantised kernels fusion leaves alone;
    # a bf16 or fp32 file would differ in the order of its float sums.
    for batch, want in zip(batches, expected):  # repeated sizes run the compiled fused graph
        assert np.allclose(classify(fused, batch), want, rtol=0, atol=1e-6)


def test_missing_model_file_is_named(tmp_path):
    with pytest.raises(ModelError, match="nope.pt: model file not found"):
        load_classifier(tmp_path / "nope.pt")


def test_corrupt_model_file_is_named(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(ModelError, match="bad.pt: not a loadable TorchScript model"):
        load_classifier(bad)


def test_unknown_detector_is_a_clear_error():
    with pytest.raises(ValueError, match="choose one of blazeface, haar"):
        SharedDetector("yolo")


@pytest.mark.parametrize("name", DETECTORS)
def test_threads_sharing_the_detector_get_the_same_boxes(astronaut, name):
    from concurrent.futures import ThreadPoolExecutor
    shared = SharedDetector(name)
    images = [np.asarray(astronaut.resize((size, size))) for size in (256, 384, 512, 640)] * 4
    alone = [shared.detect(image) for image in images]
    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(shared.detect, images)) == alone
