"""Images made in memory for tests: any array or Pillow image as file bytes, EXIF orientations."""
import io

import numpy as np
from PIL import Image


def encode(image, fmt="JPEG", **params):
    """A Pillow image or array -> file bytes in the given format."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


# EXIF orientation (tag 0x0112) -> how a camera stores an upright picture under that tag: a viewer
# undoes it. From the EXIF 2.3 standard's description of where row 0 and column 0 of the stored
# image belong, not from Pillow.
EXIF_STORED = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],                          # mirrored left to right
    3: lambda a: a[::-1, ::-1],                       # turned 180 degrees
    4: lambda a: a[::-1],                             # mirrored top to bottom
    5: lambda a: a.swapaxes(0, 1),                    # mirrored along the main diagonal
    6: lambda a: np.rot90(a, 1),                      # turned 90 degrees anticlockwise
    7: lambda a: np.rot90(a, 2).swapaxes(0, 1),       # mirrored along the other diagonal
    8: lambda a: np.rot90(a, -1),                     # turned 90 degrees clockwise
}


def oriented(upright, orientation, fmt):
    """File bytes that hold the upright array stored the way EXIF `orientation` says, with that tag."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(np.ascontiguousarray(EXIF_STORED[orientation](upright)), fmt, exif=exif)
