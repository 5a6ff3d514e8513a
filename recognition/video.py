"""Read videos with OpenCV's bundled FFmpeg, from a file or from bytes in memory, and sample their frames.

A frame is sampled when it is the first of its 1/fps-second slot, so whether frame i is sampled
depends on i alone: a video can be cut into parts that are decoded apart and still give the
frames that one pass would.
"""
import io
import math
from contextlib import contextmanager
from dataclasses import dataclass

import cv2

VIDEO_EXTENSIONS = {".mp4", ".mov", ".avi", ".webm", ".mkv", ".m4v"}


class VideoError(ValueError):
    """A video that FFmpeg cannot open or decode."""


class VideoOverLimit(VideoError):
    """A video over the caller's limits (length or frame size)."""


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video."""

    fps: float
    frames: int      # as the container says; 0 where it does not know
    width: int
    height: int

    @property
    def duration_s(self):
        """Length in seconds from the container's frame count (0 when unknown)."""
        return self.frames / self.fps


@contextmanager
def open_video(source):
    """(cv2.VideoCapture, VideoInfo) of a file path or of a video file's bytes, released on leaving;
    VideoError if FFmpeg cannot open it."""
    # OpenCV >= 4.10 reads through a Python stream, so an upload never has to be written to a file.
    # The capture keeps no reference to the stream: it must outlive the capture, so it is held here.
    stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else None
    capture = (cv2.VideoCapture(stream, cv2.CAP_FFMPEG, []) if stream is not None
               else cv2.VideoCapture(str(source), cv2.CAP_FFMPEG))
    try:
        fps = capture.get(cv2.CAP_PROP_FPS) if capture.isOpened() else 0
        if not (fps > 0 and math.isfinite(fps)):
            raise VideoError("the file is not a video that FFmpeg can decode")
        size = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        yield capture, VideoInfo(fps, max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT))), *size)
    finally:
        capture.release()
        del stream


def is_sampled(index, native_fps, fps):
    """Whether frame `index` is the first frame of its 1/fps-second slot."""
    def slot(i):
        return math.floor(i * fps / native_fps + 1e-9)
    return index == 0 or slot(index) != slot(index - 1)


def sample_frames(capture, info, fps, start=0, stop=None, max_seconds=None):
    """Yield (frame index, time in s, RGB) of the sampled frames in [start, stop); VideoOverLimit past max_seconds."""
    if start:
        capture.set(cv2.CAP_PROP_POS_FRAMES, start)
    index = start
    while stop is None or index < stop:
        if max_seconds is not None and index / info.fps > max_seconds:
            raise VideoOverLimit(f"the video is longer than {max_seconds:g} s")
        if not capture.grab():
            break
        if is_sampled(index, info.fps, fps):
            ok, bgr = capture.retrieve()
            if not ok:
                raise VideoError(f"frame {index} of the video could not be decoded")
            yield index, round(index / info.fps, 3), cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        index += 1
    if index == start and start == 0:
        raise VideoError("no frame of the video could be decoded")


def parts(info, part_s):
    """[start, stop) frame ranges of about part_s seconds covering the video; the last one is open (stop None)."""
    starts = list(range(0, max(1, info.frames), max(1, round(part_s * info.fps))))
    return list(zip(starts, starts[1:] + [None]))
