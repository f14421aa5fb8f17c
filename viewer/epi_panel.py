"""The panel's "Epipolar-plane image" section, and its marks on the view.

While the section is open, the view's scanline renders as an EPI on the render thread (engine/frame.py
EpiRequest, models/epi.py); this module picks the scanline (a slider, or Ctrl + click or drag on the
view), shows the finished EPI as an ImGui image and draws over it the lines that the view's gradient
depth predicts, so one sees whether the stripes run along them. On the view it marks the scanline
and the pixels whose lines are drawn.
"""

from __future__ import annotations

import moderngl
from imgui_bundle import imgui

from engine.frame import EpiFrame, EpiRequest, FrameRequest
from engine.texture import FrameTexture
from models.epi import EpipolarImage
from viewer.layout import Rect, inside
from viewer.state import ViewerState

EPI_ASPECT = 0.75  # shown height / width: the shift axis is stretched to it, lines and all
LINE = imgui.IM_COL32(255, 230, 40, 230)
LINE_SHADOW = imgui.IM_COL32(0, 0, 0, 150)  # under each line, so it reads on light and dark stripes
SCANLINE = imgui.IM_COL32(255, 230, 40, 160)
TICK_PX = 5.0
WARNING = imgui.ImVec4(1.0, 0.55, 0.3, 1.0)

Point = tuple[float, float]


def line_segments(epi: EpipolarImage, width: int, rect: Rect) -> list[tuple[Point, Point]]:
    """Each predicted line as a segment in window coordinates over the EPI, `width` pixels wide (the
    view's), drawn in `rect`: from the first row's center (the smallest shift, at the top) to the
    last row's."""
    x, y, w, h = rect
    rows = len(epi.shifts)
    top, bottom = y + 0.5 * h / rows, y + h - 0.5 * h / rows
    first, last = float(epi.shifts[0]), float(epi.shifts[-1])
    return [((x + line.x(first) * w / width, top), (x + line.x(last) * w / width, bottom))
            for line in epi.lines]


def epi_request(state: ViewerState, frame: FrameRequest) -> EpiRequest | None:
    """The EPI of the view that `frame` renders, at its resolution (coarse while moving, like the
    view); None while the section is closed."""
    if not state.epi_open:
        return None
    return EpiRequest(frame.orbit, frame.res, frame.latent, state.epi_scanline, state.epi_shift,
                      summed_depth=state.summed_depth)


def pick_scanline(state: ViewerState, picture: Rect) -> None:
    """Ctrl + left button on the picture puts the scanline under the mouse (the orbit camera
    leaves Ctrl + left drags alone); call between new_frame() and render()."""
    io = imgui.get_io()
    x, y = io.mouse_pos.x, io.mouse_pos.y
    if not (state.epi_open and io.key_ctrl and imgui.is_mouse_down(0) and inside(picture, x, y)
            and not io.want_capture_mouse):
        return
    rows = state.res.height
    row = int((y - picture[1]) / picture[3] * rows)
    state.epi_scanline = (row + 0.5) / rows  # the row's center at the requested resolution


class EpiPanel:
    """The section's widgets and the last finished EPI, uploaded into its own texture (UI thread)."""

    def __init__(self, ctx: moderngl.Context):
        self.texture = FrameTexture(ctx)
        self.shown: EpiFrame | None = None
        self.shown_texture: moderngl.Texture | None = None
        self.problem: str | None = None  # why the EPI shown is not the view's

    def show(self, done: EpiFrame | BaseException) -> None:
        """Take a finished EPI (or the error that ended one) from the render thread."""
        if isinstance(done, BaseException):
            self.problem = f"EPI failed: {type(done).__name__}: {done}"
            return
        self.shown, self.problem = done, None
        self.shown_texture = self.texture.upload(done.epi.image)

    def draw(self, state: ViewerState) -> None:
        """The section; inside the control panel's window."""
        state.epi_open = imgui.collapsing_header("Epipolar-plane image")
        if not state.epi_open:
            return
        rows = state.res.height
        changed, row = imgui.slider_int("scanline", int(state.epi_scanline * rows), 0, rows - 1)
        if changed:
            state.epi_scanline = (row + 0.5) / rows
        _, state.epi_shift = imgui.slider_float("shift", state.epi_shift, 0.02, 0.5, "±%.2f × radius")
        imgui.text_disabled("Ctrl + click or drag on the view: scanline")
        if self.problem:
            imgui.push_style_color(imgui.Col_.text, WARNING)
            imgui.text_wrapped(self.problem)
            imgui.pop_style_color()
        if self.shown is None:
            imgui.text("rendering...")  # the default font has no "…"
            return
        width = imgui.get_content_region_avail().x
        imgui.image(imgui.ImTextureRef(self.shown_texture.glo), (width, width * EPI_ASPECT))
        self._draw_lines(imgui.get_item_rect_min(), imgui.get_item_rect_max())
        request, epi = self.shown.request, self.shown.epi
        reach = request.shift * request.orbit.radius
        imgui.text_wrapped(
            f"rows: camera shifted s = -{reach:.2f} (top) to +{reach:.2f} (bottom) along its right "
            f"axis, {len(epi.shifts)} x {request.res.width} rays, {self.shown.render_ms:.0f} ms. "
            f"Lines: x(s) = x0 - f s / Z from the view's gradient depth ({len(epi.lines)} pixels).")

    def _draw_lines(self, top_left: imgui.ImVec2, bottom_right: imgui.ImVec2) -> None:
        rect = (top_left.x, top_left.y, bottom_right.x - top_left.x, bottom_right.y - top_left.y)
        draw_list = imgui.get_window_draw_list()
        draw_list.push_clip_rect(top_left, bottom_right, True)
        for start, end in line_segments(self.shown.epi, self.shown.request.res.width, rect):
            draw_list.add_line(start, end, LINE_SHADOW, 3.0)
            draw_list.add_line(start, end, LINE, 1.0)
        draw_list.pop_clip_rect()

    def draw_on_view(self, state: ViewerState, pictures: list[Rect]) -> None:
        """The scanline across each picture of the view, and ticks at the pixels whose lines the
        EPI shows."""
        if not state.epi_open:
            return
        draw_list = imgui.get_background_draw_list()
        for x, y, w, h in pictures:
            row_y = y + state.epi_scanline * h
            draw_list.add_line((x, row_y), (x + w, row_y), SCANLINE, 1.0)
            if self.shown is None or self.shown.request.scanline != state.epi_scanline:
                continue  # the ticks belong to the EPI of another row
            for line in self.shown.epi.lines:
                tick_x = x + (line.column + 0.5) * w / self.shown.request.res.width
                draw_list.add_line((tick_x, row_y - TICK_PX), (tick_x, row_y + TICK_PX), LINE, 1.0)

    def release(self) -> None:
        self.texture.release()
