"""Decode uploaded bytes into an upright RGB image, refusing what is not a supported image."""
import io
import math
import re
import warnings

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

SUPPORTED_FORMATS = {"JPEG", "MPO", "PNG", "WEBP", "BMP", "GIF"}
SUPPORTED_NAMES = ", ".join(sorted(SUPPORTED_FORMATS - {"MPO"}))
# The same formats by media type, with the names people know them by.
IMAGE_TYPES = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WebP", "image/bmp": "BMP", "image/gif": "GIF"}
DEFAULT_MAX_PIXELS = 40_000_000
# A progressive JPEG is decoded once per scan: cameras and encoders write about 10 (mozjpeg up to
# about 20), while a 400 KB file that repeats its scans thousands of times took 9.5 s to decode.
MAX_JPEG_SCANS = 100
# Pillow decodes run-length compressed BMPs (RLE8, RLE4) in Python, a pixel or a row's padding at a
# time: a 2-megapixel one took 0.6 s, a 40-megapixel one of 26 KB about 12 s.
BMP_RLE = {1, 2}
MAX_RLE_PIXELS = 2_000_000
# Where a scan's entropy-coded data ends: a 0xFF that is neither a stuffed 0x00 nor a restart marker.
SCAN_END = re.compile(rb"\xff(?=[^\x00\xd0-\xd7])", re.DOTALL)

# Finding and cropping faces needs far fewer pixels than a 40-megapixel upload holds: BlazeFace
# looks at 192x192 views and a face is cropped to 48x48. Larger images are decoded reduced by a
# whole factor (JPEGs by the decoder itself, in Pillow's draft mode), which bounds the memory a
# request costs; boxes are scaled back to the full image.
WORK_PIXELS = 10_000_000
# Modes Pillow's reduce() takes; others are reduced as arrays.
REDUCIBLE = {"L", "LA", "RGB", "RGBA", "CMYK", "YCbCr", "I", "F"}
# EXIF orientations that swap width and height (a quarter turn, with or without a mirror).
QUARTER_TURNS = {5, 6, 7, 8}

# Pillow's own bomb guard warns at MAX_IMAGE_PIXELS and raises at twice that; our limit, checked
# from the header before decoding, is lower, so the warning would only be noise.
warnings.simplefilter("ignore", Image.DecompressionBombWarning)


# ISO base media "ftyp" brands of image formats Pillow cannot decode here (HEIC/HEIF from phones).
HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis"}


class ImageRejected(ValueError):
    """An upload we refuse: `code` names the reason (e.g. too_many_pixels), `message` explains it."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code, self.message = code, message


def unsupported_format(data):
    """The name of a well-known image format we do not decode (SVG, HEIC), sniffed from the first bytes; else None."""
    if data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS:
        return "AVIF" if data[8:12].startswith(b"avi") else "HEIC"
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"<svg") or (head.startswith((b"<?xml", b"<!--", b"<!doctype svg")) and b"<svg" in head):
        return "SVG"
    return None


def jpeg_scans(data):
    """How many scans (SOS segments) the first image of a JPEG file holds, read from its markers without decoding."""
    scans, pos = 0, 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xD9:  # end of image
            break
        if marker == 0xFF or 0xD0 <= marker <= 0xD7 or marker == 0x01:  # fill byte or a marker without length
            pos += 1 if marker == 0xFF else 2
            continue
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
        if marker == 0xDA:
            scans += 1
            end = SCAN_END.search(data, pos)
            if end is None:
                break
            pos = end.start()
    return scans


def unsupported(name):
    """The refusal of an image in a format we recognise but do not decode."""
    return ImageRejected("unsupported_image_type", f"{name} images are not supported; send one of {SUPPORTED_NAMES}")


def open_image(data, max_pixels=DEFAULT_MAX_PIXELS):
    """Open (not yet decode) an upload, checking format and pixel count from the header."""
    if not data:
        raise ImageRejected("empty_image", "the image is empty (0 bytes)")
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise ImageRejected("too_many_pixels", "the image claims more pixels than Pillow will open; "
                            f"the limit is {max_pixels / 1e6:.0f} megapixels") from None
    except (UnidentifiedImageError, OSError, ValueError):
        if unsupported_format(data):
            raise unsupported(unsupported_format(data)) from None
        raise ImageRejected("invalid_image", f"the upload is not an image Pillow can read (supported: {SUPPORTED_NAMES})") from None
    if image.format not in SUPPORTED_FORMATS:
        raise unsupported(image.format)
    width, height = image.size
    if width * height > max_pixels:
        raise ImageRejected("too_many_pixels", f"the image is {width}x{height} = {width * height:,} pixels; "
                            f"the limit is {max_pixels:,}")
    if width < 1 or height < 1:
        raise ImageRejected("invalid_image", f"the image has no pixels ({width}x{height})")
    check_decode_work(image, data)
    return image


def check_decode_work(image, data):
    """Refuse, from the header, the files whose decoding costs far more than their pixels: JPEG scans, RLE BMPs."""
    width, height = image.size
    if image.format == "BMP" and image.info.get("compression") in BMP_RLE and width * height > MAX_RLE_PIXELS:
        raise ImageRejected("too_many_pixels", f"the run-length compressed BMP is {width}x{height} pixels; "
                            f"the limit for such BMPs is {MAX_RLE_PIXELS:,} (send PNG or JPEG)")
    if image.format in ("JPEG", "MPO") and jpeg_scans(data) > MAX_JPEG_SCANS:
        raise ImageRejected("too_many_scans", f"the JPEG holds {jpeg_scans(data):,} scans; the limit is "
                            f"{MAX_JPEG_SCANS} (progressive photos have about 10)")


# Rows converted at a time from a 16-bit, 32-bit or float image (a multiple of every reduction): a
# whole 40-megapixel one in float64 took 320 MB per temporary array and raised a worker by about 1 GB.
BAND_ROWS = 256


def grey_from_wide(image, factor=1):
    """A 16-bit, 32-bit or float greyscale image -> uint8 array, reduced factor times on each side;
    a band of rows at a time, so neither a float copy nor a full-size grey copy ever exists."""
    width, height = image.size
    peak = 65535.0 if image.mode.startswith("I;16") or (image.mode == "I" and image.getextrema()[1] > 255) else 255.0
    bands = []
    for top in range(0, height, BAND_ROWS):
        band = np.asarray(image.crop((0, top, width, min(height, top + BAND_ROWS)))).astype(np.float32) * (255.0 / peak)
        bands.append(reduced_grey(np.clip(band, 0, 255).round().astype(np.uint8), factor))
    return np.concatenate(bands)


def rgb_from_palette(image, factor=1):
    """A palette image -> uint8 RGB array, transparency flattened onto white through its palette.

    Blending the (at most 256) palette entries instead of the pixels keeps the image at one byte
    per pixel until the RGB result; converting it to RGBA first cost 0.6-1.2 GB at 40 megapixels.
    A reduction keeps every factor-th pixel: palette images are drawings, where averaging adds nothing.
    """
    palette = np.asarray(image.getpalette("RGB"), np.float64).reshape(-1, 3)
    alpha = np.full(len(palette), 255.0)
    transparency = image.info.get("transparency")
    if isinstance(transparency, int):
        alpha[transparency] = 0.0
    elif transparency is not None:
        alpha[:len(transparency)] = np.frombuffer(transparency, np.uint8)[:len(palette)]
    weight = alpha[:, None] / 255.0
    flat = (palette * weight + 255.0 * (1.0 - weight)).round().astype(np.uint8)
    return flat[np.asarray(image)[::factor, ::factor]]


def reduced_grey(grey, factor):
    """A uint8 grey array made factor times smaller on each side, by area averaging."""
    if factor == 1:
        return grey
    height, width = grey.shape
    return cv2.resize(grey, (math.ceil(width / factor), math.ceil(height / factor)), interpolation=cv2.INTER_AREA)


def to_rgb(image, factor=1):
    """Any Pillow mode -> uint8 RGB array (height, width, 3), reduced factor times on each side;
    transparency is flattened onto white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return np.repeat(grey_from_wide(image, factor)[:, :, None], 3, axis=2)
    if image.mode == "P":
        return rgb_from_palette(image, factor)
    if factor > 1:
        image = image.reduce(factor) if image.mode in REDUCIBLE else image.convert("RGB").reduce(factor)
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        flat = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(flat, rgba)
    # convert() copies even an RGB image: 160 MB more at 40 megapixels.
    return np.asarray(image if image.mode == "RGB" else image.convert("RGB"), dtype=np.uint8)


def decode_image(data, max_pixels=DEFAULT_MAX_PIXELS):
    """Upload bytes -> upright (EXIF-rotated) RGB uint8 array of shape (height, width, 3)."""
    return decode_reduced(data, max_pixels, work_pixels=None)[0]


def reduction(pixels, work_pixels):
    """The smallest power of two (at most 8, as JPEG decoders reduce) that brings pixels to work_pixels or fewer."""
    factor = 1
    while work_pixels and factor < 8 and pixels / factor ** 2 > work_pixels:
        factor *= 2
    return factor


def image_pixels(data):
    """The pixel count an upload's header claims, without decoding it (0 for what is not an image)."""
    try:
        width, height = Image.open(io.BytesIO(data)).size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return 0
    return width * height


def quarter_turned(image):
    """Whether the image's EXIF orientation swaps its width and height (False where EXIF is unreadable)."""
    try:
        return image.getexif().get(0x0112) in QUARTER_TURNS
    except (OSError, ValueError, SyntaxError, EOFError, KeyError, TypeError):
        return False


def decode_reduced(data, max_pixels=DEFAULT_MAX_PIXELS, work_pixels=WORK_PIXELS):
    """(upright RGB uint8 array, reduced by a whole factor to about work_pixels where the image is larger,
    (width, height) of the full upright image). None for work_pixels decodes at full size."""
    image = open_image(data, max_pixels)
    width, height = image.size
    if quarter_turned(image):
        width, height = height, width
    return decode_opened(image, reduction(width * height, work_pixels), work_pixels), (width, height)


def decode_opened(image, factor, work_pixels):
    """The upright RGB array of an opened image, reduced factor times (JPEGs by their decoder)."""
    try:
        image.seek(0)
        if factor > 1 and image.format in ("JPEG", "MPO"):
            # The decoder itself skips the detail (DCT scaling): the full image is never in memory.
            image.draft(image.mode, (math.ceil(image.width / factor), math.ceil(image.height / factor)))
            factor = reduction(image.width * image.height, work_pixels)  # what the decoder left to do
        ImageOps.exif_transpose(image, in_place=True)  # in place: the stored and the turned image never both stay
        return to_rgb(image, factor)
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
        raise ImageRejected("invalid_image", f"the {image.format} image is damaged or truncated "
                            "and could not be decoded") from None
