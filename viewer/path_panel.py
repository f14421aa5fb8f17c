"""The panel's "Record path" section: the widgets of a PathRecording (viewer/path_recording.py).

PathPanel draws add keyframe, the list with delete last and clear, loop, frames, fps, save path,
export video with its progress, and what happened.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import torch
from imgui_bundle import imgui

from engine.camera_path import CameraPathError
from engine.video import VideoError
from engine.widget_map import EXPORTING, section_label
from models.cameras import Orbit
from models.resolution import Resolution
from viewer.panel import size_text
from viewer.path_recording import PathRecording, keyframe_label
from viewer.reconstruct import user_path
from viewer.state import ViewerState

KEYFRAME_LIST_HEIGHT = 90
WARNING = imgui.ImVec4(1.0, 0.55, 0.3, 1.0)


def headless_command(ckpt_path: Path, path_file: str, frames: int, fps: float, res: Resolution,
                     precision: str, backend: str) -> str:
    """The command line that renders a saved path file as the export button does, in the viewer's
    precision and backend (str(res) is --res's own form, N or WxH)."""
    return (f"python main.py --ckpt {shlex.quote(str(ckpt_path))} --headless --path "
            f"{shlex.quote(path_file)} --frames {frames} --fps {fps:g} --res {res} "
            f"--precision {precision} --backend {backend} --out video.mp4")


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
        job = EXPORTING if self.rec.exporting else None
        if not imgui.collapsing_header(section_label("Record path", job)):
            return
        self._keyframes(state, view)
        self._timing()
        self._save(state.res, precision, backend)
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
                imgui.text(keyframe_label(number, keyframe, self.names))
            imgui.end_child()  # whatever begin_child returned (ImGui's rule)
        _, rec.loop = imgui.checkbox("loop back to the first", rec.loop)

    def _timing(self) -> None:
        rec = self.rec
        _, frames = imgui.input_int("frames", rec.frames)
        _, fps = imgui.input_float("fps", rec.fps, 1.0, 10.0, "%.1f")
        rec.set_timing(frames, fps)

    def _save(self, res: Resolution, precision: str, backend: str) -> None:
        _, self.path_file = imgui.input_text("path file", self.path_file)
        if imgui.button("Save path"):
            try:
                written = self.rec.save(user_path(self.path_file))
            except CameraPathError as error:
                self._say(str(error), is_error=True)
            else:
                command = headless_command(self.ckpt_path, self.path_file, self.rec.frames, self.rec.fps, res,
                                           precision, backend)
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
