"""Find faces in an RGB image and crop them the way FER-2013 frames its faces.

Two detectors with the same interface, `detector.detect(rgb) -> [(x, y, w, h), ...]` in the
image's own pixels, largest first:

- BlazeFace (the default): MediaPipe's full-range face detector, a small CNN that OpenCV's dnn
  module runs from the .tflite file in recognition/blazeface/.
- Haar: OpenCV's Haar cascade (haarcascade_frontalface_alt2), run on a grey downscaled copy.

scripts/detection_report.py compares them on ../shared/data/photos.
"""
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

FACE_SIZE = 48
BLAZEFACE_DIR = Path(__file__).resolve().parent / "blazeface"


# Each detector draws its box differently around the same face, so each has its own framing:
# the crop side is crop_scale box widths, its centre crop_shift_y box widths below the box centre
# (negative: above). Both measured by scripts/fit_crop.py, which runs the detector on upscaled
# FER-2013 validation faces and fits the crop that puts the box where it lands in the 48x48 frame.

@dataclass(frozen=True)
class BlazeFaceSettings:
    """MediaPipe's full-range BlazeFace (192x192 input, 2304 anchors at stride 4)."""

    model: str = "face_detection_full_range.tflite"
    input_size: int = 192
    stride: int = 4
    min_score: float = 0.5      # MediaPipe uses 0.6; 0.5 finds more faces with no false ones on the photo set
    nms_iou: float = 0.3
    # Photos longer than this are also searched in 4 overlapping corner tiles, each 0.6 of the
    # photo's sides, which finds faces down to about 0.6x the size the whole photo allows.
    tile_above: int = 1024
    tile_share: float = 0.6
    crop_scale: float = 1.116
    crop_shift_y: float = -0.052


@dataclass(frozen=True)
class HaarSettings:
    """Cascade parameters, tuned on ../shared/data/photos by scripts/detection_report.py."""

    cascade: str = "haarcascade_frontalface_alt2.xml"
    max_side: int = 512         # detect on a copy no larger than this
    scale_factor: float = 1.2
    min_neighbors: int = 3
    min_size: int = 24          # smallest face, in pixels of the downscaled copy
    crop_scale: float = 1.05
    crop_shift_y: float = 0.007


def by_size(boxes):
    """Boxes as int tuples, largest first."""
    boxes = [tuple(int(round(v)) for v in box) for box in boxes]
    return sorted(boxes, key=lambda b: b[2] * b[3], reverse=True)


class BlazeFace:
    """One detector instance; not thread-safe (a cv2.dnn.Net keeps its buffers): see SharedDetector."""

    def __init__(self, settings=BlazeFaceSettings()):
        self.settings = settings
        path = BLAZEFACE_DIR / settings.model
        if not path.is_file():
            raise RuntimeError(f"face detector model not found: {path}")
        self.net = cv2.dnn.readNetFromTFLite(str(path))
        self.outputs = self.net.getUnconnectedOutLayersNames()
        cells = settings.input_size // settings.stride
        ys, xs = np.mgrid[0:cells, 0:cells]
        self.anchors = (np.stack([xs, ys], -1).reshape(-1, 2) + 0.5) * settings.stride

    def detect(self, rgb):
        """Face boxes (x, y, w, h) in the image's own coordinates, largest first."""
        s = self.settings
        found, scores = self.candidates(rgb)
        h, w = rgb.shape[:2]
        if max(h, w) > s.tile_above:
            for x0, y0, x1, y1 in tiles(w, h, s.tile_share):
                tile_found, tile_scores = self.candidates(rgb[y0:y1, x0:x1])
                found = np.concatenate([found, tile_found + [x0, y0, 0, 0]])
                scores = np.concatenate([scores, tile_scores])
        if not len(found):
            return []
        chosen = cv2.dnn.NMSBoxes(found.tolist(), scores.tolist(), s.min_score, s.nms_iou)
        return by_size(found[np.reshape(chosen, -1)])

    def candidates(self, rgb):
        """(boxes (n, 4) in the image's coordinates, scores (n,)) of the anchors above min_score."""
        s = self.settings
        blob, scale, pad_x, pad_y = letterbox(rgb, s.input_size)
        self.net.setInput(blob)
        scores, boxes = sorted(self.net.forward(self.outputs), key=lambda out: out.shape[-1])  # (1, 2304, 1|16)
        scores = 1 / (1 + np.exp(-np.clip(scores.reshape(-1).astype(np.float64), -50, 50)))
        # Per anchor: centre offset (x, y) and size (w, h) in input pixels, then 6 keypoints (unused).
        raw = boxes.reshape(-1, 16)
        keep = (scores >= s.min_score) & (raw[:, 2:4] > 1).all(1)
        raw, centres = raw[keep], self.anchors[keep]
        w, h = raw[:, 2], raw[:, 3]
        x = centres[:, 0] + raw[:, 0] - w / 2 - pad_x
        y = centres[:, 1] + raw[:, 1] - h / 2 - pad_y
        return np.stack([x, y, w, h], 1) / scale, scores[keep]


def tiles(width, height, share):
    """The 4 corner tiles (x0, y0, x1, y1), each `share` of the width and height, overlapping in the middle."""
    tile_w, tile_h = round(width * share), round(height * share)
    return [(x, y, x + tile_w, y + tile_h) for y in (0, height - tile_h) for x in (0, width - tile_w)]


def letterbox(rgb, size):
    """(NCHW float blob in [-1, 1] of the image fitted into size x size, scale, pad x, pad y)."""
    h, w = rgb.shape[:2]
    scale = size / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    canvas = np.zeros((size, size, 3), np.uint8)
    pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
    canvas[pad_y:pad_y + new_h, pad_x:pad_x + new_w] = cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_AREA)
    blob = cv2.dnn.blobFromImage(canvas, scalefactor=1 / 127.5, mean=(127.5, 127.5, 127.5))
    return blob, scale, pad_x, pad_y


class HaarCascade:
    """One cascade instance; not thread-safe (CascadeClassifier keeps scratch buffers): see SharedDetector."""

    def __init__(self, settings=HaarSettings()):
        self.settings = settings
        path = Path(cv2.data.haarcascades) / settings.cascade
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise RuntimeError(f"could not load the face cascade {path}")

    def detect(self, rgb):
        """Face boxes (x, y, w, h) in the image's own coordinates, largest first."""
        s = self.settings
        small, factor = downscale(rgb, s.max_side)
        grey = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
        found = self.cascade.detectMultiScale(grey, scaleFactor=s.scale_factor, minNeighbors=s.min_neighbors,
                                              minSize=(s.min_size, s.min_size))
        return by_size(np.reshape(found, (-1, 4)) * factor)


def downscale(image, max_side):
    """(copy no larger than max_side, factor from copy to original coordinates)."""
    h, w = image.shape[:2]
    factor = max(h, w) / max_side
    if factor <= 1:
        return image, 1.0
    small = cv2.resize(image, (round(w / factor), round(h / factor)), interpolation=cv2.INTER_AREA)
    return small, factor


# The detectors the app can be started with (FER_DETECTOR), default first.
DETECTORS = {"blazeface": BlazeFace, "haar": HaarCascade}


class SharedDetector:
    """The process's one detector, used by one thread at a time. Neither a cv2.dnn.Net nor a
    CascadeClassifier is thread-safe; a copy per gthread thread would cost about 10 MB each, and
    OpenCV already spreads a single detection over the cores."""

    def __init__(self, name="blazeface"):
        if name not in DETECTORS:
            raise ValueError(f"unknown face detector {name!r}; choose one of {', '.join(DETECTORS)}")
        self.name = name
        self.settings = DETECTORS[name]().settings  # loads it once: fail at start-up, not on a request
        self._detector = None
        self._lock = threading.Lock()

    def detect(self, rgb):
        """Face boxes (x, y, w, h), largest first, as the detector's own detect()."""
        with self._lock:
            # Built on first use, so that it belongs to the gunicorn worker rather than to the
            # process that forked it.
            if self._detector is None:
                self._detector = DETECTORS[self.name]()
            return self._detector.detect(rgb)


def crop_box(box, scale, shift_y):
    """The square region (x, y, side, side) that frames a detector box like FER-2013 does."""
    x, y, w, h = box
    side = w * scale
    cx, cy = x + w / 2, y + h / 2 + shift_y * w
    return (int(round(cx - side / 2)), int(round(cy - side / 2)), int(round(side)), int(round(side)))


def crop_face(grey, box, settings):
    """A 48x48 grey crop around a detector box, framed for that detector; borders are replicated
    where the crop leaves the image."""
    x, y, side, _ = crop_box(box, settings.crop_scale, settings.crop_shift_y)
    h, w = grey.shape
    pad = max(0, -x, -y, x + side - w, y + side - h)
    if pad:
        grey = cv2.copyMakeBorder(grey, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x, y = x + pad, y + pad
    return resize_face(grey[y:y + side, x:x + side])


def clip_box(box, width, height):
    """The part of a box inside the image (a face at the border can stick out of it)."""
    x, y, w, h = box
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(width, x + w), min(height, y + h)
    return (x0, y0, max(0, x1 - x0), max(0, y1 - y0))


def resize_face(grey):
    """Any grey image -> 48x48 with area interpolation (the whole image, for mode=whole)."""
    interpolation = cv2.INTER_AREA if min(grey.shape) >= FACE_SIZE else cv2.INTER_LINEAR
    return cv2.resize(grey, (FACE_SIZE, FACE_SIZE), interpolation=interpolation)
