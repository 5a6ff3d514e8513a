"""Measure how FER-2013 frames a face, so the app crops photos the same way.

    python -m scripts.fit_crop --detector blazeface      (and --detector haar)

Runs one of the app's detectors on upscaled FER-2013 validation faces. A detector box of width w
(in 48-pixel units) inside the 48x48 frame means the dataset's crop is 48 / w box widths wide,
centred (24 - box centre) / w box widths away from the box centre. The medians of those two
ratios are that detector's crop_scale and crop_shift_y in recognition/faces.py.

Then it checks the framing end to end: the served model's accuracy on the faces the detector
found, classified from the original 48x48 images and from the app's crops of the upscaled ones.

    python -m scripts.fit_crop --short-range

measures instead where the short-range BlazeFace model draws its box on the faces that both
BlazeFace models find: the box_scale and box_shift of SHORT_RANGE in recognition/faces.py.
"""
import argparse
import dataclasses

import cv2
import numpy as np

from modelfile import DEFAULT_PATH, FACE_SIZE
from recognition.classifier import classify, load_classifier
from recognition.faces import DETECTORS, FULL_RANGE, SHORT_RANGE, BlazeNet, crop_face, select
from training.data import DEFAULT_DATA, load_dataset


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=DEFAULT_DATA, help=f"dataset (default: {DEFAULT_DATA})")
    p.add_argument("--detector", default="blazeface", choices=list(DETECTORS), help="face detector (default: blazeface)")
    p.add_argument("--model", default=str(DEFAULT_PATH), help="model for the end-to-end check (default: model/fer.pt)")
    p.add_argument("--split", default="val", help="split to measure on (default: val)")
    p.add_argument("--upscale", type=int, default=4, help="upscaling factor before detection (default: 4)")
    p.add_argument("--pad", type=int, default=12, help="grey border added around each 48x48 face, so that faces filling the frame are found too (default: 12)")
    p.add_argument("--short-range", action="store_true", help="fit the short-range model's box to the full-range one's instead (default: off)")
    args = p.parse_args()
    split = load_dataset(args.data)[args.split]
    images = split.images
    upscaled = (cv2.resize(cv2.copyMakeBorder(image, *[args.pad] * 4, cv2.BORDER_CONSTANT, value=128), None,
                           fx=args.upscale, fy=args.upscale, interpolation=cv2.INTER_CUBIC) for image in images)
    if args.short_range:
        return fit_short_range(upscaled)
    detector = DETECTORS[args.detector]()
    scales, shifts_x, shifts_y, crops, found = [], [], [], [], []
    for i, big in enumerate(upscaled):
        faces = detector.faces(cv2.cvtColor(big, cv2.COLOR_GRAY2RGB))
        if not faces:
            continue
        crops.append(crop_face(big, faces[0].box, detector.settings, faces[0].roll))
        found.append(i)
        x, y, w, h = (v / args.upscale for v in faces[0].box)
        x, y = x - args.pad, y - args.pad
        scales.append(FACE_SIZE / w)
        shifts_x.append((24 - (x + w / 2)) / w)
        shifts_y.append((24 - (y + h / 2)) / w)
    scales, shifts_x, shifts_y = map(np.array, (scales, shifts_x, shifts_y))
    print(f"detected a face in {len(scales)} of {len(images)} {args.split} images ({len(scales) / len(images):.1%})")
    for name, values in (("crop_scale", scales), ("shift_x", shifts_x), ("crop_shift_y", shifts_y)):
        q1, med, q3 = np.percentile(values, [25, 50, 75])
        print(f"{name:12s} median {med:.3f}  (quartiles {q1:.3f} .. {q3:.3f})")
    classifier = load_classifier(args.model)
    labels = split.labels[found]
    for name, faces in (("original 48x48 faces", images[found]), ("the app's crops", np.stack(crops))):
        accuracy = (classify(classifier, faces).argmax(1) == labels).mean()
        print(f"{args.model} on the {len(found)} found faces, {name}: accuracy {accuracy:.4f}")


def fit_short_range(upscaled):
    """Print the median width ratio and centre shift from the short-range box to the full-range box."""
    full, short = BlazeNet(FULL_RANGE), BlazeNet(dataclasses.replace(SHORT_RANGE, box_scale=1.0, box_shift=(0.0, 0.0)))
    scales, shifts = [], []
    for big in upscaled:
        rgb = cv2.cvtColor(big, cv2.COLOR_GRAY2RGB)
        pair = [select(*net.candidates(rgb, 0.5), 0.5, 0.3) for net in (full, short)]
        if all(len(faces) == 1 for faces in pair):
            (fx, fy, fw, fh), (sx, sy, sw, sh) = (faces[0].box for faces in pair)
            scales.append(fw / sw)
            shifts.append(((fx + fw / 2 - sx - sw / 2) / sw, (fy + fh / 2 - sy - sh / 2) / sw))
    scale, (shift_x, shift_y) = np.median(scales), np.median(shifts, axis=0)
    print(f"{len(scales)} faces found once by each model: box_scale {scale:.3f}, box_shift ({shift_x:.3f}, {shift_y:.3f})")


if __name__ == "__main__":
    main()
