"""Face detection on ../shared/data/photos: faces found against the manifest, false detections, time.

    python scripts/detection_report.py --photos ../shared/data/photos

Compares detector settings side by side: for each, the photos whose count matches the
manifest, faces found / expected, detections on the photos with no usable face, recall and
precision at IoU >= 0.3 on the group photos with ground-truth boxes, and milliseconds per photo.
"""
import argparse
import csv
import re
import sys
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from recognition.faces import DETECTORS, DetectorSettings, detect_faces, load_detector  # noqa: E402
from recognition.images import decode_image  # noqa: E402

LBP = "lbpcascade_frontalface.xml"
VARIANTS = {
    "default sf1.1 n5 m20 640": DetectorSettings(cascade="haarcascade_frontalface_default.xml", scale_factor=1.1,
                                                 min_neighbors=5, min_size=20, max_side=640),
    "default sf1.2 n4 m30 640": DetectorSettings(cascade="haarcascade_frontalface_default.xml", min_neighbors=4,
                                                 min_size=30, max_side=640),
    "alt2 sf1.1 n3 m20 640": DetectorSettings(scale_factor=1.1, min_size=20, max_side=640),
    "alt2 sf1.2 n3 m30 640": DetectorSettings(min_size=30, max_side=640),
    "alt2 sf1.2 n3 m30 512": DetectorSettings(min_size=30, max_side=512),
    "alt2 sf1.2 n3 m24 480": DetectorSettings(min_size=24, max_side=480),
    "alt2 sf1.2 n3 m20 400": DetectorSettings(min_size=20, max_side=400),
    "alt2 sf1.2 n3 m24 512 (default)": DetectorSettings(),
    "alt sf1.2 n2 m24 512": DetectorSettings(cascade="haarcascade_frontalface_alt.xml", min_neighbors=2),
    "alt2 sf1.3 n3 m24 512": DetectorSettings(scale_factor=1.3),
    "alt2 sf1.3 n2 m24 512": DetectorSettings(scale_factor=1.3, min_neighbors=2),
    "lbp sf1.2 n2 m24 512": DetectorSettings(cascade=LBP, min_neighbors=2),
    "lbp sf1.15 n3 m24 512": DetectorSettings(cascade=LBP, scale_factor=1.15),
    "lbp sf1.2 n3 m24 640": DetectorSettings(cascade=LBP, max_side=640),
    "lbp sf1.2 n3 m24 512 (FER_DETECTOR=fast)": DETECTORS["fast"],
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


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--photos", default="../shared/data/photos", help="folder with manifest.csv (default: ../shared/data/photos)")
    p.add_argument("--verbose", action="store_true", help="print every photo for the first variant (default: off)")
    args = p.parse_args()
    rows = list(csv.DictReader(open(Path(args.photos) / "manifest.csv")))
    images = {r["file"]: decode_image((Path(args.photos) / r["file"]).read_bytes()) for r in rows}
    print(f"{'variant':42s} {'exact':>6s} {'found/expected':>15s} {'false on 0-face':>16s} {'GT recall':>10s} {'GT precision':>13s} {'ms/photo':>9s}")
    for i, (name, settings) in enumerate(VARIANTS.items()):
        detector = load_detector(settings)
        exact = found_total = expected_total = false_pos = 0
        tp = gt_total = det_total = 0
        seconds = 0.0
        for r in rows:
            t0 = time.perf_counter()
            boxes = detect_faces(images[r["file"]], detector, settings)
            seconds += time.perf_counter() - t0
            expected = int(re.match(r"~?(\d+)", r["expected_faces"]).group(1))
            if expected == 0:
                false_pos += len(boxes)
            else:
                found_total += len(boxes)
                expected_total += expected
            exact += len(boxes) == expected
            truth = ground_truth(r["notes"])
            if truth:
                gt_total += len(truth)
                det_total += len(boxes)
                tp += sum(any(iou(t, b) >= 0.3 for b in boxes) for t in truth)
            if args.verbose and i == 0:
                print(f"   {r['file']:32s} expected {r['expected_faces']:>16s} found {len(boxes)}")
        print(f"{name:42s} {exact:>3d}/{len(rows):<2d} {found_total:>7d}/{expected_total:<7d} {false_pos:>16d} "
              f"{tp / gt_total:>10.2f} {tp / max(det_total, 1):>13.2f} {seconds / len(rows) * 1e3:>9.1f}")


if __name__ == "__main__":
    main()
