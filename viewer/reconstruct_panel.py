"""The panel's "Reconstruct from a photo" section: the widgets of viewer/reconstruction.py.

Photo path and PNG list (a photo dropped on the window lands here too), the inference mode, the
photo's pose when known (else the encoder's estimate and its confidence), Reconstruct / Stop /
Continue, the input thumbnail, progress and the loss and PSNR curves, the nearest training
instances, interpolation toward an instance, and Save.
"""

from __future__ import annotations

import time
from pathlib import Path

import moderngl
import numpy as np
from imgui_bundle import imgui, implot

from engine.latents import FittedLatent, InstanceLatent
from engine.widget_map import FITTING, section_label
from models.cameras import Orbit
from models.inference import InferenceMode, PoseEstimate
from viewer.orbit import ELEVATION_LIMIT, RADIUS_RANGE
from viewer.reconstruct import FitSession, Phase, ReconstructError, default_save_path, user_path
from viewer.reconstruction import Reconstruction, mode_unavailable
from viewer.state import ViewerState

THUMBNAIL = 96
PNG_LIST_MAX = 200
PNG_LIST_REFRESH_S = 1.0
WARNING = imgui.ImVec4(1.0, 0.55, 0.3, 1.0)
MODE_HELP = {
    InferenceMode.ENCODER: "the encoder's latent and pose alone: one forward pass",
    InferenceMode.REFINE: "the encoder's latent and pose, then auto-decoding steps that refine "
                          "both",
    InferenceMode.AUTODECODE: "auto-decoding from the mean latent (the pose given, or the "
                              "encoder's)",
}


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
        self.save_path = str(default_save_path(reconstruction.ckpt_path))
        self.texture: moderngl.Texture | None = None
        self._shown_photo: np.ndarray | None = None
        self._pngs: tuple[Path, float, list[str]] = (Path(), float("-inf"), [])
        self._spacing = reconstruction.bank.typical_spacing()
        self._reveal = False  # open the section on the next draw: a dropped photo's message shows

    def photo_dropped(self, paths: list[str], state: ViewerState) -> None:
        """The window's drop callback: reconstruct the first file, and show this section."""
        try:
            self.rec.open_dropped(paths, state)
        except Exception as error:  # raised in GLFW's callback, it would end the viewer at its next call
            self.rec.say(f"{paths[0]}: cannot be opened ({type(error).__name__}: {error})", True)
        self._reveal = True

    def draw(self, state: ViewerState, view: Orbit) -> None:
        if self._reveal:
            imgui.set_next_item_open(True)
            self._reveal = False
        job = FITTING if self.rec.running else None
        if not imgui.collapsing_header(section_label("Reconstruct from a photo", job)):
            return
        rec = self.rec
        imgui.text_disabled(rec.encoder_note)
        self._input(state)
        self._mode(state)
        self._pose(view)
        session = rec.session
        self._buttons(state, session)
        error = session.error if session else None
        if error or rec.message:  # one line under the buttons: what went wrong, or what was saved
            color = WARNING if error or rec.is_error else imgui.get_style().color_(imgui.Col_.text)
            imgui.push_style_color(imgui.Col_.text, color)
            imgui.text_wrapped(error or rec.message)
            imgui.pop_style_color()
        if session is not None:
            self._progress(session)
            self._latent_tools(state)
            self._save()

    def _input(self, state: ViewerState) -> None:
        entered, path = imgui.input_text("photo", self.rec.path,
                                          imgui.InputTextFlags_.enter_returns_true)
        if path != self.rec.path:
            self.rec.set_path(path)
        if imgui.is_item_hovered():
            imgui.set_tooltip("a car on a white background (PNG or JPEG, square), Enter to\n"
                              "reconstruct it; or drop the file on the window")
        if entered:
            self.rec.reconstruct(state)
        picked = self._png_picker()
        if picked is not None:
            self.rec.set_path(picked)
            if not self.rec.is_error:
                self.rec.reconstruct(state)

    def _mode(self, state: ViewerState) -> None:
        imgui.text("inference")
        for mode in InferenceMode:
            imgui.same_line()
            reason = mode_unavailable(mode, self.rec.encoder)
            imgui.begin_disabled(reason is not None)
            clicked = imgui.radio_button(mode.value, self.rec.mode is mode)
            imgui.end_disabled()
            if imgui.is_item_hovered(imgui.HoveredFlags_.allow_when_disabled):
                imgui.set_tooltip(reason or MODE_HELP[mode])
            if clicked and mode is not self.rec.mode:
                self.rec.mode = mode
                if self.rec.session is not None:  # the same photo again, the new way
                    self.rec.reconstruct(state)

    def _pose(self, view: Orbit) -> None:
        rec = self.rec
        _, rec.pose_known = imgui.checkbox("pose known", rec.pose_known)
        if imgui.is_item_hovered():
            imgui.set_tooltip("the photo's camera, if you know it; else the encoder estimates it")
        if not rec.pose_known:
            if rec.encoder is None:
                imgui.text_colored(WARNING, "no encoder: the photo's pose is needed")
            return
        imgui.same_line()
        if imgui.button("= view"):  # when the photo's camera is easier to match by eye
            rec.pose, rec.pose_note = Orbit(view.azimuth, view.elevation, view.radius), "the view's"
        pose = rec.pose
        # pose files and the orbit convention allow any azimuth; the slider shows it in its range
        _, azimuth = imgui.slider_float("azimuth", pose.azimuth % 360.0, 0.0, 360.0, "%.1f deg")
        _, elevation = imgui.slider_float("elevation", pose.elevation, -ELEVATION_LIMIT,
                                          ELEVATION_LIMIT, "%.1f deg")
        _, radius = imgui.slider_float("radius", pose.radius, *RADIUS_RANGE, "%.2f")
        rec.pose = Orbit(azimuth, elevation, radius)
        if rec.pose_note:
            imgui.text_disabled(rec.pose_note)

    def _buttons(self, state: ViewerState, session: FitSession | None) -> None:
        if imgui.button("Reconstruct"):
            self.rec.reconstruct(state)
        if session is None:
            return
        imgui.same_line()
        if session.running:
            if imgui.button("Stop"):
                session.pause()
        elif (session.mode is not InferenceMode.ENCODER and not session.modulation_target
              and imgui.button("Continue") and session.error is None):
            self.rec.resume()
        if session.can_go_past_latent:
            imgui.same_line()
            if imgui.button("Past the latent"):
                self.rec.past_latent()
            if imgui.is_item_hovered():
                imgui.set_tooltip("refine the car's FiLM modulations from the photo, past what a\n"
                                  "latent reaches (held-out real cars +0.27 to +0.45 dB); the\n"
                                  "fit ends there: no more latent steps")
        if session.pose is not None:
            imgui.same_line()
            if imgui.button("View from photo"):
                state.camera_requested = session.pose

    def _png_picker(self) -> str | None:
        """The PNG list of the typed path's folder; the path picked, if one was."""
        folder = folder_of(self.rec.path)
        if not imgui.begin_combo("PNGs", f"in {folder}"):
            return None
        cached, listed_at, names = self._pngs
        if cached != folder or time.monotonic() - listed_at > PNG_LIST_REFRESH_S:
            names = png_names(folder)
            self._pngs = (folder, time.monotonic(), names)
        if not names:
            imgui.text_disabled("no .png files here")
        picked = None
        for name in names:
            if imgui.selectable(name, False)[0]:
                picked = str(folder / name)
        imgui.end_combo()
        return picked

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
        phase, step = session.phase, session.latest
        imgui.text(self.rec.name)
        imgui.text(f"{session.mode.value}: {phase.value}")
        if session.mode is not InferenceMode.ENCODER:
            imgui.text(f"step {session.steps} of {session.target_steps}, "
                       f"{session.steps_per_second:.1f}/s")
        if session.start_psnr is not None:  # the start's PSNR on the whole photo, then the step's
            latest = f" -> {step.psnr:.1f}" if step is not None else ""
            past = f" -> {session.modulation_psnr:.1f}" if session.modulation_psnr is not None else ""
            imgui.text(f"PSNR {session.start_psnr:.1f}{latest}{past} dB")
        if session.modulation_target:
            imgui.text(f"past the latent: {session.modulation_steps}/{session.modulation_target}")
        pose = session.pose
        if pose is not None:
            imgui.text(f"az {pose.azimuth:.1f}, el {pose.elevation:.1f} deg")
        imgui.end_group()
        if phase is Phase.PAST_LATENT:
            done = session.modulation_steps / session.modulation_target
            imgui.progress_bar(min(done, 1.0), (-1, 0), f"{phase.value} {session.modulation_steps}")
        elif session.mode is not InferenceMode.ENCODER:
            done = session.steps / max(session.target_steps, 1)
            imgui.progress_bar(min(done, 1.0), (-1, 0), f"{phase.value} {session.steps}")
        if session.start is not None and session.start.estimate is not None:
            self._estimate(session.start.estimate)
        if step is not None:
            self._curve(session)

    def _estimate(self, estimate: PoseEstimate) -> None:
        orbit = estimate.orbit
        imgui.text(f"estimated: az {orbit.azimuth:.1f}, el {orbit.elevation:.1f} deg")
        imgui.text(f"azimuth p {estimate.mass:.2f} (chance {estimate.uniform_mass:.2f})")
        imgui.same_line()
        imgui.text(f"front/back {estimate.side_probability:.2f}")
        if imgui.is_item_hovered():
            imgui.set_tooltip("azimuth p: the encoder's probability near the chosen angle;\n"
                              "front/back: the chosen side against its twin, weighing that\n"
                              "probability against how well each renders the photo")

    def _curve(self, session: FitSession) -> None:
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
        imgui.begin_disabled(self.rec.session.newest() is None)
        if imgui.button("Save checkpoint copy"):
            try:
                self.rec.say(self.rec.save(user_path(self.save_path)))
            except ReconstructError as error:
                self.rec.say(str(error), is_error=True)
        imgui.end_disabled()

    def release(self) -> None:
        if self.texture is not None:
            self.texture.release()
            self.texture = None
