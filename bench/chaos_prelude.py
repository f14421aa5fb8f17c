"""The chaos run's prelude: every feature of the panel pressed once, in a fixed order, before the
random input starts.

What a feature's first use loads stays for the life of the process (RELIABILITY.md, "first use":
the first offscreen EGL context, FFmpeg, torch.export's modules, a backend's ray function per
precision, the fit's optimizer). Random clicks reach each first use at a random minute, where the
memory verdict would count the step as growth; the prelude takes every one of them before the
judged window starts, so that window sees later uses only.

Widgets are found by their label in the viewer's widget map (engine/widget_map.py, written by the
window when LFN_WIDGET_MAP names a file), scrolled into view when the panel is taller than the
window, and pressed with xdotool like any other input. Each step waits for what it should cause
(the title naming a mode or a resolution, a combo showing the option, a button disabled while its
job runs and enabled again, a file written) and is recorded with its times and outcome.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from engine.display_mode import DisplayMode
from engine.widget_map import Widget, read_widget_map
from models.renderer import BACKENDS, PRECISIONS
from models.resolution import Resolution

STEP_TIMEOUT_S = 240.0  # the slowest wait: a compare frame or the benchmark while all else runs
STOP_TIMEOUT_S = 5.0  # the wait for a stop button, which goes when its job ends by itself
SETTLED_S = 0.2  # the map has not changed for this long: the layout after a click has settled
REST_S = 0.15  # on a widget before and after a click: ImGui takes hovering from a frame that saw it
SCROLL_X = 2  # the panel's left margin: inside its window, over no widget nor the frame-time plot
# (wheel notches there scroll the panel, a click there closes an open combo)
SCROLLS_MAX = 40  # wheel notches to reveal one widget, down or up
FIT_STEPS = 10  # the fit's first steps load what it keeps (autograd's graph, the optimizer)
VIDEO_FILE = "camera_path.mp4"  # the Record path section's default, in the viewer's folder


class Window(Protocol):
    """What the prelude needs of the chaos run's driver."""

    window: str  # the X window's id
    size: tuple[int, int]

    def run(self, *words: str) -> None: ...  # one xdotool command line, into the window

    def title(self) -> str: ...


class StepFailed(Exception):
    """A step's widget never showed up or never did what a press should do."""


@dataclass
class PreludeStep:
    name: str
    started_s: float  # seconds since the run started
    ended_s: float
    ok: bool
    note: str  # what was pressed and seen, or why it failed


class Prelude:
    def __init__(self, window: Window, map_path: Path, folder: Path, started: float,
                 clock: Callable[[], float] = time.monotonic):
        self.window, self.map_path, self.folder = window, map_path, folder
        self.started, self.clock = started, clock
        self.timeout_s = STEP_TIMEOUT_S  # how long a wait for a widget or an effect lasts
        self.steps: list[PreludeStep] = []

    # ---- reading the map and the window --------------------------------------------------------

    def widgets(self) -> dict[str, Widget]:
        return read_widget_map(self.map_path)

    def wait_for(self, condition: Callable[[], object], what: str):
        """`condition`'s first true value, polled; StepFailed after STEP_TIMEOUT_S."""
        deadline = self.clock() + self.timeout_s
        while not (value := condition()):
            if self.clock() > deadline:
                raise StepFailed(f"no {what} within {self.timeout_s:.0f} s")
            time.sleep(0.1)
        return value

    def settled(self) -> dict[str, Widget]:
        """The map once the panel has drawn the same layout for SETTLED_S (a popup is placed a
        frame after it opens, a section's content moves what is below it)."""
        def unchanged() -> dict[str, Widget] | None:
            before = self.widgets()
            time.sleep(SETTLED_S)
            return before if before and before == self.widgets() else None
        return self.wait_for(unchanged, "settled panel layout")

    def widget(self, label: str) -> Widget:
        """The widget named `label`, or the first whose label starts with it plus " (" (a button
        naming what it will do, "Export video (128 x 128, torchscript)")."""
        def found() -> Widget | None:
            widgets = self.settled()
            if label in widgets:
                return widgets[label]
            return next((w for name, w in widgets.items() if name.startswith(label + " (")), None)
        return self.wait_for(found, f"widget {label!r}")

    def title_says(self, mode: str | None = None, res: Resolution | None = None) -> bool:
        """Whether the title, "LFN viewer - <latent> - <mode> - <res>px", shows this mode and size."""
        parts = self.window.title().rsplit(" - ", 2)
        if len(parts) != 3 or not parts[2].endswith("px"):
            return False
        return (mode is None or parts[1] == mode) and (res is None or parts[2] == f"{res}px")

    # ---- acting ----------------------------------------------------------------------------------

    def reveal(self, label: str) -> Widget:
        """The widget, scrolled into the window first if the panel holds it below or above."""
        for _ in range(SCROLLS_MAX):
            widget = self.widget(label)
            height = self.window.size[1]
            if widget.y >= 0 and widget.y + widget.height <= height:
                return widget
            wheel = "5" if widget.y + widget.height > height else "4"  # down, up
            self.window.run("mousemove", "--window", self.window.window, str(SCROLL_X), str(height // 2),
                            "click", wheel)
        raise StepFailed(f"{label!r} stays outside the window after {SCROLLS_MAX} scrolls")

    def press(self, label: str, fraction: float = 0.5) -> None:
        """Click the widget `fraction` of its width from its left edge (a slider moves there)."""
        widget = self.reveal(label)
        if widget.disabled:
            raise StepFailed(f"{label!r} is disabled")
        x, y = widget.point(fraction)
        self.window.run("mousemove", "--window", self.window.window, str(x), str(y), "sleep", str(REST_S),
                        "click", "1", "sleep", str(REST_S))

    @contextmanager
    def short_waits(self) -> Iterator[None]:
        """Waits of STOP_TIMEOUT_S inside: for a stop button, which its job removes when it ends."""
        self.timeout_s = STOP_TIMEOUT_S
        try:
            yield
        finally:
            self.timeout_s = STEP_TIMEOUT_S

    def keys(self, *words: str) -> None:
        """Type or press keys into the window, focused first, as the window tests do: xdotool's
        --window would send them as synthetic events, which an application may ignore."""
        self.window.run("windowfocus", "--sync", self.window.window, *words)

    def pick(self, combo: str, option: str) -> bool:
        """Open `combo` and press `option` in it, then wait until the combo shows it and is enabled
        again (a backend switch disables it while it builds); whether `option` was offered (one
        shown disabled is not pressed)."""
        if self.widget(combo).value == option:
            return True
        self.press(combo)
        if self.widget(option).disabled:
            self.close_popup(option)
            return False
        self.press(option)
        self.wait_for(lambda: (w := self.widget(combo)).value == option and not w.disabled,
                      f"{combo} showing {option}")
        return True

    def close_popup(self, option: str) -> None:
        """Close the open combo whose popup shows `option`: a click beside it, on no widget."""
        middle = str(self.window.size[1] // 2)
        self.window.run("mousemove", "--window", self.window.window, str(SCROLL_X), middle,
                        "sleep", str(REST_S), "click", "1", "sleep", str(REST_S))
        self.wait_for(lambda: option not in self.settled(), "the combo closed")

    def open_section(self, header: str, inside: str) -> None:
        """Open a collapsing section (if `inside`, a widget of it, is not showing yet)."""
        if inside not in self.settled():
            self.press(header)
            self.widget(inside)

    def close_section(self, header: str, inside: str) -> None:
        if inside in self.settled():
            self.press(header)
            self.wait_for(lambda: inside not in self.settled(), f"{header} closed")

    # ---- the steps -------------------------------------------------------------------------------

    def screenshot(self) -> str:
        self.press("Save screenshot (S)")
        shot = self.wait_for(lambda: sorted(self.folder.glob("*.png")), "screenshot file")[0]
        return f"saved {shot.name} (the reconstruct step's photo)"

    def benchmark(self) -> str:
        """Started here, waited for by `background jobs`: it runs for a while beside the rest."""
        self.press("Run benchmark")
        self.wait_for(lambda: self.widget("Run benchmark").disabled, "benchmark running")
        # the benchmark loads the baseline the viewer's compare mode shows, from the same file
        loaded = not self.widget(DisplayMode.COMPARE.label).disabled
        baseline = "and the volumetric baseline's" if loaded else "(no volumetric baseline)"
        return f"started: the LFN's rows {baseline}"

    def record_path(self) -> str:
        """Two keyframes, the path saved, the video export started (waited for at the end)."""
        self.open_section("Record path", "Add keyframe")
        self.press("Add keyframe")
        self.keys("key", "--delay", "30", *["Left"] * 10)  # orbit a bit
        self.press("Add keyframe")
        self.wait_for(lambda: not self.widget("Delete last").disabled, "keyframes listed")
        self.press("Save path")
        self.wait_for(lambda: (self.folder / "camera_path.json").exists(), "saved path file")
        self.press("Export video")
        self.wait_for(lambda: self.widget("Export video").disabled or (self.folder / VIDEO_FILE).exists(),
                      "export running")
        self.close_section("Record path", "Add keyframe")
        return "2 keyframes, camera_path.json saved, video export started"

    def display_modes(self) -> str:
        shown, skipped = [], []
        for mode in [*[m for m in DisplayMode if m is not DisplayMode.RGB], DisplayMode.RGB]:
            if self.widget(mode.label).disabled:  # compare without a volumetric checkpoint
                skipped.append(mode.label)
                continue
            self.press(mode.label)
            self.wait_for(lambda m=mode: self.title_says(mode=m.label), f"a {mode.label} frame")
            shown.append(mode.label)
        return f"shown: {', '.join(shown)}" + (f"; disabled: {', '.join(skipped)}" if skipped else "")

    def epi(self) -> str:
        self.open_section("Epipolar-plane image", "scanline")
        for slider in ("scanline", "shift"):
            for fraction in (0.1, 0.9):
                self.press(slider, fraction)
        self.close_section("Epipolar-plane image", "scanline")
        return "scanline and shift each set near both ends"

    def resolutions(self) -> str:
        start = self.widget("resolution").value
        self.press("resolution")
        # waited for: a UI frame that stalls longer than SETTLED_S (a build beside it) shows the
        # layout settled before the popup is drawn (run L: "offers no sizes", the popup left open)
        labels = self.wait_for(lambda: [label for label, w in self.settled().items()
                                        if w.kind == "selectable" and " x " in label],
                               "sizes in the resolution combo")
        self.close_popup(labels[0])
        for label in (labels[0], labels[-1], start):
            self.pick("resolution", label)
            res = Resolution(*(int(n) for n in label.split(" x ")))  # viewer/panel.py size_text
            self.wait_for(lambda r=res: self.title_says(res=r), f"a {label} frame")
        return f"{labels[0]}, {labels[-1]}, back to {start}"

    def backends(self) -> str:
        """Every backend in every precision it offers here: each pair builds its own ray function."""
        start = (self.widget("backend").value, self.widget("precision").value)
        done, skipped = [], []
        for backend in BACKENDS:
            if not self.pick("backend", backend):
                skipped.append(backend)
                continue
            for precision in PRECISIONS:
                offered = self.pick("precision", precision)
                (done if offered else skipped).append(f"{backend} {precision}")
        for combo, value in zip(("backend", "precision"), start, strict=True):
            self.pick(combo, value)
        return ", ".join(done) + (f"; not offered here: {', '.join(skipped)}" if skipped else "")

    def reconstruct(self) -> str:
        """The screenshot as the photo, its pose known (it is the view), fitted a while, stopped."""
        photo = sorted(self.folder.glob("*.png"))[0]
        self.open_section("Reconstruct from a photo", "photo")
        self.press("photo")
        self.keys("type", "--delay", "5", str(photo))
        self.wait_for(lambda: "pose known" in self.settled(), "the photo typed")
        if self.widget("pose known").value == "off":  # a new path sets it off: the photo has no pose file
            self.press("pose known")
            self.wait_for(lambda: self.widget("pose known").value == "on", "pose known")
        self.press("Reconstruct")
        # the fit runs until Stop (or its last step, on a fast machine): then Continue is offered
        self.wait_for(lambda: self.fit_steps() >= FIT_STEPS or "Continue" in self.settled(),
                      f"{FIT_STEPS} fit steps")
        self.stop_fit()
        steps = self.fit_steps()
        self.close_section("Reconstruct from a photo", "photo")
        self.press("one")  # the instance again, as a run without the prelude starts
        return f"fitted {photo.name} for {steps} steps, stopped"

    def stop_fit(self) -> None:
        """Press Stop until the fit offers Continue. The fit can end by itself between a look at
        the panel and the press: Stop is gone then, or the click lands on Continue in its place
        and the fit runs on (Stop again)."""
        for _ in range(3):
            if "Continue" in self.settled():
                return
            with self.short_waits(), suppress(StepFailed):  # StepFailed: the fit ended first
                self.press("Stop")
        self.widget("Continue")

    def fit_steps(self) -> int:
        """The fit step the title names ("<photo> fit step 12"), 0 before the first."""
        found = re.search(r" fit step (\d+) - ", self.window.title())
        return int(found.group(1)) if found else 0

    def background_jobs(self) -> str:
        """The benchmark and the export, started above, ended."""
        self.wait_for(lambda: not self.widget("Run benchmark").disabled, "benchmark end")
        self.wait_for(lambda: (self.folder / VIDEO_FILE).exists(), f"{VIDEO_FILE} written")
        return f"benchmark ended, {VIDEO_FILE} written"

    def stop_jobs(self, jobs: tuple[str, ...]) -> tuple[str, ...]:
        """Press what stops each running job, its section opened first (bench/chaos.py's rests:
        a user stops what runs and leaves the window alone); what was pressed, or why not (a
        button not there within STOP_TIMEOUT_S: the job ended meanwhile)."""
        notes = []
        with self.short_waits():
            for job in jobs:
                if job not in JOB_STOPS:
                    notes.append(f"{job}: waited for")  # a backend switch ends by itself
                    continue
                header, button = JOB_STOPS[job]
                try:
                    if header is not None:
                        self.open_section(header, button)
                    self.press(button)
                    notes.append(f"{job}: pressed {button}")
                except StepFailed as failure:
                    notes.append(f"{job}: {failure}")
        return tuple(notes)

    def run(self, names: tuple[str, ...]) -> list[PreludeStep]:
        """The steps named, in STEPS' order; a failed one is recorded and the next one runs."""
        for name in [n for n in STEPS if n in names]:
            begun = self.clock()
            try:
                note, ok = getattr(self, STEPS[name])(), True
            except StepFailed as failure:
                note, ok = str(failure), False
            self.steps.append(PreludeStep(name, round(begun - self.started, 1),
                                          round(self.clock() - self.started, 1), ok, note))
        return self.steps


# Step names and their methods, in the order they run: the two long jobs (benchmark, export) start
# first, on threads of their own, and are waited for last.
STEPS = {
    "screenshot": "screenshot",
    "benchmark": "benchmark",
    "record path and export video": "record_path",
    "display modes": "display_modes",
    "epipolar-plane image": "epi",
    "resolution extremes": "resolutions",
    "backends and precisions": "backends",
    "reconstruct and stop": "reconstruct",
    "background jobs ended": "background_jobs",
}

# What stops each background job (bench/chaos.py running_jobs' names): the section holding it, if
# the button is drawn only while that is open, and the button.
JOB_STOPS = {
    "benchmark": (None, "Cancel benchmark"),
    "video export": ("Record path", "Cancel"),
    "fit": ("Reconstruct from a photo", "Stop"),
}
