"""The chaos prelude's presses (bench/chaos_prelude.py) against a fake panel that answers xdotool's
words through a widget map, as the window does: scrolling a widget into view, picking a combo's
option, passing over a disabled one, and recording a step that fails."""

from __future__ import annotations

import time

import pytest

import bench.chaos_prelude as chaos_prelude
from bench.chaos_prelude import Prelude
from engine.widget_map import Widget, write_widget_map

SCROLL_PX = 60  # what one wheel notch moves the fake panel


class FakePanel:
    """A panel of widgets behind a map file; clicks press what is under them, wheels scroll."""

    def __init__(self, path, widgets: dict[str, Widget], options: dict[str, list[tuple[str, bool]]]):
        self.path, self.widgets, self.options = path, dict(widgets), options
        self.window, self.size = "1", (1280, 800)
        self.pressed: list[str] = []
        self.open_combo: str | None = None
        write_widget_map(path, self.widgets)

    def title(self) -> str:
        return "LFN viewer - car - RGB - 128px"

    def run(self, *words: str) -> None:
        if "click" not in words:
            return
        x, y = (int(n) for n in words[words.index("mousemove") + 3:][:2])
        button = words[words.index("click") + 1]
        if button in ("4", "5"):
            shift = SCROLL_PX if button == "4" else -SCROLL_PX
            self.widgets = {label: Widget(w.kind, w.x, w.y + shift, w.width, w.height, w.disabled, w.value)
                            for label, w in self.widgets.items()}
        else:
            self.click(x, y)
        write_widget_map(self.path, self.widgets)

    def click(self, x: int, y: int) -> None:
        hit = next((label for label, w in self.widgets.items()
                    if w.x <= x < w.x + w.width and w.y <= y < w.y + w.height), None)
        combo, self.open_combo = self.open_combo, None
        if combo is not None:  # a click anywhere closes the popup; on an option, picks it
            for option, _ in self.options[combo]:
                del self.widgets[option]
            if hit in dict(self.options[combo]):
                w = self.widgets[combo]
                self.widgets[combo] = Widget(w.kind, w.x, w.y, w.width, w.height, w.disabled, hit)
                self.pressed.append(hit)
            return
        if hit is None:
            return
        self.pressed.append(hit)
        if hit in self.options:
            self.open_combo = hit
            below = self.widgets[hit]
            for row, (option, enabled) in enumerate(self.options[hit], start=1):
                self.widgets[option] = Widget("selectable", below.x, below.y + 17 * row, below.width, 17,
                                              not enabled)


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    monkeypatch.setattr(chaos_prelude, "SETTLED_S", 0.02)
    monkeypatch.setattr(chaos_prelude, "REST_S", 0.0)
    monkeypatch.setattr(chaos_prelude, "STEP_TIMEOUT_S", 1.0)


def prelude_over(panel: FakePanel, tmp_path) -> Prelude:
    return Prelude(panel, panel.path, tmp_path, started=time.monotonic())


def test_a_widget_below_the_window_is_scrolled_into_view_and_pressed(tmp_path):
    panel = FakePanel(tmp_path / "map.json", {"Run benchmark": Widget("button", 8, 1119, 99, 19)}, {})
    prelude_over(panel, tmp_path).press("Run benchmark")
    assert panel.pressed == ["Run benchmark"]
    assert 0 <= panel.widgets["Run benchmark"].y <= 800 - 19


def test_a_combo_option_is_picked_and_a_disabled_one_passed_over(tmp_path):
    panel = FakePanel(tmp_path / "map.json",
                      {"backend": Widget("begin_combo", 8, 400, 220, 19, value="torchscript")},
                      {"backend": [("torchscript", True), ("eager", True), ("triton", False)]})
    prelude = prelude_over(panel, tmp_path)
    assert prelude.pick("backend", "eager") and panel.widgets["backend"].value == "eager"
    assert not prelude.pick("backend", "triton")
    assert panel.widgets["backend"].value == "eager" and "triton" not in panel.widgets  # closed
    assert prelude.pick("backend", "eager") and panel.pressed == ["backend", "eager", "backend"]


def test_a_step_that_cannot_find_its_widget_is_recorded_failed_and_the_next_runs(tmp_path):
    panel = FakePanel(tmp_path / "map.json", {"RGB": Widget("radio_button", 8, 380, 44, 19)}, {})
    (tmp_path / "shot.png").write_bytes(b"")
    steps = prelude_over(panel, tmp_path).run(("benchmark", "screenshot"))
    assert [(step.name, step.ok) for step in steps] == [("screenshot", False), ("benchmark", False)]
    assert "no widget 'Run benchmark'" in steps[1].note
    assert steps[0].started_s <= steps[0].ended_s <= steps[1].started_s


def test_stopping_the_running_jobs_presses_their_buttons_and_says_what_it_did(tmp_path, monkeypatch):
    monkeypatch.setattr(chaos_prelude, "STOP_TIMEOUT_S", 0.3)
    panel = FakePanel(tmp_path / "map.json", {
        "Cancel benchmark": Widget("button", 115, 634, 120, 19),
        "Record path (exporting)": Widget("collapsing_header", 8, 700, 300, 19),  # its Cancel stays hidden
    }, {})
    prelude = prelude_over(panel, tmp_path)
    notes = prelude.stop_jobs(("benchmark", "backend switch", "video export"))
    assert notes[:2] == ("benchmark: pressed Cancel benchmark", "backend switch: waited for")
    assert notes[2].startswith("video export: no widget 'Cancel' within")
    assert panel.pressed == ["Cancel benchmark", "Record path (exporting)"]  # the section, to show Cancel
    assert prelude.timeout_s == chaos_prelude.STEP_TIMEOUT_S  # the prelude's own waits are long again


class FitEndingAtThePress(FakePanel):
    """A fit that reaches its last step just as Stop is clicked: Continue takes Stop's place and
    receives the click, so the fit runs on and Stop is drawn again."""

    def click(self, x: int, y: int) -> None:
        if "Stop" in self.widgets and not self.pressed:
            self.widgets["Continue"] = self.widgets.pop("Stop")
        super().click(x, y)
        if self.pressed[-1] == "Continue":
            self.widgets["Stop"] = self.widgets.pop("Continue")
        elif self.pressed[-1] == "Stop":
            self.widgets["Continue"] = self.widgets.pop("Stop")


def test_a_click_that_lands_on_continue_is_followed_by_a_stop(tmp_path):
    panel = FitEndingAtThePress(tmp_path / "map.json", {"Stop": Widget("button", 8, 500, 60, 19)}, {})
    prelude_over(panel, tmp_path).stop_fit()
    assert panel.pressed == ["Continue", "Stop"] and "Continue" in panel.widgets


def test_a_fit_that_ended_before_the_press_is_not_waited_for(tmp_path, monkeypatch):
    monkeypatch.setattr(chaos_prelude, "STEP_TIMEOUT_S", 60.0)  # what a press of a vanished Stop waited
    monkeypatch.setattr(chaos_prelude, "STOP_TIMEOUT_S", 0.3)
    panel = FakePanel(tmp_path / "map.json", {"Continue": Widget("button", 8, 500, 80, 19)}, {})
    prelude = prelude_over(panel, tmp_path)
    looks = [{"Stop": Widget("button", 8, 500, 60, 19)}]  # the look taken before the fit ended
    real_look = prelude.settled
    monkeypatch.setattr(prelude, "settled", lambda: looks.pop() if looks else real_look())
    begun = time.monotonic()
    prelude.stop_fit()
    assert panel.pressed == [] and time.monotonic() - begun < 10.0
