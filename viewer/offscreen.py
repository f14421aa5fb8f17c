"""The window's display program drawn offscreen, in an EGL context of its own: what a headless
picture or an exported video frame looks like (viewer/headless.py opens it).
"""

from __future__ import annotations

import numpy as np

from engine.egl_context import offscreen_context, release_context
from engine.frame import Frame
from engine.texture import FrameTexture
from viewer.display import Display, frame_panes


class OffscreenDisplay:
    """The display program in a standalone EGL context and a texture to feed it."""

    def __init__(self):
        self.ctx = offscreen_context()
        self.display = Display(self.ctx)
        self.texture = FrameTexture(self.ctx)

    def image(self, frame: Frame) -> np.ndarray:
        texture = self.texture.upload(frame.image)
        panes = frame_panes(frame.request.mode, texture, depth_range=frame.depth_range)
        return self.display.read_image(panes, frame.request.res)

    def release(self) -> None:
        self.texture.release()
        release_context(self.ctx)  # on the export thread too, the context leaves memory
