"""The ImGui control panel, docked on the left: it reads and writes one ViewerState.

Also the keyboard shortcuts that edit the state: [ ] or PageUp/PageDown step through instances,
1-4 pick the display mode, S saves a screenshot (R and the arrows belong to the orbit camera).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from imgui_bundle import imgui, implot

from engine.display_mode import STEREO_DEPTH, SUMMED_DEPTH, DisplayMode
from engine.latents import (
    BlendLatent,
    FittedLatent,
    InstanceLatent,
    LatentSelection,
    RandomLatent,
    VolumetricTwins,
    has_volumetric_twin,
)
from models.resolution import Resolution
from models.stereo_depth import StereoConfig
from viewer.state import ViewerState

RES_CHOICES = (32, 64, 128, 256, 512, 1024)  # rows; each offered at the requested aspect
WARNING = imgui.ImVec4(1.0, 0.55, 0.3, 1.0)
# A frame still rendering after this long gets a line in the panel: a first frame that compiles its
# kernels (Triton, torch.compile, a CUDA graph) or a CPU volumetric frame takes seconds.
SLOW_FRAME_S = 1.0
KEYS_HELP = (
    "left drag, arrows    orbit\n"
    "right/middle drag    pan\n"
    "scroll               zoom\n"
    "R, double-click      reset camera\n"
    "[ ]  PgUp PgDn       instance\n"
    "1 2 3 4              display mode\n"
    "Ctrl + left drag     EPI scanline\n"
    "S                    screenshot"
)
SOURCE_LABELS = {InstanceLatent: "one", BlendLatent: "blend two", RandomLatent: "random",
                 FittedLatent: "fitted"}


@dataclass
class PanelInfo:
    """What the panel reports but does not edit."""

    device: str
    precision: str
    backend: str
    evals_per_ray: int
    texture_path: str
    texture_note: str | None
    fps: float
    frame_ms: np.ndarray
    shown_res: Resolution | None
    render_ms: float | None
    reference_ms: float | None
    moving_res: int  # rows
    depth_range: tuple[float, float]
    volumetric_note: str | None  # why the volumetric comparison is off; None when it is loaded
    message: str | None
    backend_reasons: dict[str, str | None]  # why each backend cannot run here; None where it can
    precision_reasons: dict[str, str | None]  # the same for each precision of the active backend
    switching: str | None  # the backend and precision being built, while that runs
    switch_error: str | None  # why the last switch failed
    waiting_s: float | None  # how long the requested frame has been rendering; None once shown


def frame_cost(state: ViewerState, evals_per_ray: int) -> str:
    """What a frame of the state's display mode costs in network evaluations, for the panel."""
    if not state.mode.uses_depth:
        return f"{evals_per_ray} eval/ray"
    if state.stereo_depth:
        return f"refined: +{StereoConfig().evaluations_per_pixel} evals/px"
    return f"{evals_per_ray} eval/ray + derivatives"


def handle_shortcuts(state: ViewerState) -> None:
    """Keys that edit the state; call after imgui.new_frame()."""
    if imgui.get_io().want_capture_keyboard:
        return
    keys = imgui.Key
    if imgui.is_key_pressed(keys.left_bracket) or imgui.is_key_pressed(keys.page_up):
        state.step_instance(-1)
    if imgui.is_key_pressed(keys.right_bracket) or imgui.is_key_pressed(keys.page_down):
        state.step_instance(1)
    for key, mode in zip((keys._1, keys._2, keys._3, keys._4), DisplayMode, strict=True):
        if imgui.is_key_pressed(key, repeat=False):
            state.mode = mode
    if imgui.is_key_pressed(keys.s, repeat=False):
        state.screenshot_requested = True


def size_text(res: Resolution) -> str:
    return f"{res.width} x {res.height}"


def explained_checkbox(label: str, value: bool, tooltip: str) -> bool:
    """A checkbox whose tooltip says what it trades; returns its new value."""
    _, value = imgui.checkbox(label, value)
    if imgui.is_item_hovered():
        imgui.set_tooltip(tooltip)
    return value


def choice_combo(label: str, active: str, reasons: dict[str, str | None]) -> str:
    """A combo of `reasons`' keys showing `active`; an option with a reason is disabled and shows
    the reason on hover. Returns the option picked this frame, else `active`."""
    picked = active
    if imgui.begin_combo(label, active):
        for option, reason in reasons.items():
            imgui.begin_disabled(reason is not None)
            if imgui.selectable(option, option == active)[0]:
                picked = option
            imgui.end_disabled()
            if reason and imgui.is_item_hovered(imgui.HoveredFlags_.allow_when_disabled):
                imgui.set_tooltip(reason)
        imgui.end_combo()
    return picked


class ControlPanel:
    def __init__(self, names: list[str], requested_res: Resolution, twins: VolumetricTwins | None = None):
        """`twins`: the LFN's cars in the volumetric baseline, None while the comparison is off."""
        self.names = names
        self.res_choices = requested_res.at_heights(RES_CHOICES)
        self.twins = twins
        self.twin_count = 0 if twins is None else twins.shared()

    def draw(
        self, state: ViewerState, info: PanelInfo, width: float, height: float,
        after_object: Callable[[], None] = lambda: None,
        after_performance: Callable[[], None] = lambda: None,
        after_display: Callable[[], None] = lambda: None,
    ) -> None:
        """The panel; `after_object` draws more sections below the Object one (reconstruction, the
        camera path), `after_performance` below the Performance one (the benchmark),
        `after_display` below the Display one (the epipolar-plane image)."""
        imgui.set_next_window_pos((0, 0))
        imgui.set_next_window_size((width, height))
        flags = (
            imgui.WindowFlags_.no_move | imgui.WindowFlags_.no_resize
            | imgui.WindowFlags_.no_collapse | imgui.WindowFlags_.no_saved_settings
        )
        imgui.begin("Light Field Network", flags=flags)
        imgui.push_item_width(-90)  # leave room for the labels right of the widgets
        self._latent(state)
        after_object()
        self._display(state, info)
        after_display()
        self._render(state, info)
        self._performance(info)
        after_performance()
        imgui.separator_text("Output")
        if imgui.button("Save screenshot (S)"):
            state.screenshot_requested = True
        if info.message:
            imgui.text_wrapped(info.message)
        imgui.separator_text("Controls")
        imgui.text(KEYS_HELP)
        imgui.pop_item_width()
        imgui.end()

    def _latent(self, state: ViewerState) -> None:
        imgui.separator_text("Object")
        last = len(self.names) - 1
        for source, label in SOURCE_LABELS.items():
            if source is FittedLatent and not state.fitted_serial:  # no fit has published a code
                continue
            if imgui.radio_button(label, state.latent_source is source):
                state.latent_source = source
            imgui.same_line()
        imgui.new_line()
        if state.latent_source is InstanceLatent:
            _, state.instance = imgui.slider_int("instance", state.instance, 0, last)
            imgui.text(self.names[state.instance])
        elif state.latent_source is BlendLatent:
            _, state.mix_a = imgui.slider_int("from", state.mix_a, 0, last)
            _, state.mix_b = imgui.slider_int("to", state.mix_b, 0, last)
            _, state.mix_t = imgui.slider_float("t", state.mix_t, 0.0, 1.0)
            imgui.text(f"{self.names[state.mix_a]} → {self.names[state.mix_b]}")
        elif state.latent_source is FittedLatent:
            imgui.text(state.fitted_label)
        else:
            if imgui.button("Draw another"):
                state.random_seed += 1
            imgui.same_line()
            imgui.text_wrapped(f"sample #{state.random_seed} of N(mean, cov) of the latent table")

    def _display(self, state: ViewerState, info: PanelInfo) -> None:
        imgui.separator_text("Display")
        for mode in DisplayMode:
            imgui.begin_disabled(mode is DisplayMode.COMPARE and info.volumetric_note is not None)
            if imgui.radio_button(mode.label, state.mode is mode):
                state.mode = mode
            imgui.end_disabled()
        if state.mode.uses_depth:
            state.summed_depth = explained_checkbox(SUMMED_DEPTH.label, state.summed_depth, SUMMED_DEPTH.hint)
            state.stereo_depth = explained_checkbox(STEREO_DEPTH.label, state.stereo_depth, STEREO_DEPTH.hint)
        if state.mode is DisplayMode.COMPARE:
            self._twin_notes(state.latent_selection())
        if info.volumetric_note:
            imgui.text_wrapped(f"Volumetric comparison off: {info.volumetric_note}")
        if state.mode is DisplayMode.DEPTH:
            _, state.auto_depth_range = imgui.checkbox("auto range", state.auto_depth_range)
            if state.auto_depth_range:
                state.near, state.far = info.depth_range
            imgui.begin_disabled(state.auto_depth_range)
            _, state.near = imgui.slider_float("near", state.near, 0.0, 10.0)
            _, state.far = imgui.slider_float("far", state.far, 0.0, 10.0)
            imgui.end_disabled()

    def _twin_notes(self, selection: LatentSelection) -> None:
        """Why a compare frame shows the LFN alone, and which cars the volumetric baseline holds."""
        if not has_volumetric_twin(selection):
            source = SOURCE_LABELS[type(selection)]
            imgui.text_colored(WARNING, f"A {source} latent has no volumetric twin.")
        if self.twins is None:
            return
        missing = self.twins.missing(selection)
        if missing:
            imgui.push_style_color(imgui.Col_.text, WARNING)
            imgui.text_wrapped(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not in the "
                               "volumetric checkpoint: the LFN alone.")
            imgui.pop_style_color()
        if self.twin_count < len(self.names):
            imgui.text(f"volumetric twins: {self.twin_count} of {len(self.names)} cars")

    def _render(self, state: ViewerState, info: PanelInfo) -> None:
        imgui.separator_text("Rendering")
        # options as selectables (choice_combo), which a driver finds in the widget map by label
        by_label = {size_text(r): r for r in self.res_choices}
        active = size_text(state.res)
        picked = choice_combo("resolution", active, dict.fromkeys(by_label))
        if picked != active:
            state.res = by_label[picked]
        shown = size_text(info.shown_res) if info.shown_res else "-"
        moving = state.res.at_height(min(info.moving_res, state.res.height))
        imgui.text(f"shown: {shown}, while moving: {size_text(moving)}")
        if info.render_ms is not None:
            imgui.text(f"frame: {info.render_ms:.1f} ms ({frame_cost(state, info.evals_per_ray)})")
        if info.waiting_s is not None and info.waiting_s >= SLOW_FRAME_S:
            imgui.text_colored(WARNING, f"rendering the next frame: {info.waiting_s:.0f} s")
            if info.device.startswith("cuda"):
                imgui.text_wrapped("(a first frame at a new size or mode compiles its kernels)")
        if info.reference_ms:
            imgui.text(f"volumetric: {info.reference_ms:.1f} ms")
        imgui.text(f"device {info.device}, {info.precision}, {info.backend}")
        imgui.text(f"texture: {info.texture_path}")
        if info.texture_note:
            imgui.text_wrapped(info.texture_note)
        self._backend(state, info)

    def _backend(self, state: ViewerState, info: PanelInfo) -> None:
        imgui.begin_disabled(info.switching is not None)
        backend = choice_combo("backend", info.backend, info.backend_reasons)
        precision = choice_combo("precision", info.precision, info.precision_reasons)
        imgui.end_disabled()
        if (backend, precision) != (info.backend, info.precision):
            state.switch_requested = (backend, precision)
        if info.switching:
            imgui.text(f"switching to {info.switching}...")  # the default font has no "…"
        elif info.switch_error:
            imgui.push_style_color(imgui.Col_.text, WARNING)
            imgui.text_wrapped(f"switch failed: {info.switch_error}")
            imgui.pop_style_color()

    def _performance(self, info: PanelInfo) -> None:
        imgui.separator_text("Performance")
        imgui.text(f"UI: {info.fps:.0f} FPS")
        flags = implot.Flags_.no_legend | implot.Flags_.no_menus | implot.Flags_.no_mouse_text
        if implot.begin_plot("##frame times", (-1, 110), flags):
            implot.setup_axes("", "ms", implot.AxisFlags_.no_tick_labels, implot.AxisFlags_.auto_fit)
            implot.setup_axis_limits(implot.ImAxis_.x1, 0, len(info.frame_ms), implot.Cond_.always)
            if len(info.frame_ms):
                implot.plot_line("UI frame", info.frame_ms)
            implot.end_plot()
