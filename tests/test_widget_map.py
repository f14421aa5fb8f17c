"""The widget map (engine/widget_map.py, viewer/widget_recorder.py): a click at a recorded widget's
point presses that widget, in a headless ImGui context fed mouse events."""

from __future__ import annotations

import pytest
from imgui_bundle import imgui

from engine.widget_map import Widget, read_widget_map, section_label, write_widget_map
from viewer.widget_recorder import WidgetRecorder


@pytest.fixture
def gui():
    context = imgui.create_context()
    io = imgui.get_io()
    io.display_size = imgui.ImVec2(400, 300)
    io.set_ini_filename("")  # no imgui.ini left in the working folder
    io.backend_flags |= imgui.BackendFlags_.renderer_has_textures  # no renderer: fonts need no upload
    yield io
    imgui.destroy_context(context)


class Panel:
    """A little panel: what it drew and what was pressed in each frame."""

    def __init__(self):
        self.pressed: list[str] = []
        self.level = 0.5
        self.option = "b"

    def draw(self) -> None:
        imgui.set_next_window_pos((0, 0))
        imgui.set_next_window_size((300, 300))
        imgui.begin("panel")
        imgui.push_item_width(-90)
        if imgui.button("Go"):
            self.pressed.append("Go")
        imgui.begin_disabled(True)
        if imgui.button("Busy"):
            self.pressed.append("Busy")
        imgui.end_disabled()
        _, self.level = imgui.slider_float("level", self.level, 0.0, 1.0)
        if imgui.begin_combo("option", self.option):
            for option in ("a", "b", "c"):
                if imgui.selectable(option, option == self.option)[0]:
                    self.option = option
            imgui.end_combo()
        imgui.pop_item_width()
        imgui.end()


def frame(recorder: WidgetRecorder, panel: Panel | Section) -> None:
    imgui.new_frame()
    with recorder.recording():
        panel.draw()
    imgui.render()


def click(io, recorder: WidgetRecorder, panel: Panel | Section, point: tuple[int, int]) -> None:
    """Rest the mouse on `point` for a frame, press, release: as xdotool's click reaches ImGui."""
    io.add_mouse_pos_event(*point)
    frame(recorder, panel)
    for down in (True, False):
        io.add_mouse_button_event(0, down)
        frame(recorder, panel)


def test_a_click_at_a_recorded_point_presses_that_widget(gui, tmp_path):
    path = tmp_path / "widgets.json"
    recorder, panel = WidgetRecorder(path), Panel()
    frame(recorder, panel)  # a window's first frame is not recorded: ImGui places it after
    assert read_widget_map(path) == {}
    frame(recorder, panel)
    widgets = read_widget_map(path)
    assert set(widgets) == {"Go", "Busy", "level", "option"}
    assert not widgets["Go"].disabled and widgets["Busy"].disabled
    assert (widgets["option"].kind, widgets["option"].value) == ("begin_combo", "b")

    click(gui, recorder, panel, widgets["Go"].point())
    assert panel.pressed == ["Go"]
    # a slider's frame: a click sets it there (near, as the grab's width insets the range)
    click(gui, recorder, panel, widgets["level"].point(0.9))
    assert 0.85 < panel.level < 0.95
    click(gui, recorder, panel, widgets["level"].point(0.1))
    assert 0.05 < panel.level < 0.15

    click(gui, recorder, panel, widgets["option"].point())  # the combo opens: its options appear
    assert "a" not in read_widget_map(path)  # in the popup's second frame, where they are placed
    frame(recorder, panel)
    options = read_widget_map(path)
    assert {"a", "b", "c"} <= set(options) and options["option"] == widgets["option"]
    click(gui, recorder, panel, options["c"].point())
    assert panel.option == "c"
    frame(recorder, panel)  # the combo shows what was picked from the next frame on
    assert read_widget_map(path)["option"].value == "c" and "a" not in read_widget_map(path)


def test_outside_recording_imgui_is_itself_and_without_a_path_nothing_is_written(gui, tmp_path):
    button = imgui.button
    recorder = WidgetRecorder(tmp_path / "widgets.json")
    frame(recorder, Panel())
    assert imgui.button is button
    quiet = WidgetRecorder(None)
    frame(quiet, Panel())
    assert quiet.widgets == {} and imgui.button is button


def test_the_map_is_written_only_when_the_layout_changes(gui, tmp_path):
    path = tmp_path / "widgets.json"
    recorder, panel = WidgetRecorder(path), Panel()
    frame(recorder, panel)
    frame(recorder, panel)
    path.unlink()
    frame(recorder, panel)
    assert not path.exists()
    panel.option = "a"  # the combo shows another option
    frame(recorder, panel)
    assert read_widget_map(path)["option"].value == "a"


def test_the_map_reads_back_what_was_written_and_empty_before(tmp_path):
    path = tmp_path / "widgets.json"
    assert read_widget_map(path) == {}
    widgets = {"Run": Widget("button", 8.0, 30.0, 99.0, 19.0, True)}
    write_widget_map(path, widgets)
    assert read_widget_map(path) == widgets and list(tmp_path.iterdir()) == [path]
    assert widgets["Run"].point() == (58, 40) and widgets["Run"].point(0.0) == (8, 40)


class Section:
    """A collapsing section whose header names the job it runs, as Record path's and Reconstruct's."""

    def __init__(self):
        self.job: str | None = None

    def draw(self) -> None:
        imgui.set_next_window_pos((0, 0))
        imgui.set_next_window_size((300, 300))
        imgui.begin("panel")
        if imgui.collapsing_header(section_label("Export", self.job)):
            imgui.button("Stop")
        imgui.end()


def test_a_header_names_its_job_and_stays_open_as_the_job_comes_and_goes(gui, tmp_path):
    path = tmp_path / "widgets.json"
    recorder, section = WidgetRecorder(path), Section()
    frame(recorder, section)
    frame(recorder, section)
    assert set(read_widget_map(path)) == {"Export"}  # closed: its button is not drawn, the header is
    click(gui, recorder, section, read_widget_map(path)["Export"].point())
    assert set(read_widget_map(path)) == {"Export", "Stop"}
    section.job = "exporting"
    frame(recorder, section)
    assert set(read_widget_map(path)) == {"Export (exporting)", "Stop"}  # the shown text, still open
    section.job = None
    frame(recorder, section)
    assert set(read_widget_map(path)) == {"Export", "Stop"}
