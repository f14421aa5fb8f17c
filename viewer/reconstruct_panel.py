"""The panel's "Reconstruct from image..." section and the Reconstruction it drives.

Reconstruction (no GL, no widgets) starts a FitSession from a photo and pose, publishes the newest
fitted code to the view and saves it; ReconstructPanel draws the widgets: photo path and PNG list,
pose sliders, Reconstruct / Stop / Continue, the input thumbnail, the loss and PSNR curves, the
nearest training instances, interpolation toward an instance, and Save.
"""

from __future__ import annotations

import time
from pathlib import Path

import moderngl
import numpy as np
from imgui_bundle import imgui, implot

from engine.latents import FittedLatent, InstanceLatent
from models.cameras import Orbit
from models.checkpoint import Checkpoint
from viewer.fitted_latents import FittedLatentBank
from viewer.orbit import ELEVATION_LIMIT, RADIUS_RANGE
from viewer.reconstruct import (
    FitSession,
    ReconstructError,
    default_save_path,
    fit_resolution,
    load_input,
    read_pose,
    save_fitted,
    user_path,
)
from viewer.state import ViewerState

# About five pictures a second: enough to watch the fit converge, while its preview frames take a
# small share of the CPU from the fit.
PUBLISH_INTERVAL_S = 0.2
NEAREST_K = 5
THUMBNAIL = 96
PNG_LIST_MAX = 200
PNG_LIST_REFRESH_S = 1.0
WARNING = imgui.ImVec4(1.0, 0.55, 0.3, 1.0)


class Reconstruction:
    """One single-image reconstruction at a time, shown in the viewer as it converges."""

    def __init__(self, ckpt: Checkpoint, ckpt_path: Path, bank: FittedLatentBank,
                 options: dict | None = None):
        self.ckpt, self.ckpt_path, self.bank, self.options = ckpt, ckpt_path, bank, options
        self.res = fit_resolution(ckpt)
        self.session: FitSession | None = None
        self.photo: np.ndarray | None = None
        self.name = ""
        self.nearest: list[tuple[int, float]] = []
        self._published_step = 0
        self._published_at = float("-inf")

    def start(self, image: Path, pose: Orbit, state: ViewerState) -> None:
        """Fit a fresh latent to the photo at `image` seen from `pose`, and show it."""
        photo = load_input(image, self.res)  # a bad photo raises before the running fit is touched
        self.close()
        self.session = FitSession(self.ckpt.model, photo, pose, self.options)
        self.photo, self.name, self.nearest = photo, image.stem, []
        self._published_step, self._published_at = 0, float("-inf")
        self.session.resume()
        self.bank.publish(self.bank.table.mean(0))  # where the fit starts, not the last fit's end
        state.fitted_serial += 1
        state.fitted_label = f"{self.name} fit step 0"
        state.latent_source, state.fit_t = FittedLatent, 0.0

    def update(self, state: ViewerState, now: float) -> None:
        """Show the newest fitted code: at once when paused, at most every PUBLISH_INTERVAL_S else."""
        session = self.session
        step = session.latest if session else None
        if step is None or step.step == self._published_step:
            return
        if session.running and now - self._published_at < PUBLISH_INTERVAL_S:
            return
        self.bank.publish(step.latent)
        if not self.nearest:  # a fresh fit: offer to interpolate toward its closest training code
            state.fit_target = self.bank.nearest(step.latent, 1)[0][0]
        self.nearest = self.bank.nearest(step.latent, NEAREST_K)
        self._published_step, self._published_at = step.step, now
        state.fitted_serial += 1
        state.fitted_label = f"{self.name} fit step {step.step}"

    def save(self, path: Path) -> str:
        """Append the newest fitted code to a copy of the checkpoint at `path`; what was written."""
        step = self.session.latest if self.session else None
        if step is None:
            raise ReconstructError("nothing fitted yet")
        pose = self.session.pose
        meta = {"fitted_from": self.name, "fit_steps": step.step, "fit_psnr": round(step.psnr, 3),
                "fit_pose": [pose.azimuth, pose.elevation, pose.radius]}
        index = save_fitted(self.ckpt, step.latent, self.name, meta, path, self.ckpt_path)
        return f"wrote {path}: instance {index} ({self.name}, step {step.step})"

    @property
    def running(self) -> bool:
        return self.session is not None and self.session.running

    def stats(self) -> dict:
        """The --stats fields of the fit."""
        session = self.session
        return {
            "fit_steps": session.steps if session else 0,
            "fit_steps_per_s": round(session.steps_per_second, 2) if session else None,
            "fit_psnr": round(session.latest.psnr, 3) if session and session.latest else None,
        }

    def close(self) -> None:
        """End the fit's thread; the session stays readable (stats are written after close)."""
        if self.session is not None:
            self.session.close()


def folder_of(text: str) -> Path:
    """The folder whose PNGs the picker lists: the path's own (or itself), else the working one."""
    path = user_path(text)
    if text and path.is_dir():
        return path.resolve()
    if text and path.parent.is_dir():
        return path.parent.resolve()
    return Path.cwd()


def png_names(folder: Path) -> list[str]:
    try:
        names = sorted(p.name for p in folder.iterdir() if p.suffix.lower() == ".png" and p.is_file())
    except OSError:
        return []
    return names[:PNG_LIST_MAX]


class ReconstructPanel:
    """The widgets of the reconstruction; draw() goes inside the control panel's window."""

    def __init__(self, ctx: moderngl.Context, reconstruction: Reconstruction, names: list[str]):
        self.ctx, self.rec, self.names = ctx, reconstruction, names
        self.path = ""
        self.pose = Orbit()
        self.pose_note = "default orbit (no pose file)"
        self.save_path = str(default_save_path(reconstruction.ckpt_path))
        self.message: str | None = None
        self.is_error = False
        self.texture: moderngl.Texture | None = None
        self._shown_photo: np.ndarray | None = None
        self._pngs: tuple[Path, float, list[str]] = (Path(), float("-inf"), [])
        self._spacing = reconstruction.bank.typical_spacing()

    def draw(self, state: ViewerState, view: Orbit) -> None:
        if not imgui.collapsing_header("Reconstruct from image..."):
            return
        self._input(state, view)
        session = self.rec.session
        error = session.error if session else None
        if error or self.message:  # one line under the buttons: what went wrong, or what was saved
            color = WARNING if error or self.is_error else imgui.get_style().color_(imgui.Col_.text)
            imgui.push_style_color(imgui.Col_.text, color)
            imgui.text_wrapped(error or self.message)
            imgui.pop_style_color()
        if session is not None:
            self._progress(session)
            self._latent_tools(state)
            self._save()

    def _say(self, message: str, is_error: bool = False) -> None:
        self.message, self.is_error = message, is_error

    def _input(self, state: ViewerState, view: Orbit) -> None:
        changed, self.path = imgui.input_text("image", self.path)
        if changed:
            self._pose_from_sidecar()
        self._png_picker()
        pose = self.pose
        _, azimuth = imgui.slider_float("azimuth", pose.azimuth, 0.0, 360.0, "%.1f deg")
        _, elevation = imgui.slider_float("elevation", pose.elevation, -ELEVATION_LIMIT,
                                          ELEVATION_LIMIT, "%.1f deg")
        _, radius = imgui.slider_float("radius", pose.radius, *RADIUS_RANGE, "%.2f")
        self.pose = Orbit(azimuth, elevation, radius)
        imgui.text_disabled(self.pose_note)
        if imgui.button("Reconstruct"):
            try:
                if not self.path.strip():
                    raise ReconstructError("type the path of a PNG, or pick one in the list")
                self.rec.start(user_path(self.path), self.pose, state)
            except ReconstructError as error:
                self._say(str(error), is_error=True)
            else:
                self.message = None
        session = self.rec.session
        if session is not None:
            imgui.same_line()
            if session.running:
                if imgui.button("Stop"):
                    session.pause()
            elif imgui.button("Continue") and session.error is None:
                session.resume()
        imgui.same_line()
        if imgui.button("Pose = view"):  # when the photo's camera is easier to match by eye
            self.pose = Orbit(view.azimuth, view.elevation, view.radius)
            self.pose_note = "pose of the current view"

    def _pose_from_sidecar(self) -> None:
        """A photo's pose file sets the sliders; without one they go to the default orbit."""
        self.message = None
        try:
            pose = read_pose(user_path(self.path))
        except ReconstructError as error:
            self.pose, self.pose_note = Orbit(), "default orbit (pose file unusable)"
            self._say(str(error), is_error=True)
            return
        self.pose = pose or Orbit()
        self.pose_note = "pose from its .json file" if pose else "default orbit (no pose file)"

    def _png_picker(self) -> None:
        folder = folder_of(self.path)
        if not imgui.begin_combo("PNGs", f"in {folder}"):
            return
        cached, listed_at, names = self._pngs
        if cached != folder or time.monotonic() - listed_at > PNG_LIST_REFRESH_S:
            names = png_names(folder)
            self._pngs = (folder, time.monotonic(), names)
        if not names:
            imgui.text_disabled("no .png files here")
        for name in names:
            if imgui.selectable(name, False)[0]:
                self.path = str(folder / name)
                self._pose_from_sidecar()
        imgui.end_combo()

    def _thumbnail(self, photo: np.ndarray) -> None:
        if photo is not self._shown_photo:
            h, w = photo.shape[:2]
            rgba = np.dstack([photo, np.full((h, w), 255, np.uint8)])
            if self.texture is None or self.texture.size != (w, h):
                self.release()
                self.texture = self.ctx.texture((w, h), 4, dtype="f1")  # "u1" would sample as black
            self.texture.write(rgba.tobytes())
            self._shown_photo = photo
        imgui.image(imgui.ImTextureRef(self.texture.glo), (THUMBNAIL, THUMBNAIL))

    def _progress(self, session: FitSession) -> None:
        self._thumbnail(self.rec.photo)
        imgui.same_line()
        imgui.begin_group()
        step = session.latest
        imgui.text(self.rec.name)
        imgui.text("running" if session.running else "stopped")
        imgui.text(f"step {session.steps}, {session.steps_per_second:.1f}/s")
        if step is not None:
            imgui.text(f"loss {step.loss:.4f}")
            imgui.text(f"PSNR {step.psnr:.2f} dB")
        imgui.end_group()
        losses, psnrs = session.history()
        flags = implot.Flags_.no_menus | implot.Flags_.no_mouse_text
        if implot.begin_plot("##fit curve", (-1, 150), flags):
            implot.setup_legend(implot.Location_.north, implot.LegendFlags_.horizontal
                                | implot.LegendFlags_.outside)
            implot.setup_axes("step", "", 0, implot.AxisFlags_.auto_fit)
            implot.setup_axis(implot.ImAxis_.y2, "", implot.AxisFlags_.auto_fit | implot.AxisFlags_.opposite)
            implot.setup_axis_scale(implot.ImAxis_.y1, implot.Scale_.log10)
            implot.setup_axis_limits(implot.ImAxis_.x1, 0, max(len(losses), 10), implot.Cond_.always)
            if len(losses):
                implot.plot_line("loss", losses.astype(np.float32), xstart=1)
                implot.set_axes(implot.ImAxis_.x1, implot.ImAxis_.y2)
                implot.plot_line("PSNR (dB, right)", psnrs.astype(np.float32), xstart=1)
            implot.end_plot()

    def _latent_tools(self, state: ViewerState) -> None:
        imgui.separator_text("Nearest training instances")
        for index, distance in self.rec.nearest:
            shown = state.latent_source is InstanceLatent and state.instance == index
            if imgui.selectable(f"{distance:7.2f}  {self.names[index]}##near{index}", shown)[0]:
                state.instance, state.latent_source = index, InstanceLatent
        imgui.text_disabled(f"L2 in latent space; codes lie ~{self._spacing:.2f} apart")
        imgui.separator_text("Interpolate fitted -> instance")
        picked, state.fit_target = imgui.combo("to##fit", state.fit_target, self.names)
        moved, state.fit_t = imgui.slider_float("t##fit", state.fit_t, 0.0, 1.0)
        if imgui.radio_button("show fitted", state.latent_source is FittedLatent) or picked or moved:
            state.latent_source = FittedLatent

    def _save(self) -> None:
        imgui.separator_text("Save as a new instance")
        _, self.save_path = imgui.input_text("file", self.save_path)
        imgui.begin_disabled(self.rec.session.latest is None)
        if imgui.button("Save checkpoint copy"):
            try:
                self._say(self.rec.save(user_path(self.save_path)))
            except ReconstructError as error:
                self._say(str(error), is_error=True)
        imgui.end_disabled()

    def release(self) -> None:
        if self.texture is not None:
            self.texture.release()
            self.texture = None
