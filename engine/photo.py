"""A user's photo of a car → the (res, res, 3) image a latent is fitted to.

The contract: a square photo of a car on a white background, or with an alpha channel (composited
on white); it is resized to the resolution the network was trained at. Any pixel format PIL reads
is accepted (grayscale, palette, RGBA, 16-bit); a photo above MAX_PHOTO_PIXELS is refused from its
header, before it is decoded, and anything unreadable is an ImageError naming the file.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

DEFAULT_FIT_RES = 128
# 4096² px: far above any fit resolution, and its decoded RGBA (64 MiB) stays cheap; a larger photo
# should be downscaled by the user, not decoded here at gigabytes.
MAX_PHOTO_PIXELS = 4096 * 4096
SIXTEEN_BIT_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")  # 16-bit grayscale as PIL opens it
WHITE_BORDER = 0.9  # at least this share of border pixels is near white (each channel > 0.9)


class ImageError(Exception):
    """A photo that cannot be fitted; the message names the file and the problem."""


def open_photo(path: Path) -> Image.Image:
    """The photo decoded as 8-bit RGBA; ImageError for a missing, unknown, huge or corrupt file."""
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a folder, not an image")
    try:
        with warnings.catch_warnings():  # the size check below is ours; PIL's warning says less
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)  # reads the header only
    except Image.DecompressionBombError:  # PIL's own guard, at twice its pixel limit
        raise ImageError(f"{path}: too large to decode (PIL's decompression-bomb guard; this loader "
                         f"takes up to {MAX_PHOTO_PIXELS / 1e6:.1f} MP); downscale it first") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not a readable image (not an image format PIL knows)") from None
    except OSError as error:
        raise ImageError(f"{path}: not a readable image ({error.strerror or error})") from None
    with image:
        w, h = image.size
        if w * h > MAX_PHOTO_PIXELS:
            raise ImageError(f"{path}: {w}x{h} px is above the {MAX_PHOTO_PIXELS / 1e6:.1f} MP this "
                             "loader decodes; downscale it first")
        try:
            image.load()
        except Exception as error:  # PIL raises OSError, SyntaxError, ValueError… on broken data
            detail = " ".join(str(error).split()) or type(error).__name__
            raise ImageError(f"{path}: not a readable image (truncated or corrupt: {detail})") from None
        if image.mode in SIXTEEN_BIT_MODES:  # convert("RGBA") would clip these at 255, not scale
            gray = np.asarray(image, dtype=np.float64) / 65535
            image = Image.fromarray((np.clip(gray, 0, 1) * 255 + 0.5).astype(np.uint8))
        return image.convert("RGBA")


def load_photo(path: Path, res: int) -> np.ndarray:
    """(res, res, 3) uint8 on white; raises ImageError for what cannot be used."""
    rgba = np.asarray(open_photo(path)).astype(np.float32) / 255
    h, w = rgba.shape[:2]
    if h != w or h < 16:
        raise ImageError(f"{path}: must be square and at least 16 px, got {w}x{h}")
    rgb = rgba[..., :3] * rgba[..., 3:] + (1 - rgba[..., 3:])  # composite over white
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    if (border.min(-1) > WHITE_BORDER).mean() < WHITE_BORDER:
        raise ImageError(f"{path}: needs a white background or an alpha channel "
                         "(its border is not white)")
    small = Image.fromarray((rgb * 255 + 0.5).astype(np.uint8)).resize((res, res), Image.LANCZOS)
    return np.asarray(small)
