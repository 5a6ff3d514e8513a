"""Photos and a camera video for the page's tests and README pictures, from scikit-image's photos.

A group photo's tiles are the astronaut's face (box 173, 68, 107, 107 in the 512x512 photo) with a
margin, mirrored or in other light from tile to tile. BlazeFace finds every one when the tiles touch
(24 of 24 in rows of 6 at 110 px); it missed greyscale tiles, and most tiles with 20 px gaps between them.
"""
import io

from PIL import Image, ImageEnhance, ImageOps
from skimage import data

from tests.support.server import one_face_photo

FACE_WITH_MARGIN = (136, 31, 316, 211)


def face_tile(i, size):
    """The i-th variant of the astronaut's face, size x size pixels."""
    tile = Image.fromarray(data.astronaut()).crop(FACE_WITH_MARGIN)
    if i % 2:
        tile = ImageOps.mirror(tile)
    tile = ImageEnhance.Brightness(tile).enhance(0.8 + 0.05 * (i % 7))
    tile = ImageEnhance.Color(tile).enhance(0.6 + 0.1 * (i % 5))
    return tile.resize((size, size))


def group_photo(faces, columns, size=110):
    """JPEG bytes of `faces` face tiles in rows of `columns`, touching, on a light grey ground."""
    rows = -(-faces // columns)
    canvas = Image.new("RGB", (columns * size, rows * size), (235, 235, 235))
    for i in range(faces):
        canvas.paste(face_tile(i, size), ((i % columns) * size, (i // columns) * size))
    buffer = io.BytesIO()
    canvas.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def camera_frames():
    """640x480 frames: the astronaut (one face) on grey, and a coffee cup (no face)."""
    return [Image.open(io.BytesIO(one_face_photo())), Image.fromarray(data.coffee()).resize((640, 480))]


def camera_video(frames, seconds_each, fps=10):
    """A YUV4MPEG2 video, which Chromium's fake camera plays in a loop (--use-file-for-fake-video-capture):
    each frame, all of one size, held for seconds_each in turn."""
    width, height = frames[0].size
    out = [f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode()]
    for frame in frames:
        y, cb, cr = frame.convert("YCbCr").split()
        half = (width // 2, height // 2)
        out += [b"FRAME\n" + y.tobytes() + cb.resize(half).tobytes() + cr.resize(half).tobytes()] * round(seconds_each * fps)
    return b"".join(out)
