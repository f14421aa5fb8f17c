"""Headless rendering: one camera → PNG, or an azimuth turntable → GIF, with no window.

Frames go through the window's own path (engine/frame.py → texture → shaders/ display program),
drawn offscreen in an EGL context at res × res, so a PNG matches the window for the same camera.
Without EGL the renderer's tensor is written directly (said once on stdout).
"""

from __future__ import annotations

from dataclasses import replace

import moderngl
import numpy as np
import torch
from PIL import Image

from engine.config import HeadlessConfig
from engine.display_mode import DisplayMode
from engine.frame import Frame, FrameRenderer, FrameRequest
from engine.latents import InstanceLatent, LatentBank
from engine.texture import FrameTexture
from models.checkpoint import Checkpoint
from models.renderer import make_renderer
from viewer.display import Display, frame_panes
from viewer.pointcloud import view_points, write_ply

TURNTABLE_FRAMES = 36
TURNTABLE_FRAME_MS = 80


def to_uint8(image: torch.Tensor) -> np.ndarray:
    return (image.float().clamp(0, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)


def direct_image(frame: Frame) -> np.ndarray:
    """The frame without the display shader: colors as they are, normals mapped to [0, 1],
    depth as gray (near bright, invalid black)."""
    image = frame.image.float()
    if frame.request.mode is DisplayMode.NORMALS:
        return to_uint8(image[..., :3] * 0.5 + 0.5)
    if frame.request.mode is DisplayMode.DEPTH:
        near, far = frame.depth_range
        gray = (1 - (image[..., 0] - near) / max(far - near, 1e-6)) * image[..., 1]
        return to_uint8(gray[..., None].expand(-1, -1, 3))
    return to_uint8(image[..., :3])


def depth_values(frame: Frame) -> np.ndarray:
    """(H, W) float32 depth of a depth frame, NaN where the light field says nothing."""
    depth, valid = frame.image[..., 0].float(), frame.image[..., 1] > 0.5
    return torch.where(valid, depth, torch.nan).cpu().numpy().astype(np.float32)


class OffscreenDisplay:
    """The display program in a standalone EGL context and a texture to feed it."""

    def __init__(self):
        self.ctx = moderngl.create_standalone_context(backend="egl")
        self.display = Display(self.ctx)
        self.texture = FrameTexture(self.ctx)

    def image(self, frame: Frame) -> np.ndarray:
        texture = self.texture.upload(frame.image)
        panes = frame_panes(frame.request.mode, texture, depth_range=frame.depth_range)
        return self.display.read_image(panes, frame.request.res)

    def release(self) -> None:
        self.texture.release()
        self.ctx.release()


def open_offscreen() -> OffscreenDisplay | None:
    try:
        return OffscreenDisplay()
    except Exception as error:  # no EGL here: the tensor itself is still a faithful picture
        print(f"offscreen GL unavailable ({type(error).__name__}: {error}); "
              "writing the renderer's output without the display shader")
        return None


def run_headless(config: HeadlessConfig, ckpt: Checkpoint) -> int:
    render = config.render
    renderer = make_renderer(ckpt.model, render.device, render.precision, render.backend)
    frames = FrameRenderer(renderer, LatentBank(ckpt.latents, ckpt.instance_names))
    home = config.home
    gif = config.out.suffix.lower() == ".gif"
    count = (config.turntable_frames or TURNTABLE_FRAMES) if gif else 1
    orbits = [replace(home, azimuth=(home.azimuth + 360.0 * k / count) % 360.0) for k in range(count)]
    res, latent = config.res, InstanceLatent(config.instance)

    offscreen = open_offscreen()
    try:
        images = []
        for orbit in orbits:
            frame = frames.render(FrameRequest(orbit, res, config.mode, latent, config.summed_depth))
            images.append(offscreen.image(frame) if offscreen else direct_image(frame))
    finally:
        if offscreen:
            offscreen.release()

    pictures = [Image.fromarray(image) for image in images]
    if count == 1:
        pictures[0].save(config.out)
        if config.mode is DisplayMode.DEPTH:  # the numbers behind the colormap: world units along each ray
            depth_file = config.out.with_suffix(".npy")
            np.save(depth_file, depth_values(frame))
            print(f"wrote {depth_file} (float32 distance along each ray, NaN where invalid)")
    else:
        pictures[0].save(
            config.out, save_all=True, append_images=pictures[1:], duration=TURNTABLE_FRAME_MS, loop=0
        )
    print(f"wrote {config.out}")
    if config.ply is not None:  # the renderer still holds this instance's latent
        points, colors = view_points(renderer, home.cam2world(), res, config.summed_depth)
        write_ply(config.ply, points, colors)
        print(f"wrote {config.ply} ({len(points)} points)")
    return 0
