"""Measure how FER-2013 frames a face, so the app crops photos the same way.

    python scripts/fit_crop.py --detector blazeface      (and --detector haar)

Runs one of the app's detectors on upscaled FER-2013 validation faces. A detector box of width w
(in 48-pixel units) inside the 48x48 frame means the dataset's crop is 48 / w box widths wide,
centred (24 - box centre) / w box widths away from the box centre. The medians of those two
ratios are that detector's crop_scale and crop_shift_y in recognition/faces.py.

Then it checks the framing end to end: the served model's accuracy on the faces the detector
found, classified from the original 48x48 images and from the app's crops of the upscaled ones.
"""
import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from recognition.classifier import classify, load_classifier  # noqa: E402
from recognition.faces import DETECTORS, crop_face  # noqa: E402
from training.data import DEFAULT_DATA, load_dataset  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=DEFAULT_DATA, help=f"dataset (default: {DEFAULT_DATA})")
    p.add_argument("--detector", default="blazeface", choices=list(DETECTORS), help="face detector (default: blazeface)")
    p.add_argument("--model", default="model/fer.pt", help="model for the end-to-end check (default: model/fer.pt)")
    p.add_argument("--split", default="val", help="split to measure on (default: val)")
    p.add_argument("--upscale", type=int, default=4, help="upscaling factor before detection (default: 4)")
    p.add_argument("--pad", type=int, default=12, help="grey border added around each 48x48 face, so that faces filling the frame are found too (default: 12)")
    args = p.parse_args()
    detector = DETECTORS[args.detector]()
    split = load_dataset(args.data)[args.split]
    images = split.images
    scales, shifts_x, shifts_y, crops, found = [], [], [], [], []
    for i, image in enumerate(images):
        framed = cv2.copyMakeBorder(image, *[args.pad] * 4, cv2.BORDER_CONSTANT, value=128)
        big = cv2.resize(framed, None, fx=args.upscale, fy=args.upscale, interpolation=cv2.INTER_CUBIC)
        boxes = detector.detect(cv2.cvtColor(big, cv2.COLOR_GRAY2RGB))
        if not boxes:
            continue
        crops.append(crop_face(big, boxes[0], detector.settings))
        found.append(i)
        x, y, w, h = (v / args.upscale for v in boxes[0])
        x, y = x - args.pad, y - args.pad
        scales.append(48 / w)
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


if __name__ == "__main__":
    main()
