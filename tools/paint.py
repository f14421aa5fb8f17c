"""Paint variants of a car texture: move the body paint to another hue, leave the rest alone.

The paint is the texture's dominant saturated hue; glass, tyres, carbon and chrome are dark or
grey and so never selected. Textures with no saturated paint (a white car) get their bright
neutral texels tinted instead.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

_HUE_WINDOW = 16  # ± this many of 256 hue steps (≈ 22°) around the dominant hue is "paint"


def recolor_paint(rgba: np.ndarray, hue_shift: float, saturation: float = 1.0) -> np.ndarray:
    """(H, W, 4) uint8 texture with its paint's hue turned by `hue_shift` turns (0..1) and its
    saturation scaled."""
    hsv = np.asarray(Image.fromarray(rgba[..., :3]).convert("HSV")).astype(np.int32)
    hue, sat, val = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    opaque = rgba[..., 3] > 200
    colored = opaque & (sat > 80) & (val > 40)
    if colored.sum() >= 0.03 * max(opaque.sum(), 1):
        counts = np.bincount(hue[colored] // 8, minlength=32)
        dominant = int(np.argmax(counts)) * 8 + 4
        distance = np.abs((hue - dominant + 128) % 256 - 128)
        paint = colored & (distance <= _HUE_WINDOW)
        hue = np.where(paint, (hue + round(hue_shift * 256)) % 256, hue)
        sat = np.where(paint, np.clip(sat * saturation, 0, 255), sat)
    else:  # white or grey paint: tint the bright neutral texels
        paint = opaque & (sat < 40) & (val > 190)
        hue = np.where(paint, round(hue_shift * 256) % 256, hue)
        sat = np.where(paint, np.clip(170 * saturation, 0, 255), sat)
        val = np.where(paint, val * 0.85, val)
    out = np.stack([hue, sat, val], axis=-1).astype(np.uint8)
    rgb = np.asarray(Image.fromarray(out, "HSV").convert("RGB"))
    return np.concatenate([rgb, rgba[..., 3:]], axis=-1)
