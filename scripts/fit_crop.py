"""Measure how FER-2013 frames a face, so the app crops photos the same way.

    python scripts/fit_crop.py --detector blazeface      (and --detector haar)

Runs one of the app's detectors on upscaled FER-2013 validation faces. A detector box of width w
(in 48-pixel units) inside the 48x48 frame means the dataset's crop is 48 / w box widths wide,
centred (24 - box centre) / w box widths away from the box centre. The medians of those two
ratios are that detector's crop_scale and crop_shift_y in recognition/faces.py.
"""
import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from recognition.faces import DETECTORS  # noqa: E402
from training.data import load_dataset  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data/fer2013.csv.gz", help="dataset (default: ../shared/data/fer2013.csv.gz)")
    p.add_argument("--detector", default="blazeface", choices=list(DETECTORS), help="face detector (default: blazeface)")
    p.add_argument("--split", default="val", help="split to measure on (default: val)")
    p.add_argument("--upscale", type=int, default=4, help="upscaling factor before detection (default: 4)")
    p.add_argument("--pad", type=int, default=12, help="grey border added around each 48x48 face, so that faces filling the frame are found too (default: 12)")
    args = p.parse_args()
    detector = DETECTORS[args.detector]()
    images = load_dataset(args.data)[args.split].images
    scales, shifts_x, shifts_y = [], [], []
    for image in images:
        framed = cv2.copyMakeBorder(image, *[args.pad] * 4, cv2.BORDER_CONSTANT, value=128)
        big = cv2.resize(framed, None, fx=args.upscale, fy=args.upscale, interpolation=cv2.INTER_CUBIC)
        boxes = detector.detect(cv2.cvtColor(big, cv2.COLOR_GRAY2RGB))
        if not boxes:
            continue
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


if __name__ == "__main__":
    main()
