"""Where things go in the window: the panel on the left, the object's picture(s) right of it."""

from __future__ import annotations

from dataclasses import dataclass

PANEL_WIDTH = 340  # at most a third of the window; the rest shows the object

Rect = tuple[float, float, float, float]  # x, y, width, height in window units, origin top-left
Viewport = tuple[int, int, int, int]  # x, y, width, height in GL pixels, origin bottom-left


def panel_width(window_width: int) -> int:
    return min(PANEL_WIDTH, window_width // 3)


def inside(rect: Rect, x: float, y: float) -> bool:
    return rect[0] <= x < rect[0] + rect[2] and rect[1] <= y < rect[1] + rect[3]


@dataclass(frozen=True)
class Layout:
    """Where things go this frame: the panel on the left, the object's picture(s) in the rest."""

    width: int  # window size, in the units of mouse positions and ImGui
    height: int
    scale: tuple[float, float]  # framebuffer pixels per window unit (HiDPI)

    @property
    def panel(self) -> int:
        return panel_width(self.width)

    @property
    def view(self) -> Rect:
        return (self.panel, 0, self.width - self.panel, self.height)

    def pictures(self, count: int, aspect: float = 1.0) -> list[Rect]:
        """`count` equal pictures of width/height `aspect` side by side, as large as fit, centered
        in the view."""
        _, _, view_w, view_h = self.view
        # whole units, so a frame the view's size shows 1:1
        height = max(0, min(round(view_w // count / aspect), view_h))
        width = min(round(height * aspect), view_w // count)
        x0 = self.panel + (view_w - width * count) // 2
        y0 = (view_h - height) // 2
        return [(x0 + i * width, y0, width, height) for i in range(count)]

    def gl_viewport(self, rect: Rect) -> Viewport:
        x, y, w, h = rect
        sx, sy = self.scale
        return (round(x * sx), round((self.height - y - h) * sy), round(w * sx), round(h * sy))
