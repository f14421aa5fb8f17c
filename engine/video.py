"""Frames → an H.264 MP4 any player opens, through PyAV (FFmpeg's libraries, shipped in its wheel).

yuv420p halves the chroma resolution, so both sides must be even: an odd frame is padded by one
row or column of its edge pixels rather than resized (a resize would blur the whole picture).
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import numpy as np

CODEC = "libx264"
# Visually lossless for renders at this size; the default (23) smears the cars' thin lines.
CRF = "18"


class VideoError(RuntimeError):
    """The video could not be written; the message names the file."""


def even_sized(frame: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 padded by edge pixels to even H and W."""
    pad_h, pad_w = frame.shape[0] % 2, frame.shape[1] % 2
    if pad_h or pad_w:
        frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return np.ascontiguousarray(frame)


def write_mp4(path: Path, frames: Iterable[np.ndarray], fps: float) -> int:
    """Encode (H, W, 3) uint8 frames, all one size, to `path`; returns how many were written.

    The file appears whole or not at all: frames go to a hidden partial file renamed at the end.
    """
    import av  # imported here: only video export needs FFmpeg

    partial = path.with_name(f".{path.name}.partial")
    written = 0
    try:
        with av.open(str(partial), mode="w", format="mp4") as container:
            stream = None
            for frame in frames:
                frame = even_sized(frame)
                if stream is None:
                    stream = container.add_stream(CODEC, rate=Fraction(fps).limit_denominator(1001))
                    stream.height, stream.width = frame.shape[:2]
                    stream.pix_fmt = "yuv420p"
                    stream.options = {"crf": CRF}
                elif (stream.height, stream.width) != frame.shape[:2]:
                    raise VideoError(f"{path}: frame {written} is {frame.shape[1]}x{frame.shape[0]}, "
                                     f"the video {stream.width}x{stream.height}")
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
                written += 1
            if stream is None:
                raise VideoError(f"{path}: no frames to write")
            container.mux(stream.encode())  # flush the encoder's delayed frames
        partial.replace(path)
    except av.FFmpegError as error:
        raise VideoError(f"{path}: encoding failed ({error})") from None
    finally:
        partial.unlink(missing_ok=True)
    return written
