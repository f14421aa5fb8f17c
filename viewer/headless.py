"""Headless rendering: one camera → PNG, or a camera path (a turntable by default, or keyframes
from a JSON file: engine/camera_path.py) → GIF or MP4, with no window.

Frames go through the window's own path (engine/frame.py → texture → shaders/ display program),
drawn offscreen in an EGL context at the frame's width × height (--res N or WxH; viewer/offscreen.py),
so a PNG matches the window for the same camera. Without EGL (or moderngl) the renderer's tensor is
written directly (said once on stdout); this module imports no GL until it opens the context. The
viewer's "Export video" (viewer/path_export.py) renders its frames with the same path_pictures.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from engine.camera_path import TURNTABLE, PathFrame, camera_path
from engine.config import HeadlessConfig
from engine.display_mode import DisplayMode
from engine.frame import Frame, FrameRenderer, FrameRequest
from engine.latents import InstanceLatent, LatentBank, LatentSelection, WeightedLatent
from engine.timing import ProducerClock
from engine.video import write_mp4
from models.checkpoint import Checkpoint
from models.renderer import make_renderer
from models.resolution import Resolution
from viewer.pointcloud import view_points, write_ply

if TYPE_CHECKING:
    from viewer.offscreen import OffscreenDisplay

DEFAULT_FRAMES = {".gif": 36, ".mp4": 120}
DEFAULT_FPS = {".gif": 12.5, ".mp4": 30.0}  # a GIF's frames last whole milliseconds: 80 ms each


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


def open_offscreen() -> OffscreenDisplay | None:
    try:
        from viewer.offscreen import OffscreenDisplay  # GL only here: a browser server may have none

        return OffscreenDisplay()
    except Exception as error:  # no EGL here: the tensor itself is still a faithful picture
        print(f"offscreen GL unavailable ({type(error).__name__}: {error}); "
              "writing the renderer's output without the display shader")
        return None


def picture(offscreen: OffscreenDisplay | None, frame: Frame) -> np.ndarray:
    """The frame as the window shows it, or as the renderer gave it where there is no EGL."""
    return offscreen.image(frame) if offscreen else direct_image(frame)


def path_pictures(frames: FrameRenderer, offscreen: OffscreenDisplay | None, steps: Iterable[PathFrame],
                  res: Resolution, mode: DisplayMode = DisplayMode.RGB, summed_depth: bool = False,
                  stereo_depth: bool = False) -> Iterator[np.ndarray]:
    """A camera path's pictures, each rendered when taken: a video encoder holds one at a time."""
    for step in steps:
        request = FrameRequest(step.orbit, res, mode, path_latent(step.weights), summed_depth, stereo_depth)
        yield picture(offscreen, frames.render(request))


@dataclass(frozen=True)
class PathExportTimes:
    """Where a camera path's export spent its wall time: rendering its frames (network, display
    shader, read back), encoding them (the rest of writing the file: the loop's wait on the encoder,
    whose threads also work while the next frame renders), and all of it from building the renderer
    to the file written (the remainder is setup: renderer, EGL context, and their release)."""

    frames: int
    res: Resolution
    render_s: float
    encode_s: float
    total_s: float

    def line(self, out: Path) -> str:
        # milliseconds shown: a short clip encodes in a few of them, which 10 ms steps read as 0
        return (f"wrote {out}: {self.frames} frames at {self.res.label}, {self.total_s:.3f} s "
                f"(render {self.render_s:.3f} s, encode {self.encode_s:.3f} s, "
                f"setup {self.total_s - self.render_s - self.encode_s:.3f} s)")


def run_headless(config: HeadlessConfig, ckpt: Checkpoint) -> int:
    started = time.perf_counter()
    render = config.render
    renderer = make_renderer(ckpt.model, render.device, render.precision, render.backend)
    frames = FrameRenderer(renderer, LatentBank.of_checkpoint(ckpt))
    suffix = config.out.suffix.lower()
    path = None
    if suffix != ".png":  # read the path before any rendering: a bad file fails at once
        path = camera_path(config.path or TURNTABLE, config.home, config.instance, len(ckpt.instance_names))

    offscreen = open_offscreen()
    try:
        if path is None:
            request = FrameRequest(config.home, config.res, config.mode, InstanceLatent(config.instance),
                                   config.summed_depth, config.stereo_depth)
            frame = frames.render(request)
            Image.fromarray(picture(offscreen, frame)).save(config.out)
            if config.mode is DisplayMode.DEPTH:  # the numbers behind the colormap: world units
                depth_file = config.out.with_suffix(".npy")
                np.save(depth_file, depth_values(frame))
                print(f"wrote {depth_file} (float32 distance along each ray, NaN where invalid)")
        else:
            steps = tqdm(path.frames(config.frames or DEFAULT_FRAMES[suffix]),
                         desc=f"rendering {config.out.name}", unit="frame",
                         disable=not sys.stderr.isatty())  # a bar for people, not logs
            fps = config.fps or DEFAULT_FPS[suffix]
            rendering = ProducerClock()
            pictures = rendering.timed(
                path_pictures(frames, offscreen, steps, config.res, config.mode, config.summed_depth,
                              config.stereo_depth),
                render.device)
            writing = time.perf_counter()
            if suffix == ".mp4":
                write_mp4(config.out, pictures, fps)  # encoded as rendered: memory stays one frame
            else:
                images = [Image.fromarray(image) for image in pictures]
                images[0].save(config.out, save_all=True, append_images=images[1:],
                               duration=round(1000.0 / fps), loop=0)
            encode_s = time.perf_counter() - writing - rendering.seconds
    finally:
        if offscreen:
            offscreen.release()
    if path is None:
        print(f"wrote {config.out}")
    else:
        print(PathExportTimes(rendering.items, config.res, rendering.seconds, encode_s,
                              time.perf_counter() - started).line(config.out))
    if config.ply is not None:  # the instance's points, whatever code a camera path ended on
        renderer.set_latent(*ckpt.instance_code(config.instance))
        points, colors = view_points(renderer, config.home.cam2world(), config.res, config.summed_depth,
                                     config.stereo_depth)
        write_ply(config.ply, points, colors)
        print(f"wrote {config.ply} ({len(points)} points)")
    return 0


def path_latent(weights: tuple[tuple[int, float], ...]) -> LatentSelection:
    """A path frame's code: a plain instance where it is one (its label and twin stay simple)."""
    if len(weights) == 1 and weights[0][1] == 1.0:
        return InstanceLatent(weights[0][0])
    return WeightedLatent(weights)
