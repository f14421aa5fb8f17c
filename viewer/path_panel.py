"""The panel's "Record path" section and the PathRecording it edits.

PathRecording (no widgets) holds the keyframes taken from the view (engine/camera_path.py's
format: camera and instance or blend), whether the path loops, and the video's frames and rate;
it saves them as the path file `main.py --headless --path` reads and exports them as an MP4 on a
thread (viewer/path_export.py). PathPanel draws its widgets: add keyframe, the list with delete last
and clear, loop, frames, fps, save path, export video with its progress, and what happened.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import torch
from imgui_bundle import imgui

from engine.camera_path import CameraPath, CameraPathError, Keyframe, view_keyframe, write_camera_path
from engine.latents import LatentSelection
from engine.video import VideoError
from models.cameras import Orbit
from models.checkpoint import Checkpoint
from models.resolution import Resolution
from viewer.headless import DEFAULT_FPS, DEFAULT_FRAMES
from viewer.panel import size_text
from viewer.path_export import PathVideoExport, VideoSettings
from viewer.reconstruct import user_path
from viewer.state import ViewerState

FRAMES_RANGE = (1, 10_000)
FPS_RANGE = (1.0, 120.0)
KEYFRAME_LIST_HEIGHT = 90
WARNING = imgui.ImVec4(1.0, 0.55, 0.3, 1.0)


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


def headless_command(ckpt_path: Path, path_file: str, frames: int, fps: float, res: Resolution) -> str:
    """The command line that renders a saved path file as the export button does (str(res) is
    --res's own form, N or WxH)."""
    return (f"python main.py --ckpt {shlex.quote(str(ckpt_path))} --headless --path "
            f"{shlex.quote(path_file)} --frames {frames} --fps {fps:g} --res {res} --out video.mp4")


def code_label(keyframe: Keyframe, names: list[str]) -> str:
    if len(keyframe.weights) == 1:
        return names[keyframe.weights[0][0]]
    return " + ".join(f"{weight:.2f} {names[index]}" for index, weight in keyframe.weights)


class PathPanel:
    """The widgets of a PathRecording; draw() goes inside the control panel's window."""

    def __init__(self, recording: PathRecording, names: list[str], ckpt_path: Path):
        self.rec, self.names, self.ckpt_path = recording, names, ckpt_path
        self.path_file = "camera_path.json"
        self.video_file = "camera_path.mp4"
        self.message: str | None = None
        self.is_error = False

    def draw(self, state: ViewerState, view: Orbit, device: torch.device, precision: str,
             backend: str) -> None:
        if not imgui.collapsing_header("Record path"):
            return
        self._keyframes(state, view)
        self._timing()
        self._save(state.res)
        self._export(state.res, device, precision, backend)
        if self.message:
            self._text(self.message, self.is_error)

    def _say(self, message: str, is_error: bool = False) -> None:
        self.message, self.is_error = message, is_error

    @staticmethod
    def _text(text: str, is_error: bool) -> None:
        color = WARNING if is_error else imgui.get_style().color_(imgui.Col_.text)
        imgui.push_style_color(imgui.Col_.text, color)
        imgui.text_wrapped(text)
        imgui.pop_style_color()

    def _keyframes(self, state: ViewerState, view: Orbit) -> None:
        rec = self.rec
        if imgui.button("Add keyframe"):
            try:
                rec.add(view, state.latent_selection())
                self.message = None
            except CameraPathError as error:
                self._say(str(error), is_error=True)
        imgui.same_line()
        imgui.begin_disabled(not rec.keyframes)
        if imgui.button("Delete last"):
            rec.delete_last()
        imgui.same_line()
        if imgui.button("Clear"):
            rec.clear()
        imgui.end_disabled()
        if view.target != Orbit().target:
            imgui.text_disabled("the pan is not recorded: path files orbit the origin")
        imgui.text(f"{len(rec.keyframes)} keyframe(s)")
        if rec.keyframes:
            imgui.begin_child("##keyframes", (0, KEYFRAME_LIST_HEIGHT), imgui.ChildFlags_.borders)
            for number, keyframe in enumerate(rec.keyframes, 1):
                orbit = keyframe.orbit
                imgui.text(f"{number}. az {orbit.azimuth:.0f} el {orbit.elevation:.0f} "
                           f"r {orbit.radius:.2f}  {code_label(keyframe, self.names)}")
            imgui.end_child()  # whatever begin_child returned (ImGui's rule)
        _, rec.loop = imgui.checkbox("loop back to the first", rec.loop)

    def _timing(self) -> None:
        rec = self.rec
        _, frames = imgui.input_int("frames", rec.frames)
        _, fps = imgui.input_float("fps", rec.fps, 1.0, 10.0, "%.1f")
        rec.frames = min(max(frames, FRAMES_RANGE[0]), FRAMES_RANGE[1])
        rec.fps = min(max(fps, FPS_RANGE[0]), FPS_RANGE[1])

    def _save(self, res: Resolution) -> None:
        _, self.path_file = imgui.input_text("path file", self.path_file)
        if imgui.button("Save path"):
            try:
                written = self.rec.save(user_path(self.path_file))
            except CameraPathError as error:
                self._say(str(error), is_error=True)
            else:
                command = headless_command(self.ckpt_path, self.path_file, self.rec.frames, self.rec.fps, res)
                self._say(f"{written}; render it with: {command}")

    def _export(self, res: Resolution, device: torch.device, precision: str, backend: str) -> None:
        _, self.video_file = imgui.input_text("video file", self.video_file)
        exporting = self.rec.exporting
        imgui.begin_disabled(exporting)
        if imgui.button(f"Export video ({size_text(res)}, {backend})"):
            try:
                self.rec.start_export(user_path(self.video_file), res, device, precision, backend)
                self.message = None
            except (CameraPathError, VideoError) as error:
                self._say(str(error), is_error=True)
        imgui.end_disabled()
        export = self.rec.export
        if export is None:
            return
        status = export.status()
        if status.running:
            imgui.same_line()
            if imgui.button("Cancel"):
                export.cancel()
            imgui.progress_bar(status.done / status.total, (-1, 0),
                               f"{status.done}/{status.total} frames -> {export.settings.out}")
        else:
            self._text(status.outcome, status.failed)
