"""Textures for a procedural car by box projection: five panels (left, right, top, front, back),
each an image of the car seen from that side, drawn on in metres.

Each triangle takes the panel its face looks toward, and its corners' uvs are their positions
projected onto that panel, so a stripe drawn at z = 0.6 on the sides lies at z = 0.6 on the body.
Drawing coordinates are world coordinates in the panel's plane: (x, z) on the sides (both sides
usually get the same paint), (x, y) on top, (y, z) on the front and back. Text is drawn upright
as seen from outside, never mirrored.

World axes as the product's: x forward, y to the car's left, z up, the ground at z = 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

PANELS = ("left", "right", "top", "front", "back")
SIDES, ENDS = ("left", "right"), ("front", "back")
PIXELS_PER_METRE = 96  # ≈ 4× what a 128² view resolves: sharp after mipmapping
MARGIN = 0.1  # metres of panel past the car on every side: no uv reaches an image edge
Point = tuple[float, float]
RGB = tuple[float, float, float]

# per panel: the world axes drawn in, (p, q), and the matrix taking them to (a, b), the image's
# axes as seen from outside: a to the viewer's right, b up
_AXES = {
    "left": ((0, 2), ((-1, 0), (0, 1))),  # seen from +y: x runs to the viewer's left
    "right": ((0, 2), ((1, 0), (0, 1))),
    "top": ((0, 1), ((0, -1), (1, 0))),  # seen from above, the front up: y runs to the left
    "front": ((1, 2), ((1, 0), (0, 1))),
    "back": ((1, 2), ((-1, 0), (0, 1))),
}

# seven-segment glyphs: segments a (top), b (top right), c, d (bottom), e, f (top left), g (middle)
_GLYPHS = {
    "0": "abcdef", "1": "bc", "2": "abdeg", "3": "abcdg", "4": "bcfg", "5": "acdfg",
    "6": "acdefg", "7": "abc", "8": "abcdefg", "9": "abcdfg", "A": "abcefg", "b": "cdefg",
    "C": "adef", "d": "bcdeg", "E": "adefg", "F": "aefg", "H": "bcefg", "J": "bcde", "L": "def",
    "o": "cdeg", "P": "abefg", "r": "eg", "t": "defg", "U": "bcdef", "y": "bcdfg",
}
LETTERS = "AbCdEFHJLoPrtUy"


def panel_of(face_normals: np.ndarray) -> np.ndarray:
    """(T,) index into PANELS of the panel each face looks toward; -1 for faces looking down
    (the underside: no panel sees it)."""
    axis = np.abs(face_normals).argmax(axis=1)
    sign = np.take_along_axis(face_normals, axis[:, None], axis=1)[:, 0] > 0
    by_axis = np.array([[4, 3], [1, 0], [-1, 2]])  # [axis][positive]: x: back/front, y, z
    return by_axis[axis, sign.astype(int)]


@dataclass(frozen=True)
class Extent:
    """The box the panels cover: the car's half length, half width and height, metres."""

    half_length: float
    half_width: float
    height: float

    def bounds(self, panel: str) -> tuple[float, float, float, float]:
        """(a0, a1, b0, b1): the panel's extent in its image axes, margin included."""
        spans = [(-self.half_length - MARGIN, self.half_length + MARGIN),
                 (-self.half_width - MARGIN, self.half_width + MARGIN),
                 (-MARGIN, self.height + MARGIN)]
        axes, _ = _AXES[panel]
        corners = np.array([(p, q) for p in spans[axes[0]] for q in spans[axes[1]]])
        ab = _to_image_axes(panel, corners)
        return ab[:, 0].min(), ab[:, 0].max(), ab[:, 1].min(), ab[:, 1].max()

    def size(self, panel: str) -> tuple[int, int]:
        a0, a1, b0, b1 = self.bounds(panel)
        return round((a1 - a0) * PIXELS_PER_METRE), round((b1 - b0) * PIXELS_PER_METRE)


def _to_image_axes(panel: str, pq: np.ndarray) -> np.ndarray:
    """(N, 2) drawing coordinates -> (N, 2) (a, b) image axes of the panel."""
    return pq @ np.array(_AXES[panel][1], float).T


def panel_uvs(extent: Extent, panel: str, points: np.ndarray) -> np.ndarray:
    """(N, 2) OpenGL uvs (v = 0 at the image's bottom row) of world points on the panel."""
    a0, a1, b0, b1 = extent.bounds(panel)
    ab = _to_image_axes(panel, points[:, list(_AXES[panel][0])])
    return np.stack([(ab[:, 0] - a0) / (a1 - a0), (ab[:, 1] - b0) / (b1 - b0)], axis=1)


class PanelCanvas:
    """Five RGB images to paint on in world coordinates; `images()` hands them to the renderer."""

    def __init__(self, extent: Extent, base: RGB) -> None:
        self.extent = extent
        fill = _rgb8(base)
        self._images = {p: Image.new("RGB", extent.size(p), fill) for p in PANELS}
        self._draw = {p: ImageDraw.Draw(image) for p, image in self._images.items()}

    def _pixels(self, panel: str, points: list[Point]) -> list[tuple[float, float]]:
        """World points in the panel's drawing axes -> pixel coordinates (rows from the top)."""
        a0, _, _, b1 = self.extent.bounds(panel)
        ab = _to_image_axes(panel, np.array(points, float).reshape(-1, 2))
        return [((a - a0) * PIXELS_PER_METRE, (b1 - b) * PIXELS_PER_METRE) for a, b in ab]

    def polygon(self, panels: tuple[str, ...], points: list[Point], color: RGB) -> None:
        for panel in panels:
            self._draw[panel].polygon(self._pixels(panel, points), fill=_rgb8(color))

    def rect(self, panels: tuple[str, ...], corner0: Point, corner1: Point, color: RGB) -> None:
        (p0, q0), (p1, q1) = corner0, corner1
        self.polygon(panels, [(p0, q0), (p1, q0), (p1, q1), (p0, q1)], color)

    def ellipse(self, panels: tuple[str, ...], center: Point, radii: Point, color: RGB) -> None:
        (p, q), (rp, rq) = center, radii
        for panel in panels:
            corners = self._pixels(panel, [(p - rp, q - rq), (p + rp, q + rq)])
            xs, ys = sorted(c[0] for c in corners), sorted(c[1] for c in corners)
            self._draw[panel].ellipse([xs[0], ys[0], xs[1], ys[1]], fill=_rgb8(color))

    def text(self, panels: tuple[str, ...], center: Point, height: float, text: str,
             color: RGB) -> None:
        """Seven-segment characters (digits, LETTERS), `height` metres tall, upright and read
        left to right from outside the panel."""
        for panel in panels:
            (cx, cy), = self._pixels(panel, [center])
            _seven_segment(self._draw[panel], cx, cy, height * PIXELS_PER_METRE, text,
                           _rgb8(color))

    def images(self) -> dict[str, np.ndarray]:
        return {p: np.asarray(image).copy() for p, image in self._images.items()}


def _seven_segment(draw: ImageDraw.ImageDraw, cx: float, cy: float, height: float, text: str,
                   fill: tuple[int, int, int]) -> None:
    width, stroke, gap = 0.55 * height, 0.16 * height, 0.2 * height
    left = cx - (len(text) * width + (len(text) - 1) * gap) / 2
    top = cy - height / 2
    for k, char in enumerate(text):
        x = left + k * (width + gap)
        spans = {  # segment -> (x0, y0, x1, y1)
            "a": (x, top, x + width, top + stroke),
            "g": (x, top + (height - stroke) / 2, x + width, top + (height + stroke) / 2),
            "d": (x, top + height - stroke, x + width, top + height),
            "f": (x, top, x + stroke, top + height / 2),
            "b": (x + width - stroke, top, x + width, top + height / 2),
            "e": (x, top + height / 2, x + stroke, top + height),
            "c": (x + width - stroke, top + height / 2, x + width, top + height),
        }
        for segment in _GLYPHS[char]:
            draw.rectangle(spans[segment], fill=fill)


def _rgb8(color: RGB) -> tuple[int, int, int]:
    return tuple(int(round(255 * min(max(c, 0.0), 1.0))) for c in color)
