"""Analyse many images and videos: what to read, the faces of each piece of work, and the rows they become.

The work is cut into units: one image, or about ten seconds of one video, and the units into tasks
(up to IMAGES_PER_TASK images, or one part of a video). Both engines (local processes and Ray
actors) run the same `Analyser` on each task: find the faces of its units (`FaceFinder.detect`),
then classify all of them in one batch (`FaceClassifier.classify`); a `Collector` turns the results
of a source's units into its rows once all of them are in.
"""
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch

from modelfile import FACE_SIZE
from recognition.classifier import classify, load_classifier
from recognition.faces import DETECTORS, BlazeFace, find_faces
from recognition.images import DEFAULT_MAX_PIXELS, ImageRejected, decode_image
from recognition.tracking import assign_tracks, smooth_tracks
from recognition.video import VIDEO_EXTENSIONS, VideoError, open_video, parts, sample_frames

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"}
PLACE = ["source", "frame", "time_s", "track", "x", "y", "w", "h"]
PART_S = 10  # seconds of video per unit: enough faces for a batch, short enough to spread a video over workers
IMAGES_PER_TASK = 16  # images a worker looks at before it classifies all of their faces in one batch


def columns(labels):
    """The output columns: where the face is, the probability of each label, and the dominant one."""
    return PLACE + list(labels) + ["dominant_emotion"]


def is_video(path):
    """Whether a file is read as a video (by its extension)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def find_sources(inputs):
    """The files to analyse: each file named, and every image and video below each folder named, in order."""
    sources = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            found = (p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS)
            sources.extend(str(p) for p in sorted(found) if p.is_file())
        else:
            sources.append(str(path))  # a missing file is reported when it is read, like a corrupt one
    return list(dict.fromkeys(sources))


@dataclass(frozen=True)
class Unit:
    """A piece of work: one image, or a range of frames of one video."""

    source: str          # as found from the inputs given: what the rows say
    path: str            # the same file, absolute: what a worker reads, whatever its working directory
    start: int = -1      # first video frame; -1: the source is an image
    stop: int = -1       # video frame after the last; -1: to the end
    frames: float = 1    # images or sampled frames expected, for the progress bar


def plan_units(sources, fps, part_s=PART_S):
    """The units of work for the sources: one per image, one per part of each video."""
    units = []
    for source in sources:
        path = str(Path(source).resolve())
        info = video_info(path) if is_video(path) else None
        if info is None:
            units.append(Unit(source, path, 0 if is_video(path) else -1))  # a bad video's worker says why
            continue
        for start, stop in parts(info, part_s):
            length = (stop or max(info.frames, start + 1)) - start
            units.append(Unit(source, path, start, stop or -1, length * min(1, fps / info.fps)))
    return units


def video_info(path):
    """A video file's VideoInfo, or None where it is missing or FFmpeg cannot open it."""
    if not Path(path).is_file():
        return None
    try:
        with open_video(path) as (_, info):
            return info
    except VideoError:
        return None


@dataclass(frozen=True)
class Job:
    """What every worker needs to know: the model, the detector and the sampling."""

    model: str
    detector: str = "blazeface"
    fps: float = 5.0
    video_tiles: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS


def video_detector(detector, tiles=False):
    """The detector for video frames, beside the photos' `detector`: BlazeFace's models shared
    (onnxruntime runs them from several threads at once) but without corner tiles unless asked,
    or a Haar cascade of its own (one is not thread-safe).

    Tiles (for photos over 1024 px) cost four more detector passes a frame; they find faces down
    to about 0.6x the size that the whole frame allows.
    """
    if not isinstance(detector, BlazeFace):
        return type(detector)(detector.settings)
    settings = detector.settings if tiles else replace(detector.settings, tile_above=sys.maxsize)
    return BlazeFace(settings, nets=(detector.full_range, detector.short_range))


def faces_in(rgb, detector):
    """(boxes (n, 4), 48x48 grey crops) of the faces in one RGB image, largest first."""
    faces, crops = find_faces(rgb, cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), detector)
    return np.reshape(np.array([face.box for face in faces], np.int64), (-1, 4)), crops


def faces_in_frames(frames, detector):
    """The faces of (frame index, time, RGB) triples as one result: frame, time_s, box and crops arrays, count."""
    found = [(index, time, *faces_in(rgb, detector)) for index, time, rgb in frames]
    return {"frame": np.array([f[0] for f in found for _ in f[2]], np.int64),
            "time_s": np.array([f[1] for f in found for _ in f[2]], np.float64),
            "box": np.concatenate([f[2] for f in found] + [np.zeros((0, 4), np.int64)]),
            "crops": np.concatenate([f[3] for f in found] + [np.zeros((0, FACE_SIZE, FACE_SIZE), np.uint8)]),
            "count": len(found)}


class FaceFinder:
    """One process's (or Ray actor's) face detectors, loaded once: finds the faces of units."""

    def __init__(self, job):
        self.job = job
        self.image_detector = DETECTORS[job.detector]()
        self.video_detector = video_detector(self.image_detector, job.video_tiles)

    def faces(self, unit):
        """The faces of one unit (see faces_in_frames); raises ImageRejected, VideoError or OSError."""
        if unit.start < 0:
            rgb = decode_image(Path(unit.path).read_bytes(), self.job.max_pixels)
            return faces_in_frames([(-1, float("nan"), rgb)], self.image_detector)
        Path(unit.path).stat()  # a missing video is an OSError, as a missing image is, not "not a video"
        stop = unit.stop if unit.stop >= 0 else None
        with open_video(unit.path) as (capture, info):
            return faces_in_frames(sample_frames(capture, info, self.job.fps, unit.start, stop), self.video_detector)

    def detect(self, unit):
        """A unit's faces, or why it could not be read: a dict with source, start, error ('' if none) and
        the arrays of faces_in_frames."""
        try:
            return {"source": unit.source, "start": unit.start, "error": "", **self.faces(unit)}
        except ImageRejected as e:
            error = e.message
        except VideoError as e:
            error = str(e)
        except OSError as e:
            error = e.strerror or type(e).__name__
        except cv2.error:
            error = "OpenCV could not process it"
        return {"source": unit.source, "start": unit.start, "error": error, **faces_in_frames([], None)}


class FaceClassifier:
    """One process's (or Ray actor's) model, loaded once: classifies the faces of many units at a time."""

    def __init__(self, job):
        # Without graph fusion: it compiles a graph for each new batch size (3 s of start-up for the
        # sizes the app warms up), and the batches here, of tens of faces, run as fast without it.
        self.classifier = load_classifier(job.model, fusion=False)

    def classify(self, results):
        """Replace the crops of each result by their probabilities, all results' faces in one batch."""
        probs = classify(self.classifier, np.concatenate([r.pop("crops") for r in results]))
        ends = np.cumsum([len(r["frame"]) for r in results])
        for result, start, end in zip(results, np.r_[0, ends[:-1]], ends):
            result["probs"] = probs[start:end]
        return results


class Analyser:
    """One process's (or Ray actor's) detectors and model, loaded once: analyses tasks, on one thread
    (processes or actors, not threads, use the cores)."""

    def __init__(self, job):
        torch.set_num_threads(1)
        cv2.setNumThreads(1)
        self.finder, self.classifier = FaceFinder(job), FaceClassifier(job)

    def run(self, task):
        """The results of a task's units: the faces of each found, then all of them classified at once."""
        return self.classifier.classify([self.finder.detect(unit) for unit in task])


def tasks(units):
    """Units grouped into tasks, in order: runs of up to IMAGES_PER_TASK images, and each part of a video alone."""
    images = []
    for unit in units:
        if unit.start < 0:
            images.append(unit)
            if len(images) < IMAGES_PER_TASK:
                continue
        if images:
            yield images
            images = []
        if unit.start >= 0:
            yield [unit]
    if images:
        yield images


def source_rows(source, results, labels, smooth=1):
    """A source's output rows from its units' results; one row with only the source where it has no face."""
    results = sorted(results, key=lambda r: r["start"])
    frame, time_s, box, probs = (np.concatenate([r[key] for r in results])
                                 for key in ("frame", "time_s", "box", "probs"))
    if not len(frame):
        return [dict.fromkeys(columns(labels)) | {"source": source}]
    video = frame[0] >= 0
    tracks = assign_tracks(time_s.tolist(), box.tolist()) if video else [None] * len(frame)
    if video and smooth > 1:
        probs = smooth_tracks(probs, tracks, smooth)
    rows = []
    for i in range(len(frame)):
        row = {"source": source, "frame": int(frame[i]) if video else None,
               "time_s": float(time_s[i]) if video else None, "track": tracks[i],
               **dict(zip("xywh", box[i].tolist())),
               **{label: round(float(p), 6) for label, p in zip(labels, probs[i])},
               "dominant_emotion": labels[int(np.argmax(probs[i]))]}
        rows.append(row)
    return rows


class Collector:
    """Gathers the units' results by source and gives back a source's rows once all of its units are in."""

    def __init__(self, units, labels, smooth=1):
        self.labels, self.smooth = labels, smooth
        self.waiting = {}
        for unit in units:
            self.waiting[unit.source] = self.waiting.get(unit.source, 0) + 1
        self.results = {}

    def add(self, result):
        """(source, rows, error) when this result completes its source, else None; rows are [] on error."""
        source = result["source"]
        self.results.setdefault(source, []).append(result)
        self.waiting[source] -= 1
        if self.waiting[source]:
            return None
        results = self.results.pop(source)
        error = next((r["error"] for r in results if r["error"]), "")
        rows = [] if error else source_rows(source, results, self.labels, self.smooth)
        return source, rows, error
