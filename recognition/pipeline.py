"""From upload bytes to the JSON-ready result for one image: decode, detect, crop, classify."""
import contextlib
import time

import cv2
import numpy as np

from recognition.classifier import classify
from recognition.faces import Face, clip_box, find_faces, resize_face
from recognition.images import DEFAULT_MAX_PIXELS, WORK_PIXELS, decode_reduced, image_pixels

MODES = ("faces", "whole")


def face_result(face, probs, labels):
    """One face of the response: its box, its roll and the probability of each emotion."""
    emotions = {label: float(p) for label, p in zip(labels, probs)}
    best = int(np.argmax(probs))
    return {"box": [int(v) for v in face.box], "roll": round(face.roll, 1), "emotions": emotions,
            "dominant_emotion": labels[best], "confidence": float(probs[best])}


def scaled_box(box, sx, sy, width, height):
    """A box found in a reduced image, in the full image's pixels (within width x height)."""
    x, y, w, h = box
    return clip_box((round(x * sx), round(y * sy), round(w * sx), round(h * sy)), width, height)


def recognize(data, classifier, detector, mode="faces", max_pixels=DEFAULT_MAX_PIXELS, large=contextlib.nullcontext):
    """Every face in an uploaded image with its emotions, largest face first, plus timings. An image
    over WORK_PIXELS (and within max_pixels) is decoded and searched inside large(), which may limit
    how many run at once: its arrays are the largest a request holds."""
    t0 = time.perf_counter()
    with large() if WORK_PIXELS < image_pixels(data) <= max_pixels else contextlib.nullcontext():
        rgb, (width, height) = decode_reduced(data, max_pixels)
        t1 = time.perf_counter()
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)  # FER-2013 is grey; colour only helps the detector
        if mode == "whole":
            faces = [Face((0, 0, width, height))]
            crops = resize_face(grey)[None]
        else:
            found, crops = find_faces(rgb, grey, detector)
            scale_x, scale_y = width / rgb.shape[1], height / rgb.shape[0]
            faces = [Face(scaled_box(face.box, scale_x, scale_y, width, height), face.roll) for face in found]
        del rgb, grey  # freed before large() ends, which gives freed memory back to the system
    t2 = time.perf_counter()
    probs = classify(classifier, crops)
    t3 = time.perf_counter()
    result = {
        "faces": [face_result(face, p, classifier.labels) for face, p in zip(faces, probs)],
        "image": {"width": width, "height": height},
        "mode": mode,
        "timing_ms": {"decode": round((t1 - t0) * 1e3, 2), "detect": round((t2 - t1) * 1e3, 2),
                      "classify": round((t3 - t2) * 1e3, 2)},
    }
    if not faces:
        result["message"] = "no face found; send mode=whole to classify the whole image as one face"
    return result
