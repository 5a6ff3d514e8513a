"""Find faces in an RGB image and crop them the way FER-2013 frames its faces.

Two detectors with the same interface: `detector.faces(rgb) -> [Face(box, roll), ...]` in the
image's own pixels, largest first (`detector.detect(rgb)` gives the boxes alone):

- BlazeFace (the default): MediaPipe's full-range face detector, a small CNN that onnxruntime
  runs from recognition/blazeface/ (the .tflite files converted to ONNX); where it finds nothing,
  the short-range model looks for a close-up. Its eye keypoints give each face's roll.
- Haar: OpenCV's Haar cascade (haarcascade_frontalface_alt2), run on a grey downscaled copy; roll 0.

scripts/detection_report.py compares them on ../shared/data/photos; scripts/benchmark_faces.py
measures close-ups, tilted heads and the framing loss.
"""
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import onnxruntime

from modelfile import FACE_SIZE

BLAZEFACE_DIR = Path(__file__).resolve().parent / "blazeface"


class DetectorError(RuntimeError):
    """A detector's model file is missing or does not load."""


class Face(NamedTuple):
    """A face found: its box (x, y, w, h) and its roll, the degrees its eye line turns clockwise from level."""

    box: tuple
    roll: float = 0.0


@dataclass(frozen=True)
class BlazeModel:
    """One BlazeFace model: its files, its square input, its anchor grids, and where its box sits on a face."""

    name: str                   # <name>.tflite is MediaPipe's file, <name>.onnx the one the app runs
    input_size: int
    strides: tuple              # one anchor grid per stride,
    anchors_per_cell: tuple     # with this many anchors in each cell
    # The full-range model's box for the same face, from this model's: width x box_scale, centre
    # moved by box_shift of this box's width; so one crop framing serves both models (measured
    # by scripts/fit_crop.py on the FER-2013 validation faces both find).
    box_scale: float = 1.0
    box_shift: tuple = (0.0, 0.0)

    @property
    def onnx(self):
        """The file the app runs."""
        return f"{self.name}.onnx"

    @property
    def tflite(self):
        """MediaPipe's file, which the .onnx was converted from."""
        return f"{self.name}.tflite"


FULL_RANGE = BlazeModel("face_detection_full_range", 192, (4,), (1,))                # 2304 anchors
SHORT_RANGE = BlazeModel("face_detection_short_range", 128, (8, 16), (2, 6), 1.065, (-0.010, -0.060))  # 896


# Each detector draws its box differently around the same face, so each has its own framing:
# the crop side is crop_scale box widths, its centre crop_shift_y box widths below the box centre
# (negative: above), along the face's own vertical. Both measured by scripts/fit_crop.py, which runs
# the detector on upscaled FER-2013 validation faces and fits the crop that puts the box where it
# lands in the 48x48 frame.

@dataclass(frozen=True)
class BlazeFaceSettings:
    """MediaPipe's full-range BlazeFace, and its short-range model for close-ups."""

    min_score: float = 0.5      # MediaPipe uses 0.6; 0.5 finds more faces with no false ones on the photo set
    nms_iou: float = 0.3
    # Photos longer than this are also searched in 4 overlapping corner tiles, each 0.6 of the
    # photo's sides, which finds faces down to about 0.6x the size the whole photo allows.
    tile_above: int = 1024
    tile_share: float = 0.6
    # Where the full-range model finds nothing, the short-range one (made for faces near the camera)
    # looks at the photo, then at copies with close_up_pads of its longer side added on every side,
    # for faces cut by the edges; last, the full-range model looks at the copy padded by
    # padded_full_range_pad, where a close-up becomes a face of the size it was made for. Animals and
    # textures fool them more often, so they keep only faces at least close_up_min_width of the
    # photo's shorter side wide whose score, averaged with the mirror image's on the same face,
    # reaches close_up_min_score (padded_full_range_min_score for the last look): 0.6 found 4-5
    # points more FER-2013 close-ups, and 10 more faces, mostly dogs', in close-ups without one
    # (scripts/benchmark_faces.py; the pads and the last look: docs/experiments.md).
    close_up: bool = True
    close_up_pads: tuple = (0.0, 0.3, 0.5, 0.8)
    close_up_min_width: float = 0.25
    close_up_min_score: float = 0.7
    padded_full_range_pad: float = 0.5
    padded_full_range_min_score: float = 0.5
    # Last, the short-range model looks at the photo padded by turned_pad and turned by each of
    # close_up_turns degrees (counter-clockwise as seen), for heads rolled past what it was trained on
    # (a face on a pillow, a head on a hand): +-45 found 10 more of 1000 FER-2013 close-ups with no
    # new box on the images without a face; +-30, +-60 and +-90 instead found 15 and 4 cats and dogs.
    close_up_turns: tuple = (45, -45)
    turned_pad: float = 0.3
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


def onnx_session(path):
    """An onnxruntime session on one thread (the processes use the cores), logging errors only.

    Keep it to one thread: a session then runs in the calling thread and has no thread pool, so one
    made before gunicorn forks works in every worker, which share its weights (a pool's threads would
    not survive the fork: onnxruntime issue #9800). Its run() may be called from several threads at
    once (tests/test_faces.py checks both in a forked child).
    """
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's own errors (a damaged file) derive from Exception alone
        raise DetectorError(f"face detector model {path} does not load: {str(e).splitlines()[0][:160]}") from None


class BlazeNet:
    """One BlazeFace model run by onnxruntime."""

    def __init__(self, model):
        path = BLAZEFACE_DIR / model.onnx
        if not path.is_file():
            raise DetectorError(f"face detector model not found: {path}")
        self.model = model
        self.session = onnx_session(path)
        self.input = self.session.get_inputs()[0].name
        self.anchors = anchor_centres(model)

    def forward(self, blob):
        """The model's raw outputs for an NCHW blob: (scores (1, anchors, 1), boxes and keypoints (1, anchors, 16))."""
        return sorted(self.session.run(None, {self.input: blob}), key=lambda out: out.shape[-1])

    def candidates(self, rgb, min_score):
        """(boxes (n, 4), eyes (n, 2, 2), scores (n,)) in the image's pixels, of the anchors above min_score."""
        m = self.model
        blob, scale, pad_x, pad_y = letterbox(rgb, m.input_size)
        scores, raw = self.forward(blob)
        scores = 1 / (1 + np.exp(-np.clip(scores.reshape(-1).astype(np.float64), -50, 50)))
        # Per anchor, in input pixels: the box centre's offset from the anchor (x, y), its size (w, h),
        # then 6 keypoints (x, y) as offsets: the face's right eye, its left eye, nose, mouth, ears.
        raw = raw.reshape(-1, 16).astype(np.float64)
        keep = (scores >= min_score) & (raw[:, 2:4] > 1).all(1)
        raw, anchors = raw[keep], self.anchors[keep]
        centres = anchors + raw[:, 0:2] + np.multiply(m.box_shift, raw[:, 2:3])
        sizes = raw[:, 2:4] * m.box_scale
        boxes = np.concatenate([centres - sizes / 2 - [pad_x, pad_y], sizes], 1) / scale
        eyes = (anchors[:, None] + raw[:, 4:8].reshape(-1, 2, 2) - [pad_x, pad_y]) / scale
        return boxes, eyes, scores[keep]


def anchor_centres(model):
    """(anchors, 2) anchor centres in input pixels, in the model's output order: grid, row, column, anchor."""
    grids = []
    for stride, count in zip(model.strides, model.anchors_per_cell):
        cells = model.input_size // stride
        ys, xs = np.mgrid[0:cells, 0:cells]
        grids.append(np.repeat((np.stack([xs, ys], -1).reshape(-1, 2) + 0.5) * stride, count, axis=0))
    return np.concatenate(grids)


class BlazeFace:
    """The BlazeFace detector (onnxruntime sessions may run in several threads; the app's SharedDetector
    runs one detection at a time all the same)."""

    def __init__(self, settings=BlazeFaceSettings(), nets=None):
        """nets: (full-range, short-range or None) BlazeNets to share with another BlazeFace, else loaded."""
        self.settings = settings
        full_range, short_range = nets or (None, None)
        self.full_range = full_range or BlazeNet(FULL_RANGE)
        self.short_range = (short_range or BlazeNet(SHORT_RANGE)) if settings.close_up else None

    def detect(self, rgb):
        """Face boxes (x, y, w, h) in the image's own coordinates, largest first."""
        return [face.box for face in self.faces(rgb)]

    def faces(self, rgb):
        """Faces (box, roll) in the image's own coordinates, largest first."""
        s = self.settings
        found = self.full_range.candidates(rgb, s.min_score)
        h, w = rgb.shape[:2]
        if max(h, w) > s.tile_above:
            for x0, y0, x1, y1 in tiles(w, h, s.tile_share):
                found = joined(found, moved(self.full_range.candidates(rgb[y0:y1, x0:x1], s.min_score), x0, y0))
        faces = select(*found, s.min_score, s.nms_iou)
        if not faces and self.short_range:
            return self.close_ups(rgb)
        return faces

    def close_ups(self, rgb):
        """Faces that fill much of the photo: the short-range model in the photo and padded copies, then
        the full-range model in a padded copy; the first look that keeps a face wins."""
        s = self.settings
        small, factor = downscale(rgb, 2 * SHORT_RANGE.input_size)  # all it needs, so large photos cost no more
        looks = [(self.short_range, pad, s.close_up_min_score) for pad in s.close_up_pads]
        looks.append((self.full_range, s.padded_full_range_pad, s.padded_full_range_min_score))
        for net, pad, min_score in looks:
            faces = self.mirror_checked(net, small, factor, round(max(small.shape[:2]) * pad), min_score)
            if faces:
                return faces
        for angle in s.close_up_turns:
            faces = self.turned(small, factor, angle)
            if faces:
                return faces
        return []

    def turned(self, small, factor, angle):
        """Close-ups the short-range model finds in `small` (the photo downscaled by `factor`), padded and
        turned by `angle` degrees counter-clockwise; boxes in the photo's pixels, rolls in the photo's frame.
        A face must be close_up_min_width of the padded copy's shorter side wide (0.4 of a square photo's side)."""
        s = self.settings
        pad = round(max(small.shape[:2]) * s.turned_pad)
        image = cv2.copyMakeBorder(small, pad, pad, pad, pad, cv2.BORDER_CONSTANT)
        h, w = image.shape[:2]
        turn = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        faces = self.mirror_checked(self.short_range, cv2.warpAffine(image, turn, (w, h)), 1.0, 0, s.close_up_min_score)
        back = cv2.invertAffineTransform(turn)
        upright = []
        for face in faces:
            x, y, bw, bh = face.box
            cx, cy = back @ [x + bw / 2, y + bh / 2, 1.0] - pad
            box = tuple(int(round(v * factor)) for v in (cx - bw / 2, cy - bh / 2, bw, bh))
            upright.append(Face(box, (face.roll + angle + 180) % 360 - 180))
        return upright

    def mirror_checked(self, net, small, factor, pad, min_score):
        """Faces wide enough in `small` (the photo downscaled by `factor`) padded by `pad` pixels, each
        scored by the mean of its score and the mirror image's on the same face, kept at min_score;
        boxes in the photo's pixels."""
        s = self.settings
        h, w = small.shape[:2]
        image = cv2.copyMakeBorder(small, pad, pad, pad, pad, cv2.BORDER_CONSTANT)
        boxes, eyes, scores = net.candidates(image, s.min_score)
        wide = boxes[:, 2] >= s.close_up_min_width * min(h, w)
        if not wide.any():
            return []
        boxes, eyes, scores = boxes[wide], eyes[wide], scores[wide]
        mirrored, _, mirrored_scores = net.candidates(image[:, ::-1], s.min_score)
        mirrored[:, 0] = image.shape[1] - mirrored[:, 0] - mirrored[:, 2]
        scores = (scores + best_overlapping(boxes, mirrored, mirrored_scores)) / 2
        return select(*moved((boxes * factor, eyes * factor, scores), -pad * factor, -pad * factor), min_score, s.nms_iou)


def moved(found, dx, dy):
    """Candidates (boxes, eyes, scores) moved by (dx, dy) pixels."""
    boxes, eyes, scores = found
    return boxes + [dx, dy, 0, 0], eyes + [dx, dy], scores


def best_overlapping(boxes, others, scores):
    """For each box, the best score among the other boxes that cover the same face (IoU >= 0.5), else 0."""
    if not len(boxes) or not len(others):
        return np.zeros(len(boxes))
    a, b = boxes[:, None], others[None]
    w = np.clip(np.minimum(a[..., 0] + a[..., 2], b[..., 0] + b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    h = np.clip(np.minimum(a[..., 1] + a[..., 3], b[..., 1] + b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    iou = w * h / (a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - w * h)
    return np.where(iou >= 0.5, scores[None], 0).max(1)


def joined(a, b):
    """Two sets of candidates as one."""
    return tuple(np.concatenate([x, y]) for x, y in zip(a, b))


def select(boxes, eyes, scores, min_score, nms_iou):
    """Faces left by non-maximum suppression, largest first; a box mostly inside a larger face is
    dropped too (the short-range model sometimes sees a face in an eye or a mouth)."""
    if not len(boxes):
        return []
    chosen = np.reshape(cv2.dnn.NMSBoxes(boxes.tolist(), scores.tolist(), min_score, nms_iou), -1)
    faces = sorted((Face(tuple(int(round(v)) for v in boxes[i]), eye_roll(eyes[i])) for i in chosen),
                   key=lambda f: f.box[2] * f.box[3], reverse=True)
    kept = []
    for face in faces:
        if all(2 * overlap(face.box, larger.box) <= face.box[2] * face.box[3] for larger in kept):
            kept.append(face)
    return kept


def overlap(a, b):
    """Area shared by two (x, y, w, h) boxes."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(0, w) * max(0, h)


def eye_roll(eyes):
    """Degrees the line from the face's right eye to its left eye turns clockwise from level (y points down)."""
    (right_x, right_y), (left_x, left_y) = eyes
    return float(np.degrees(np.arctan2(left_y - right_y, left_x - right_x)))


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
    canvas[pad_y:pad_y + new_h, pad_x:pad_x + new_w] = area_resize(rgb, (new_w, new_h))
    blob = cv2.dnn.blobFromImage(canvas, scalefactor=1 / 127.5, mean=(127.5, 127.5, 127.5))
    return blob, scale, pad_x, pad_y


class HaarCascade:
    """One cascade instance; not thread-safe (CascadeClassifier keeps scratch buffers): see SharedDetector."""

    def __init__(self, settings=HaarSettings()):
        self.settings = settings
        path = Path(cv2.data.haarcascades) / settings.cascade
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise DetectorError(f"could not load the face cascade {path}")

    def faces(self, rgb):
        """Faces (box, roll 0: the cascade finds no eyes) in the image's own coordinates, largest first."""
        return [Face(box) for box in self.detect(rgb)]

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
    return area_resize(image, (max(1, round(w / factor)), max(1, round(h / factor)))), factor


def area_resize(image, size):
    """The image shrunk to size (width, height) by area averaging, halved first while both its sides are
    even and at least twice the target's. OpenCV averages exact halves fast but other ratios slowly:
    a 1280x720 frame to 192x108 took 3.4 ms directly, 0.8 ms this way (one thread), and the result
    is within about a grey level of the direct one (tests/test_faces.py)."""
    width, height = size
    while True:
        h, w = image.shape[:2]
        if w < 2 * width or h < 2 * height or w % 2 or h % 2:
            return cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        image = cv2.resize(image, (w // 2, h // 2), interpolation=cv2.INTER_AREA)


# The detectors the app can be started with (FER_DETECTOR), default first.
DETECTORS = {"blazeface": BlazeFace, "haar": HaarCascade}


class SharedDetector:
    """The process's one detector, used by one thread at a time. A CascadeClassifier is not
    thread-safe, and a copy per gthread thread would cost memory; a detection runs on one thread
    (onnxruntime's sessions, OpenCV's resizing: gunicorn.conf.py), so the cores go to the workers,
    and a worker's threads gain nothing by detecting at once."""

    def __init__(self, name="blazeface"):
        if name not in DETECTORS:
            raise ValueError(f"unknown face detector {name!r}; choose one of {', '.join(DETECTORS)}")
        self.name = name
        # Loaded now: a missing file fails at start-up, not on a request, and under gunicorn's
        # preload_app the workers share the loaded models with the master (onnx_session). Also read
        # by detectors derived from it (recognition.batch.video_detector), which do not take the lock.
        self.detector = DETECTORS[name]()
        self.settings = self.detector.settings
        self._lock = threading.Lock()

    def detect(self, rgb):
        """Face boxes (x, y, w, h), largest first, as the detector's own detect()."""
        return [face.box for face in self.faces(rgb)]

    def faces(self, rgb):
        """Faces (box, roll), largest first, as the detector's own faces()."""
        with self._lock:
            return self.detector.faces(rgb)


def find_faces(rgb, grey, detector):
    """(faces with their boxes clipped to the image, 48x48 grey crops turned level) of every face
    the detector finds, largest first."""
    faces = detector.faces(rgb)
    crops = (np.stack([crop_face(grey, face.box, detector.settings, face.roll) for face in faces]) if faces
             else np.zeros((0, FACE_SIZE, FACE_SIZE), np.uint8))
    height, width = grey.shape
    return [Face(clip_box(face.box, width, height), face.roll) for face in faces], crops


def crop_box(box, scale, shift_y):
    """The square region (x, y, side, side) that frames an upright face's detector box like FER-2013 does."""
    x, y, w, h = box
    side = w * scale
    cx, cy = x + w / 2, y + h / 2 + shift_y * w
    return (int(round(cx - side / 2)), int(round(cy - side / 2)), int(round(side)), int(round(side)))


def crop_face(grey, box, settings, roll=0.0):
    """A 48x48 grey crop around a detector box, framed for that detector and turned by the face's
    roll so that its eyes are level; borders are replicated where the crop leaves the image."""
    x, y, side, _ = crop_box(box, settings.crop_scale, settings.crop_shift_y)
    bx, by, bw, bh = box
    # Turn the image about the box centre until the face is upright; the box keeps its centre, so
    # the upright framing applies. With no roll this copies the pixels of the square exactly.
    turn = cv2.getRotationMatrix2D((bx + bw / 2, by + bh / 2), roll, 1.0)
    turn[:, 2] -= (x, y)
    square = cv2.warpAffine(grey, turn, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return resize_face(square)


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
