"""Mouse and keyboard → the orbit camera (a models.cameras.Orbit; the convention lives there).

Left-drag orbits, scroll zooms, right- or middle-drag pans the target, arrow keys orbit,
R or a double-click resets; a left drag with Ctrl held is the EPI scanline pick's
(viewer/epi_panel.py), not the camera's. Drags are decided after imgui.new_frame(), where ImGui
already knows whether the panel owns the mouse (inside GLFW callbacks that answer is a frame late).
"""

from __future__ import annotations

import math
from dataclasses import replace

from imgui_bundle import imgui

from models.cameras import DEFAULT_FOV_DEG, Orbit
from viewer.layout import Rect, inside

ELEVATION_LIMIT = 89.0
RADIUS_RANGE = (1.2, 10.0)  # objects fit the unit sphere: stay outside it, near enough to see
DEGREES_PER_PIXEL = 0.4
KEY_DEGREES_PER_SECOND = 90.0
ZOOM_PER_WHEEL_STEP = 0.9


class OrbitCamera:
    """The viewer's camera state and the input gestures that change it."""

    def __init__(self, home: Orbit):
        self.home = home
        self.orbit = home
        self._drag_button: int | None = None

    def rotate(self, dx: float, dy: float) -> None:
        """Turn by a drag of (dx, dy) pixels: the object follows the mouse."""
        elevation = self.orbit.elevation + dy * DEGREES_PER_PIXEL
        self.orbit = replace(
            self.orbit,
            azimuth=(self.orbit.azimuth - dx * DEGREES_PER_PIXEL) % 360.0,
            elevation=max(-ELEVATION_LIMIT, min(ELEVATION_LIMIT, elevation)),
        )

    def zoom(self, wheel_steps: float) -> None:
        radius = self.orbit.radius * ZOOM_PER_WHEEL_STEP**wheel_steps
        self.orbit = replace(self.orbit, radius=max(RADIUS_RANGE[0], min(RADIUS_RANGE[1], radius)))

    def pan(self, dx: float, dy: float, view_height: float) -> None:
        """Slide the target in the image plane so the point under the mouse follows it."""
        pose = self.orbit.cam2world()
        right, down = pose[:3, 0], pose[:3, 1]
        world_per_pixel = 2 * self.orbit.radius * math.tan(math.radians(DEFAULT_FOV_DEG) / 2)
        world_per_pixel /= max(view_height, 1.0)
        shift = (right * dx + down * dy) * world_per_pixel
        target = tuple(float(t - s) for t, s in zip(self.orbit.target, shift, strict=True))
        self.orbit = replace(self.orbit, target=target)

    def reset(self) -> None:
        self.orbit = self.home

    def handle_input(self, view: Rect, dt: float) -> None:
        """Apply this frame's mouse and keyboard input; call between new_frame() and render()."""
        io = imgui.get_io()
        x, y = io.mouse_pos.x, io.mouse_pos.y
        over_view = inside(view, x, y) and not io.want_capture_mouse
        if self._drag_button is None and over_view:
            for button in (0, 1, 2):
                if imgui.is_mouse_clicked(button) and not (button == 0 and io.key_ctrl):
                    self._drag_button = button
                    imgui.reset_mouse_drag_delta(button)
            if imgui.is_mouse_double_clicked(0):
                self.reset()
            if io.mouse_wheel:
                self.zoom(io.mouse_wheel)
        if self._drag_button is not None:
            delta = imgui.get_mouse_drag_delta(self._drag_button, 0.0)
            imgui.reset_mouse_drag_delta(self._drag_button)
            if self._drag_button == 0:
                self.rotate(delta.x, delta.y)
            else:
                self.pan(delta.x, delta.y, view[3])
            if not imgui.is_mouse_down(self._drag_button):
                self._drag_button = None
        if io.want_capture_keyboard:
            return
        step = KEY_DEGREES_PER_SECOND * dt / DEGREES_PER_PIXEL  # in drag pixels
        keys = imgui.Key
        dx = imgui.is_key_down(keys.right_arrow) - imgui.is_key_down(keys.left_arrow)
        dy = imgui.is_key_down(keys.up_arrow) - imgui.is_key_down(keys.down_arrow)
        if dx or dy:
            self.rotate(dx * step, dy * step)
        if imgui.is_key_pressed(keys.r, repeat=False):
            self.reset()
