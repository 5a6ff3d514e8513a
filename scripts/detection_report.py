"""Face detection on ../shared/data/photos: faces found against the manifest, false detections, time.

    python -m scripts.detection_report --photos ../shared/data/photos

Compares detector settings side by side: for each, the photos whose count matches the
manifest, faces found / expected, detections on the photos with no usable face, recall and
precision at IoU >= 0.3 on the group photos with ground-truth boxes, and milliseconds per photo.
Then the smallest face each finds: scikit-image's astronaut, shrunk step by step, on a
2000x1500 grey canvas.
"""
import argparse
import csv
import re
import time
from pathlib import Path

import cv2
import numpy as np

from recognition.faces import BlazeFace, BlazeFaceSettings, HaarCascade, HaarSettings
from recognition.images import decode_image

HAAR_DEFAULT = "haarcascade_frontalface_default.xml"


class OnGrey:
    """A detector that sees the photo without its colour."""

    def __init__(self, detector):
        self.detector = detector

    def detect(self, rgb):
        return self.detector.detect(cv2.cvtColor(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB))


def variants():
    """{name: detector} of the settings compared, the app's default first."""
    return {
        "blazeface score 0.5 (default)": BlazeFace(),
        "blazeface without close-ups (before)": BlazeFace(BlazeFaceSettings(close_up=False)),
        "blazeface close-ups at score 0.6": BlazeFace(BlazeFaceSettings(close_up_min_score=0.6)),
        "blazeface without tiles": BlazeFace(BlazeFaceSettings(tile_above=100_000)),
        "blazeface tiles above 640 px": BlazeFace(BlazeFaceSettings(tile_above=640)),
        "blazeface score 0.6 (MediaPipe's)": BlazeFace(BlazeFaceSettings(min_score=0.6)),
        "blazeface score 0.4": BlazeFace(BlazeFaceSettings(min_score=0.4)),
        "blazeface on the grey photo": OnGrey(BlazeFace()),
        "haar alt2 sf1.2 n3 m24 512 (haar)": HaarCascade(),
        "haar alt2 sf1.1 n3 m20 640": HaarCascade(HaarSettings(scale_factor=1.1, min_size=20, max_side=640)),
        "haar alt2 sf1.2 n3 m30 640": HaarCascade(HaarSettings(min_size=30, max_side=640)),
        "haar alt2 sf1.2 n3 m24 480": HaarCascade(HaarSettings(max_side=480)),
        "haar alt2 sf1.3 n3 m24 512": HaarCascade(HaarSettings(scale_factor=1.3)),
        "haar default sf1.1 n5 m20 640": HaarCascade(HaarSettings(cascade=HAAR_DEFAULT, scale_factor=1.1,
                                                                  min_neighbors=5, min_size=20, max_side=640)),
        "haar alt sf1.2 n2 m24 512": HaarCascade(HaarSettings(cascade="haarcascade_frontalface_alt.xml", min_neighbors=2)),
    }


def iou(a, b):
    """Intersection over union of two (x, y, w, h) boxes."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0, min(ay + ah, by + bh) - max(ay, by))
    return w * h / (aw * ah + bw * bh - w * h)


def ground_truth(notes):
    """The annotated (x, y, w, h) boxes in a manifest note, or None."""
    found = re.search(r"\(x,y,w,h\):\s*([\d, ]+)", notes)
    return [tuple(map(int, b.split(","))) for b in found.group(1).split()] if found else None


def photo_set(folder):
    """(manifest rows, {file: RGB array}) of the photo set in `folder` (its manifest.csv and photos)."""
    with open(Path(folder) / "manifest.csv", newline="") as manifest:
        rows = list(csv.DictReader(manifest))
    return rows, {r["file"]: decode_image((Path(folder) / r["file"]).read_bytes()) for r in rows}


def score(detector, rows, images, verbose=False):
    """A detector's figures on the photo set: photos exact, faces found and expected on photos with
    faces, boxes on photos without one, ground-truth matches, boxes and faces, and seconds in all."""
    counts = dict.fromkeys(["exact", "found", "expected", "false", "matched", "boxes", "truth"], 0)
    seconds = 0.0
    for r in rows:
        t0 = time.perf_counter()
        boxes = detector.detect(images[r["file"]])
        seconds += time.perf_counter() - t0
        expected = int(re.match(r"~?(\d+)", r["expected_faces"]).group(1))
        if expected == 0:
            counts["false"] += len(boxes)
        else:
            counts["found"] += len(boxes)
            counts["expected"] += expected
        counts["exact"] += len(boxes) == expected
        truth = ground_truth(r["notes"])
        if truth:
            counts["truth"] += len(truth)
            counts["boxes"] += len(boxes)
            counts["matched"] += sum(any(iou(t, b) >= 0.3 for b in boxes) for t in truth)
        if verbose:
            print(f"   {r['file']:32s} expected {r['expected_faces']:>16s} found {len(boxes)}")
    return counts, seconds


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--photos", default="../shared/data/photos", help="folder with manifest.csv (default: ../shared/data/photos)")
    p.add_argument("--verbose", action="store_true", help="print every photo for the first variant (default: off)")
    args = p.parse_args()
    rows, images = photo_set(args.photos)
    print(f"{'variant':36s} {'exact':>6s} {'found/expected':>15s} {'false on 0-face':>16s} {'GT recall':>10s} {'GT precision':>13s} {'ms/photo':>9s}")
    detectors = variants()
    for i, (name, detector) in enumerate(detectors.items()):
        c, seconds = score(detector, rows, images, verbose=args.verbose and i == 0)
        print(f"{name:36s} {c['exact']:>3d}/{len(rows):<2d} {c['found']:>7d}/{c['expected']:<7d} {c['false']:>16d} "
              f"{c['matched'] / c['truth']:>10.2f} {c['matched'] / max(c['boxes'], 1):>13.2f} {seconds / len(rows) * 1e3:>9.1f}")
    print("\nsmallest face found on a 2000x1500 canvas (of 200, 175, ... 40 px):")
    for name, detector in detectors.items():
        width = smallest_face(detector)
        print(f"{name:36s} {f'{width} px' if width else 'none'}")


def smallest_face(detector, widths=(200, 175, 150, 125, 110, 100, 90, 80, 70, 60, 50, 40)):
    """Width in pixels of the smallest astronaut face found on a 2000x1500 canvas, or None."""
    from skimage import data
    astronaut = data.astronaut()  # her face is about 100 px wide in the 512x512 photo
    smallest = None
    for width in widths:
        scale = width / 100
        photo = cv2.resize(astronaut, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        canvas = np.full((1500, 2000, 3), 120, np.uint8)
        canvas[100:100 + photo.shape[0], 300:300 + photo.shape[1]] = photo
        face_x = 300 + 215 * scale  # the face's centre
        if any(abs(x + w / 2 - face_x) < 50 * scale for x, y, w, h in detector.detect(canvas)):
            smallest = width
    return smallest


if __name__ == "__main__":
    main()
