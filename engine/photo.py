"""A user's photo of a car → the (res, res, 3) image a latent is fitted to.

The contract: a square photo of a car on a white background, or with an alpha channel (composited
on white); it is resized to the resolution the network was trained at.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

DEFAULT_FIT_RES = 128


class ImageError(Exception):
    """A photo that cannot be fitted; the message names the file and the problem."""


def load_photo(path: Path, res: int) -> np.ndarray:
    """(res, res, 3) uint8 on white; raises ImageError for what cannot be used."""
    try:
        with Image.open(path) as image:
            image.load()
            rgba = np.asarray(image.convert("RGBA")).astype(np.float32) / 255
    except (UnidentifiedImageError, OSError) as e:
        raise ImageError(f"{path}: not a readable image ({type(e).__name__})") from None
    h, w = rgba.shape[:2]
    if h != w or h < 16:
        raise ImageError(f"{path}: must be square and at least 16 px, got {w}x{h}")
    rgb = rgba[..., :3] * rgba[..., 3:] + (1 - rgba[..., 3:])  # composite over white
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    if (border.min(-1) > 0.9).mean() < 0.9:
        raise ImageError(f"{path}: needs a white background or an alpha channel "
                         "(its border is not white)")
    small = Image.fromarray((rgb * 255 + 0.5).astype(np.uint8)).resize((res, res), Image.LANCZOS)
    return np.asarray(small)
