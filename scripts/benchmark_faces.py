"""Faces found and framed where uploads make it hard: close-ups, tilted heads, no face at all.

    python -m scripts.benchmark_faces                  # 25 minutes on 2 busy cores
    python -m scripts.benchmark_faces --faces 200      # a quicker look
    python -m scripts.benchmark_faces --speed-only     # detect() times alone, 2 minutes

Sets made from data at hand (../shared), the same on every run:

- close-up: FER-2013 PublicTest faces upscaled to 200-400 px, filling the frame (forehead and chin
  cut), and the same with a plain border of 5-30% of their side in a random colour;
- tilt: the faces upscaled to 150-250 px in a canvas twice their side, turned by 0, +-10, +-20, +-30
  degrees (positive: clockwise as seen);
- group crops: a square of 1-1.3x each ground-truth box of the shared group photos, upscaled to
  200-400 px;
- no face: the shared photos without a usable face, scikit-image photos without a human face
  (a cat, a coffee cup, ...), and 20 random close-up crops of each.

For each detector variant: faces found, extra boxes (false detections), box agreement (IoU of
the app's crop square with the face's 48x48 frame, or of the box with the ground truth), and the
served model's accuracy on the app's crops against its accuracy on the 48x48 originals
("framing loss", in points, on the faces found; "end to end" counts a missed face as wrong).
Then detect() times on three photos for each detector, interleaved.
"""
import argparse
import csv
import re
import time
from pathlib import Path

import cv2
import numpy as np

from modelfile import DEFAULT_PATH
from recognition.classifier import classify, load_classifier
from recognition.faces import BlazeFace, BlazeFaceSettings, crop_box, crop_face
from recognition.images import decode_image
from scripts.detection_report import ground_truth, iou
from training.data import DEFAULT_DATA, load_dataset

ROOT = Path(__file__).resolve().parent.parent

ANGLES = (0, -10, 10, -20, 20, -30, 30)
NO_FACE_SAMPLES = ("coffee", "chelsea", "cat", "rocket", "coins", "hubble_deep_field", "moon", "page", "text",
                   "brick", "grass", "gravel", "immunohistochemistry", "logo", "clock", "cell", "retina",
                   "colorwheel", "stereo_motorcycle")


def as_rgb(image):
    """A grey or RGB(A) uint8 array (or the first of a pair) as RGB."""
    image = np.asarray(image[0] if isinstance(image, tuple) else image)
    return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else np.ascontiguousarray(image[..., :3])


def fer_sets(images, rng):
    """(set name, face index, RGB image, the face's frame (centre x, centre y, side, roll)) for every face."""
    for i, face in enumerate(images):
        side = int(rng.integers(200, 401))
        big = as_rgb(cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC))
        yield "close-up", i, big, (side / 2, side / 2, side, 0.0)
        border = int(round(side * rng.uniform(0.05, 0.3)))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        framed = cv2.copyMakeBorder(big, *[border] * 4, cv2.BORDER_CONSTANT, value=colour)
        yield "close-up, border", i, framed, (side / 2 + border, side / 2 + border, side, 0.0)
        side = int(rng.integers(150, 251))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        canvas = cv2.copyMakeBorder(as_rgb(cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)),
                                    *[side // 2] * 4, cv2.BORDER_CONSTANT, value=colour)
        centre = canvas.shape[0] / 2
        for angle in ANGLES:
            turn = cv2.getRotationMatrix2D((centre, centre), -angle, 1.0)
            tilted = cv2.warpAffine(canvas, turn, canvas.shape[1::-1], borderMode=cv2.BORDER_CONSTANT, borderValue=colour)
            yield f"tilt {angle:+d}", i, tilted, (centre, centre, side, float(angle))


def photo_sets(photos, rng):
    """('group crop', ..., the ground-truth box in the crop) and ('no face', ..., None) images."""
    from skimage import data
    rows = list(csv.DictReader(open(Path(photos) / "manifest.csv")))
    no_face = []
    for r in rows:
        rgb = decode_image((Path(photos) / r["file"]).read_bytes())
        if re.match(r"~?(\d+)", r["expected_faces"]).group(1) == "0":
            no_face.append((r["file"], rgb))
        for k, (x, y, w, h) in enumerate(ground_truth(r["notes"]) or []):
            side = int(round(rng.uniform(1.0, 1.3) * max(w, h)))
            x0, y0 = int(round(x + w / 2 - side / 2)), int(round(y + h / 2 - side / 2))
            padded = cv2.copyMakeBorder(rgb, *[side] * 4, cv2.BORDER_REPLICATE)
            out = int(rng.integers(200, 401))
            crop = cv2.resize(padded[y0 + side:y0 + 2 * side, x0 + side:x0 + 2 * side], (out, out), interpolation=cv2.INTER_CUBIC)
            f = out / side
            yield "group crop", f"{r['file']}#{k}", crop, ((x - x0) * f, (y - y0) * f, w * f, h * f)
    no_face += [(name, as_rgb(getattr(data, name)())) for name in NO_FACE_SAMPLES]
    for name, rgb in no_face:
        yield "no face", name, rgb, None
        h, w = rgb.shape[:2]
        for k in range(20):
            side = int(min(h, w) * rng.uniform(0.2, 0.6))
            x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
            crop = cv2.resize(rgb[y:y + side, x:x + side], (300, 300), interpolation=cv2.INTER_CUBIC)
            yield "no face, close-up crops", f"{name}#{k}", crop, None


def frame_agreement(face, settings, roll, frame):
    """IoU of the app's crop square with the face's known frame, both seen upright in the face's own frame."""
    x, y, side, _ = crop_box(face.box, settings.crop_scale, settings.crop_shift_y)
    bx, by, bw, bh = face.box
    t = np.radians(roll)  # crop_face turns the image about the box centre; turn the square's centre back
    dx, dy = x + side / 2 - (bx + bw / 2), y + side / 2 - (by + bh / 2)
    cx, cy = bx + bw / 2 + dx * np.cos(t) - dy * np.sin(t), by + bh / 2 + dx * np.sin(t) + dy * np.cos(t)
    fx, fy, fside, froll = frame
    t = np.radians(-froll)
    ux, uy = (cx - fx) * np.cos(t) - (cy - fy) * np.sin(t), (cx - fx) * np.sin(t) + (cy - fy) * np.cos(t)
    return iou((-fside / 2, -fside / 2, fside, fside), (ux - side / 2, uy - side / 2, side, side))


# name -> (detector, whether crops are turned level); variants sharing a detector share its detections.
def variants():
    before, after = BlazeFace(BlazeFaceSettings(close_up=False)), BlazeFace()
    return {"before: full range, upright crops": (before, False),
            "close-ups without turned looks, level crops": (BlazeFace(BlazeFaceSettings(close_up_turns=())), True),
            "close-ups, upright crops": (after, False),
            "close-ups, level crops (default)": (after, True)}


def evaluate(sets, chosen, split, classifier):
    """Per variant and set: counts, agreements and crops (with their face index) of the faces found."""
    stats = {name: {} for name in chosen}
    for set_name, key, rgb, truth in sets:
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        found = {}
        for name, (detector, level) in chosen.items():
            faces = found.setdefault(id(detector), detector.faces(rgb))
            s = stats[name].setdefault(set_name, {"n": 0, "found": 0, "extra": 0, "agree": [], "crops": [], "index": [],
                                                  "keys": set()})
            s["n"] += 1
            if truth is None:
                s["extra"] += len(faces)
                continue
            s["found"] += bool(faces)
            s["extra"] += max(0, len(faces) - 1)
            if not faces:
                continue
            s["keys"].add(key)
            roll = faces[0].roll if level else 0.0
            if set_name == "group crop":
                s["agree"].append(iou(faces[0].box, truth))
                continue
            s["agree"].append(frame_agreement(faces[0], detector.settings, roll, truth))
            s["crops"].append(crop_face(grey, faces[0].box, detector.settings, roll))
            s["index"].append(key)
    originals = classify(classifier, split.images).argmax(1) == split.labels
    for per_set in stats.values():
        for s in per_set.values():
            if s["crops"]:
                index = np.array(s["index"])
                right = classify(classifier, np.stack(s["crops"])).argmax(1) == split.labels[index]
                s["loss"] = 100 * (originals[index].mean() - right.mean())
                s["end_to_end"] = 100 * (originals.mean() - right.sum() / len(split))
    return stats, originals.mean()


def report(stats):
    """One table per variant."""
    for name, per_set in stats.items():
        print(f"\n{name}")
        print(f"  {'set':24s} {'images':>6s} {'found':>8s} {'extra':>6s} {'agreement':>10s} {'framing loss':>13s} {'end to end':>11s}")
        for set_name, s in per_set.items():
            found = "-" if set_name.startswith("no face") else f"{100 * s['found'] / s['n']:7.2f}%"
            agree = f"{np.mean(s['agree']):.3f}" if s["agree"] else "-"
            loss = f"{s['loss']:+.2f}" if "loss" in s else "-"
            end = f"{s['end_to_end']:+.2f}" if "end_to_end" in s else "-"
            print(f"  {set_name:24s} {s['n']:6d} {found:>8s} {s['extra']:6d} {agree:>10s} {loss:>13s} {end:>11s}")
        upright = per_set["tilt +0"]["keys"]
        shares = [f"{name} {len(per_set[name]['keys'] & upright) / max(1, len(upright)):.2%}" for name in ("close-up", "close-up, border")]
        print(f"  of the {len(upright)} faces found at tilt +0 (half the canvas), found as a {', as a '.join(shares)}")


def speed(chosen, rounds, calls):
    """p50 of detect() in ms per photo and detector, the detectors interleaved (onnxruntime runs each on one thread)."""
    from skimage import data

    from tests.support.server import one_face_photo
    astronaut = data.astronaut()
    photos = {"640x480, one face": decode_image(one_face_photo()),
              "600x400, no face (coffee)": data.coffee(),
              "330x360 close-up": cv2.resize(astronaut[70:190, 160:270], (330, 360), interpolation=cv2.INTER_CUBIC)}
    detectors = {name: detector for name, (detector, _) in chosen.items() if "upright" not in name or "before" in name}
    times = {}
    for _ in range(rounds):
        for photo, rgb in photos.items():
            for name, detector in detectors.items():
                detector.faces(rgb)
                for _ in range(calls):
                    t0 = time.perf_counter()
                    detector.faces(rgb)
                    times.setdefault((photo, name), []).append((time.perf_counter() - t0) * 1e3)
    print(f"\ndetect() p50 in ms, {rounds} interleaved rounds of {calls} calls:")
    for photo in photos:
        first = np.median(times[(photo, next(iter(detectors)))])
        for name in detectors:
            p50 = np.median(times[(photo, name)])
            print(f"  {photo:28s} {name:44s} {p50:6.2f}   ({p50 / first:.2f}x the first)")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=DEFAULT_DATA, help=f"dataset (default: {DEFAULT_DATA})")
    p.add_argument("--photos", default="../shared/data/photos", help="folder with manifest.csv (default: ../shared/data/photos)")
    p.add_argument("--model", default=str(DEFAULT_PATH), help="model for the framing loss (default: model/fer.pt)")
    p.add_argument("--faces", type=int, default=1000, help="PublicTest faces to use, from the first (default: 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed for sizes, borders and crops (default: 0)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the speed test (default: 5)")
    p.add_argument("--calls", type=int, default=20, help="calls per round, photo and variant (default: 20)")
    p.add_argument("--speed-only", action="store_true", help="skip the sets, time detect() alone (default: off)")
    args = p.parse_args()
    cv2.setNumThreads(1)  # as gunicorn.conf.py serves it
    chosen = variants()
    if args.speed_only:
        return speed(chosen, args.rounds, args.calls)
    split = load_dataset(args.data)["val"].take(slice(0, args.faces))
    classifier = load_classifier(args.model)
    t0 = time.perf_counter()
    stats, accuracy = evaluate(fer_sets(split.images, np.random.default_rng(args.seed)), chosen, split, classifier)
    photo_stats, _ = evaluate(photo_sets(args.photos, np.random.default_rng(args.seed)), chosen, split, classifier)
    for name in chosen:
        stats[name].update(photo_stats[name])
    print(f"{args.model} on the {len(split)} 48x48 originals: accuracy {accuracy:.4f}; sets made and measured in "
          f"{time.perf_counter() - t0:.0f} s")
    report(stats)
    speed(chosen, args.rounds, args.calls)


if __name__ == "__main__":
    main()
