"""The display shaders: a rendered frame's textures → colors, in a window or an offscreen framebuffer.

The window and the headless export both draw through `Display.draw`, so a PNG written without a
window shows exactly what the window shows for the same frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import moderngl
import numpy as np

from engine.display_mode import DisplayMode
from engine.texture import SHADER_DIR
from models.resolution import Resolution
from viewer.layout import Viewport


class ShaderMode(IntEnum):
    """How shaders/display.frag reads a pane's texture: its `mode` uniform."""

    RGB = 0
    DEPTH = 1
    NORMALS = 2
    DIFFERENCE = 3


DIFFERENCE_GAIN = 4.0  # a mean absolute difference of 0.25 reaches the top of the heatmap


@dataclass
class Pane:
    """One picture: a texture and how the display shader reads it."""

    texture: moderngl.Texture
    mode: ShaderMode = ShaderMode.RGB
    near: float = 0.0
    far: float = 1.0
    reference: moderngl.Texture | None = None  # the second image of a DIFFERENCE pane


class Display:
    """The display program and its full-screen quad, built in any moderngl context."""

    def __init__(self, ctx: moderngl.Context):
        self.ctx = ctx
        self.program = ctx.program(
            vertex_shader=(SHADER_DIR / "quad.vert").read_text(),
            fragment_shader=(SHADER_DIR / "display.frag").read_text(),
        )
        self.quad = ctx.vertex_array(self.program, [])

    def _set(self, name: str, value) -> None:
        if name in self.program:  # the GLSL compiler drops uniforms a build does not use
            self.program[name].value = value

    def draw(self, pane: Pane, viewport: Viewport) -> None:
        """Draw one pane into the bound framebuffer's `viewport`."""
        self.ctx.viewport = viewport
        pane.texture.use(0)
        self._set("image", 0)
        if pane.reference is not None:
            pane.reference.use(1)
            self._set("reference", 1)
        self._set("mode", int(pane.mode))
        self._set("near", pane.near)
        self._set("far", pane.far)
        self._set("gain", DIFFERENCE_GAIN)
        self.quad.render(moderngl.TRIANGLE_STRIP, vertices=4)

    def read_image(self, panes: list[Pane], res: Resolution | int) -> np.ndarray:
        """Draw panes side by side, each W × H (an int N: N × N), offscreen; (H, W * len(panes), 3)
        uint8."""
        res = Resolution.of(res)
        width, height = res.width, res.height
        fbo = self.ctx.simple_framebuffer((width * len(panes), height), components=4)
        try:
            fbo.use()
            fbo.clear(0.0, 0.0, 0.0, 1.0)
            for i, pane in enumerate(panes):
                self.draw(pane, (i * width, 0, width, height))
            data = fbo.read(components=3, alignment=1)
        finally:
            if self.ctx.screen is not None:  # a window's context: draw on screen again
                self.ctx.screen.use()
            fbo.release()
        _ = self.ctx.error  # moderngl leaves GL_INVALID_OPERATION pending after a read (desktop.md)
        image = np.frombuffer(data, np.uint8).reshape(height, width * len(panes), 3)
        return np.ascontiguousarray(image[::-1])  # GL rows run bottom-up


# A frame of a single-pane display mode is read as the shader mode of the same name.
SINGLE_PANE = {DisplayMode.RGB: ShaderMode.RGB, DisplayMode.DEPTH: ShaderMode.DEPTH,
               DisplayMode.NORMALS: ShaderMode.NORMALS}


def frame_panes(
    mode: DisplayMode,
    image: moderngl.Texture,
    reference: moderngl.Texture | None = None,
    depth_range: tuple[float, float] = (0.0, 1.0),
) -> list[Pane]:
    """How a frame of a display mode is shown: one pane, or LFN | volumetric | difference."""
    if mode is DisplayMode.COMPARE:
        if reference is None:
            return [Pane(image)]
        return [Pane(image), Pane(reference), Pane(image, ShaderMode.DIFFERENCE, reference=reference)]
    return [Pane(image, SINGLE_PANE[mode], *depth_range)]
