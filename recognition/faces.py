"""Find faces with OpenCV's Haar cascade and crop them the way FER-2013 frames its faces."""
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

FACE_SIZE = 48

# How FER-2013 frames a face, measured by scripts/fit_crop.py (run the same detector on
# upscaled FER-2013 validation images, fit the crop that makes the box land where it does
# in the 48x48 frame). The crop side is CROP_SCALE box widths; its centre sits CROP_SHIFT_Y
# box widths below the box centre (negative: above).
CROP_SCALE = 1.05
CROP_SHIFT_Y = 0.003


@dataclass(frozen=True)
class DetectorSettings:
    """Cascade parameters, tuned on ../shared/data/photos by scripts/detection_report.py."""

    cascade: str = "haarcascade_frontalface_alt2.xml"
    max_side: int = 512         # detect on a copy no larger than this
    scale_factor: float = 1.2
    min_neighbors: int = 3
    min_size: int = 24          # smallest face, in pixels of the downscaled copy


# Named detectors the app can be started with (FER_DETECTOR). Both measured on ../shared/data/photos
# and on the benchmark photo (README "Performance"): "fast" is OpenCV's LBP cascade, about 2x
# faster than the Haar cascade, at the price of some missed faces on group photos and portraits.
DETECTORS = {
    "accurate": DetectorSettings(),
    "fast": DetectorSettings(cascade="lbpcascade_frontalface.xml"),
}


# Where cascade files are looked up by name: our own folder (OpenCV's LBP face cascade, which
# the pip wheel leaves out), then the Haar cascades that opencv-python-headless 4.x ships.
CASCADE_DIRS = (Path(__file__).resolve().parent / "cascades", Path(cv2.data.haarcascades))


def cascade_path(name):
    """The file of a cascade named like 'haarcascade_frontalface_alt2.xml'."""
    for folder in CASCADE_DIRS:
        if (folder / name).is_file():
            return folder / name
    return CASCADE_DIRS[-1] / name


def load_detector(settings=DetectorSettings()):
    """Load the cascade the settings name."""
    path = cascade_path(settings.cascade)
    detector = cv2.CascadeClassifier(str(path))
    if detector.empty():
        raise RuntimeError(f"could not load the face cascade {path}")
    return detector


class DetectorPool:
    """One cascade per thread: a CascadeClassifier keeps scratch buffers and is not thread-safe,
    and gunicorn's gthread workers serve several requests at once."""

    def __init__(self, settings=DetectorSettings()):
        self.settings = settings
        self._local = threading.local()
        self._local.detector = load_detector(settings)  # fail at start-up, not on a request

    def get(self):
        """This thread's detector, loaded on first use."""
        if not hasattr(self._local, "detector"):
            self._local.detector = load_detector(self.settings)
        return self._local.detector


def downscale(grey, max_side):
    """(copy no larger than max_side, factor from copy to original coordinates)."""
    h, w = grey.shape
    factor = max(h, w) / max_side
    if factor <= 1:
        return grey, 1.0
    small = cv2.resize(grey, (round(w / factor), round(h / factor)), interpolation=cv2.INTER_AREA)
    return small, factor


def detect_faces(grey, detector, settings=DetectorSettings()):
    """Face boxes (x, y, w, h) in the image's own coordinates, largest first."""
    small, factor = downscale(grey, settings.max_side)
    found = detector.detectMultiScale(cv2.equalizeHist(small), scaleFactor=settings.scale_factor,
                                      minNeighbors=settings.min_neighbors,
                                      minSize=(settings.min_size, settings.min_size))
    boxes = [tuple(int(round(v * factor)) for v in box) for box in np.reshape(found, (-1, 4))]
    return sorted(boxes, key=lambda b: b[2] * b[3], reverse=True)


def crop_box(box, scale=CROP_SCALE, shift_y=CROP_SHIFT_Y):
    """The square region (x, y, side, side) that frames a detector box like FER-2013 does."""
    x, y, w, h = box
    side = w * scale
    cx, cy = x + w / 2, y + h / 2 + shift_y * w
    return (int(round(cx - side / 2)), int(round(cy - side / 2)), int(round(side)), int(round(side)))


def crop_face(grey, box):
    """A 48x48 grey crop around a detector box; borders are replicated where it leaves the image."""
    x, y, side, _ = crop_box(box)
    h, w = grey.shape
    pad = max(0, -x, -y, x + side - w, y + side - h)
    if pad:
        grey = cv2.copyMakeBorder(grey, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x, y = x + pad, y + pad
    return resize_face(grey[y:y + side, x:x + side])


def resize_face(grey):
    """Any grey image -> 48x48 with area interpolation (the whole image, for mode=whole)."""
    interpolation = cv2.INTER_AREA if min(grey.shape) >= FACE_SIZE else cv2.INTER_LINEAR
    return cv2.resize(grey, (FACE_SIZE, FACE_SIZE), interpolation=interpolation)
