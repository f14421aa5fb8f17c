""""Record path" without widgets: the PathRecording that the window's panel (viewer/path_panel.py)
and the browser page (viewer/web.py) each edit.

A PathRecording holds the keyframes taken from a view (engine/camera_path.py's format: camera and
instance or blend), whether the path loops, and the video's frames and rate; it saves them as the
path file `main.py --headless --path` reads and exports them as an MP4 on a thread
(viewer/path_export.py).
"""

from __future__ import annotations

from pathlib import Path

import torch

from engine.camera_path import CameraPath, CameraPathError, Keyframe, view_keyframe, write_camera_path
from engine.latents import LatentSelection
from models.cameras import Orbit
from models.checkpoint import Checkpoint
from models.resolution import Resolution
from viewer.headless import DEFAULT_FPS, DEFAULT_FRAMES
from viewer.path_export import PathVideoExport, VideoSettings

FRAMES_RANGE = (1, 10_000)
FPS_RANGE = (1.0, 120.0)


class PathRecording:
    """Keyframes taken from the view, saved as a path file or exported as a video."""

    def __init__(self, ckpt: Checkpoint):
        self.ckpt = ckpt
        self.keyframes: list[Keyframe] = []
        self.loop = False
        self.frames = DEFAULT_FRAMES[".mp4"]
        self.fps = DEFAULT_FPS[".mp4"]
        self.export: PathVideoExport | None = None  # the last one started

    def add(self, view: Orbit, selection: LatentSelection) -> None:
        """Append the view's camera and code; CameraPathError for a code no path file can name."""
        self.keyframes.append(view_keyframe(view, selection, self.keyframes[-1] if self.keyframes else None))

    def delete_last(self) -> None:
        if self.keyframes:
            self.keyframes.pop()

    def clear(self) -> None:
        self.keyframes.clear()

    def set_timing(self, frames: int, fps: float) -> None:
        """The video's frame count and rate, each held within its range."""
        self.frames = min(max(int(frames), FRAMES_RANGE[0]), FRAMES_RANGE[1])
        self.fps = min(max(float(fps), FPS_RANGE[0]), FPS_RANGE[1])

    def camera_path(self) -> CameraPath:
        if not self.keyframes:
            raise CameraPathError("no keyframes yet: add one from the view")
        return CameraPath(tuple(self.keyframes), self.loop)

    def save(self, out: Path) -> str:
        """Write the path file; what was written."""
        write_camera_path(out, self.camera_path())
        return f"wrote {out.resolve()} ({len(self.keyframes)} keyframes)"

    @property
    def exporting(self) -> bool:
        return self.export is not None and self.export.status().running

    def start_export(self, out: Path, res: Resolution, device: torch.device, precision: str,
                     backend: str) -> None:
        """Render the path to `out` on the export thread (one export at a time: ignored while one
        runs); CameraPathError or VideoError at once for what could never work (no keyframes, a
        bad file name)."""
        if self.exporting:
            return
        settings = VideoSettings(out, self.frames, self.fps, res, device, precision, backend)
        self.export = PathVideoExport(self.ckpt, self.camera_path(), settings)

    def close(self) -> None:
        """Stop a running export (its partial video is removed) within a bounded wait."""
        if self.export is not None:
            self.export.close()


def code_label(keyframe: Keyframe, names: list[str]) -> str:
    if len(keyframe.weights) == 1:
        return names[keyframe.weights[0][0]]
    return " + ".join(f"{weight:.2f} {names[index]}" for index, weight in keyframe.weights)


def keyframe_label(number: int, keyframe: Keyframe, names: list[str]) -> str:
    """One line of the keyframe list: its number, camera and code."""
    orbit = keyframe.orbit
    return (f"{number}. az {orbit.azimuth:.0f} el {orbit.elevation:.0f} r {orbit.radius:.2f}  "
            f"{code_label(keyframe, names)}")
