"""The depth options of the web page's View folder (engine/display_mode.py's SUMMED_DEPTH and
STEREO_DEPTH): shown only for depth modes, carried into the page's frame requests, and labelled as
in the window's panel. The server runs in this process, driven over its websocket (CPU, no Chromium)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from imgui_bundle import imgui

import viewer.panel
from bench.web_latency import SocketPage, free_port, poll
from engine.config import RenderSettings, VolumetricSource, WebConfig
from engine.display_mode import STEREO_DEPTH, SUMMED_DEPTH, DisplayMode
from models.cameras import Orbit
from models.checkpoint import load_checkpoint
from models.resolution import Resolution
from viewer.panel import ControlPanel
from viewer.state import ViewerState
from viewer.web import WebSession, WebViewer

RES = 32


class PanelPage(SocketPage):
    """The websocket page, also keeping each panel input's uuid by label and its props and value as
    updated."""

    def __init__(self, url: str):
        self.inputs: dict[str, str] = {}  # label -> uuid
        self.props: dict[str, dict] = {}  # uuid -> props
        super().__init__(url)  # starts the reader: the dicts first

    def handle(self, message: dict, received_s: float) -> None:
        super().handle(message, received_s)
        props = message.get("props")
        if isinstance(props, dict) and "label" in props:
            self.inputs[props["label"]] = message["uuid"]
            # an input's value comes beside its props, and later in its updates
            value = {"value": message["value"]} if "value" in message else {}
            self.props[message["uuid"]] = {**props, **value}
        elif message["type"] == "GuiUpdateMessage" and message["uuid"] in self.props:
            self.props[message["uuid"]].update(message["updates"])

    def input_props(self, label: str) -> dict:
        return self.props[self.inputs[label]]

    def set_value(self, label: str, value) -> None:
        self.send({"type": "GuiUpdateMessage", "uuid": self.inputs[label], "updates": {"value": value}})


@contextmanager
def served(ckpt: Path, folder: Path, **options) -> Iterator[tuple[PanelPage, WebSession]]:
    """A served page at RES² on the CPU (WebConfig's `options` added), its websocket client and the
    server's session for it."""
    render = RenderSettings(torch.device("cpu"), "fp32", "torchscript")
    config = WebConfig(render, "127.0.0.1", free_port(), Resolution.square(RES), 0, Orbit(), ckpt,
                       VolumetricSource(folder / "none.pt", False), None, None, **options)
    server = WebViewer(config, load_checkpoint(ckpt))
    serving = threading.Thread(target=server.run, daemon=True)
    serving.start()
    page = PanelPage(f"ws://127.0.0.1:{config.port}/")
    try:
        session = poll(lambda: next(iter(server.sessions.values()), None), 30, "the page's session")
        poll(lambda: session.submitted, 30, "the page's first request")
        poll(lambda: SUMMED_DEPTH.label in page.inputs and STEREO_DEPTH.label in page.inputs, 30,
             "the depth checkboxes")
        yield page, session
    finally:
        page.quit()
        server.stop.set()
        server.wake.set()
        serving.join(timeout=30)
        server.close()


@pytest.fixture
def web(tiny_ckpt: Path, tmp_path: Path) -> Iterator[tuple[PanelPage, WebSession]]:
    with served(tiny_ckpt, tmp_path) as page_and_session:
        yield page_and_session


def visible(page: PanelPage) -> tuple[bool, bool]:
    return page.input_props(SUMMED_DEPTH.label)["visible"], page.input_props(STEREO_DEPTH.label)["visible"]


def test_depth_checkboxes_show_only_for_modes_that_use_depth(web):
    page, _ = web
    assert visible(page) == (False, False)  # the page opens in RGB
    for mode in (DisplayMode.DEPTH, DisplayMode.NORMALS, DisplayMode.RGB):
        page.set_value("display", mode.label)
        shown = (mode.uses_depth,) * 2
        poll(lambda shown=shown: visible(page) == shown, 30, f"the depth checkboxes in {mode.label}")
    hint = page.input_props(SUMMED_DEPTH.label)["hint"]
    assert "\n" not in hint and hint == " ".join(SUMMED_DEPTH.hint.splitlines())


def test_depth_checkboxes_reach_the_frame_request(web):
    """Each box, ticked, is in the next request the page submits, and counts as a view change (a
    coarse frame, then the full one, as after a drag)."""
    page, session = web
    assert not session.submitted.summed_depth and not session.submitted.stereo_depth
    page.set_value("display", DisplayMode.DEPTH.label)
    poll(lambda: session.submitted.mode is DisplayMode.DEPTH, 30, "a depth request")
    for option, flag in ((SUMMED_DEPTH, "summed_depth"), (STEREO_DEPTH, "stereo_depth")):
        changed_s = session.quality.last_change_s
        page.click_checkbox(option.label)
        request = poll(lambda flag=flag: getattr(session.submitted, flag) and session.submitted, 30,
                       f"a request with {flag}")
        assert request.mode is DisplayMode.DEPTH
        assert session.quality.last_change_s > changed_s
    assert request.summed_depth and request.stereo_depth


def test_the_panel_and_the_page_label_the_depth_options_alike(web, monkeypatch):
    """Both front ends take the options' text from engine/display_mode.py: the window's panel, drawn
    in a headless ImGui context, and the page's checkboxes."""
    page, _ = web
    drawn = []

    def checkbox(label: str, value: bool, tooltip: str) -> bool:
        drawn.append((label, tooltip))
        return value

    monkeypatch.setattr(viewer.panel, "explained_checkbox", checkbox)
    context = imgui.create_context()
    try:
        io = imgui.get_io()
        io.display_size = imgui.ImVec2(400, 300)
        io.set_ini_filename("")  # no imgui.ini left in the working folder
        io.backend_flags |= imgui.BackendFlags_.renderer_has_textures  # no renderer: fonts need no upload
        imgui.new_frame()
        imgui.begin("panel")
        state = ViewerState(num_instances=3, mode=DisplayMode.DEPTH)
        info = SimpleNamespace(volumetric_note=None, depth_range=(1.0, 5.0))  # what _display reads
        ControlPanel(["a", "b", "c"], Resolution.square(64))._display(state, info)
        imgui.end()
        imgui.render()
    finally:
        imgui.destroy_context(context)
    assert drawn == [(SUMMED_DEPTH.label, SUMMED_DEPTH.hint), (STEREO_DEPTH.label, STEREO_DEPTH.hint)]
    assert {SUMMED_DEPTH.label, STEREO_DEPTH.label} <= page.checkboxes.keys()


def test_mode_and_summed_depth_flags_open_the_page_on_them(tiny_ckpt, tmp_path):
    """main.py --web --mode depth --summed-depth: a new browser's first request is the summed depth
    frame, and the page shows the depth boxes with that one ticked."""
    with served(tiny_ckpt, tmp_path, mode=DisplayMode.DEPTH, summed_depth=True) as (page, session):
        first = session.submitted
        assert first.mode is DisplayMode.DEPTH and first.summed_depth and not first.stereo_depth
        assert visible(page) == (True, True)
        assert page.input_props(SUMMED_DEPTH.label)["value"] is True
        assert page.input_props(STEREO_DEPTH.label)["value"] is False
        assert page.input_props("display")["value"] == DisplayMode.DEPTH.label
