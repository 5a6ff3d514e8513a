"""Media for testing and timing the batch analysis, made from scikit-image's astronaut (public domain).

    python -m scripts.analysis_media video out.mp4 --seconds 4 --faces 2
    python -m scripts.analysis_media photos folder/ --count 100
"""
import argparse
from pathlib import Path

import cv2
import numpy as np
from skimage import data

BACKGROUND = 90  # a plain grey, so that the only faces are the pasted ones


def face_patch(height):
    """The astronaut's head and shoulders (BGR), scaled to `height` pixels."""
    head = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)[20:250, 130:330]
    return cv2.resize(head, (round(height * 200 / 230), height), interpolation=cv2.INTER_AREA)


def moving_faces_frame(t, size, faces):
    """A frame at time fraction t in [0, 1]: the face crossing the top half left to right and, with faces=2,
    its mirror image crossing the bottom half right to left."""
    width, height = size
    patch = face_patch(height // 2 - 10)
    frame = np.full((height, width, 3), BACKGROUND, np.uint8)
    span = width - patch.shape[1] - 20
    x1, x2 = 10 + round(span * t), 10 + round(span * (1 - t))
    frame[5:5 + patch.shape[0], x1:x1 + patch.shape[1]] = patch
    if faces == 2:
        frame[height - 5 - patch.shape[0]:height - 5, x2:x2 + patch.shape[1]] = patch[:, ::-1]
    return frame


def write_video(path, seconds=4.0, fps=15, size=(640, 480), faces=2):
    """An MPEG-4 (mp4v) or, for .avi, Motion JPEG video of moving_faces_frame; returns its path."""
    fourcc = "MJPG" if str(path).endswith(".avi") else "mp4v"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    assert writer.isOpened(), f"OpenCV cannot write {path}"
    count = round(seconds * fps)
    for i in range(count):
        writer.write(moving_faces_frame(i / max(1, count - 1), size, faces))
    writer.release()
    return Path(path)


def write_photos(folder, count, size=(640, 480)):
    """`count` JPEGs of one face each, at different places; returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        frame = moving_faces_frame((i * 0.37) % 1, size, faces=1)
        paths.append(folder / f"photo-{i:05d}.jpg")
        cv2.imwrite(str(paths[-1]), frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return paths


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("kind", choices=["video", "photos"])
    parser.add_argument("out", help="the video file, or the folder for the photos")
    parser.add_argument("--seconds", type=float, default=4.0, help="video length (default: 4)")
    parser.add_argument("--fps", type=int, default=15, help="video frame rate (default: 15)")
    parser.add_argument("--size", default="640x480", help="frame or photo size (default: 640x480)")
    parser.add_argument("--faces", type=int, choices=[1, 2], default=2, help="faces in the video (default: 2)")
    parser.add_argument("--count", type=int, default=100, help="photos (default: 100)")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    if args.kind == "video":
        write_video(args.out, args.seconds, args.fps, size, args.faces)
    else:
        write_photos(args.out, args.count, size)


if __name__ == "__main__":
    main()
