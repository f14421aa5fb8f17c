"""Texture images: reading (SGI .rgb, PNG) at a bounded size, and flattening alpha for opaque
rendering."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

TEXTURE_SIZE = 256  # 1024² car textures add nothing at 128² renders, and cost upload time
# Transparent texels (TORCS windows, the gaps between wheel spokes) are drawn opaque in this
# color: one depth per pixel, and tinted glass looks like glass.
GLASS_RGB = np.array([0.13, 0.15, 0.18])


def resolve_texture(folder: Path, name: str) -> Path:
    """The file for a texture name; a packed tree stores textures as PNG under the same stem."""
    for candidate in (folder / name, (folder / name).with_suffix(".png")):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"texture {name!r} not found in {folder}")


def read_rgba(path: Path, size: int = TEXTURE_SIZE) -> np.ndarray:
    """(H, W, 4) uint8, rows top to bottom, downsampled so neither side exceeds `size`."""
    image = Image.open(path).convert("RGBA")
    if max(image.size) > size:
        scale = size / max(image.size)
        image = image.resize(
            (max(1, round(image.width * scale)), max(1, round(image.height * scale))),
            Image.Resampling.BOX,
        )
    return np.asarray(image).copy()


def flatten_alpha(rgba: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8: the texture composited over the glass tint by its alpha."""
    alpha = rgba[..., 3:].astype(np.float32) / 255
    rgb = rgba[..., :3].astype(np.float32) * alpha + GLASS_RGB * 255 * (1 - alpha)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
