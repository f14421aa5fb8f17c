"""The viewer's EPI path: the request from the view, the render thread, the panel and its marks."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from imgui_bundle import imgui

from engine.display_mode import DisplayMode
from engine.frame import EpiFrame, EpiRequest, Frame, FrameRenderer, FrameRequest
from engine.latents import InstanceLatent, LatentBank
from models.cameras import Orbit
from models.checkpoint import load_checkpoint
from models.epi import EpipolarImage, PredictedLine
from models.renderer import make_renderer
from models.resolution import Resolution
from viewer.epi_panel import EpiPanel, epi_request, line_segments, pick_scanline
from viewer.orbit import OrbitCamera
from viewer.state import ViewerState
from viewer.worker import RenderWorker

CARS = Path(__file__).resolve().parents[1] / "checkpoints" / "cars.pt"
PICTURE = (400.0, 0.0, 800.0, 800.0)  # x, y, w, h of the view's square in a 1280 × 800 window


def wait_for(worker: RenderWorker, kind: type, timeout_s: float = 60.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (done := worker.take(kind)) is not None:
            return done
        time.sleep(0.01)
    pytest.fail(f"no {kind.__name__} result within {timeout_s} s")


@pytest.fixture
def headless_imgui():
    """An ImGui context with no window: frames build draw lists that nothing renders."""
    imgui.create_context()
    io = imgui.get_io()
    io.set_ini_filename(None)
    io.display_size = (1280, 800)
    io.backend_flags |= imgui.BackendFlags_.renderer_has_textures  # no font texture to upload
    yield io
    imgui.destroy_context()


def test_the_viewers_epi_of_the_shipped_car(egl, headless_imgui):
    ckpt = load_checkpoint(CARS)
    frames = FrameRenderer(make_renderer(ckpt.model), LatentBank(ckpt.latents, ckpt.instance_names))
    state = ViewerState(num_instances=len(ckpt.instance_names), res=Resolution.square(32), epi_open=True,
                        epi_scanline=17.5 / 32)
    view = FrameRequest(Orbit(), 32, DisplayMode.RGB, InstanceLatent(0))
    request = epi_request(state, view)
    assert (request.res, request.row, request.rows) == (Resolution.square(32), 17, 97)
    assert epi_request(ViewerState(num_instances=1, epi_open=False), view) is None

    worker = RenderWorker(frames)
    try:
        worker.submit(request)
        worker.submit(view)
        frame, done = wait_for(worker, FrameRequest), wait_for(worker, EpiRequest)
    finally:
        assert worker.close()
    assert isinstance(frame, Frame) and isinstance(done, EpiFrame), done
    epi = done.epi
    assert epi.image.shape == (97, 32, 3) and epi.scanline == 17
    # the middle row's camera is the view's own: the view's scanline, ray for ray
    assert torch.allclose(epi.image[48], frame.image[17, :, :3], atol=1e-5)
    assert len(epi.lines) >= 3
    assert all(line.slope < 0 and 2.0 < line.depth < 4.0 for line in epi.lines)  # car at radius 3

    panel = EpiPanel(egl)
    try:
        panel.show(done)
        assert panel.problem is None and panel.shown_texture.size == (32, 97)
        with_lines = drawn_vertices(panel, state)
        assert state.epi_open
        lines, epi.lines = epi.lines, []
        without_lines = drawn_vertices(panel, state)
        epi.lines = lines
        # over the EPI in the panel, and as ticks on the view's scanline
        assert with_lines[0] > without_lines[0] and with_lines[1] > without_lines[1] > 0
        panel.show(RuntimeError("out of memory"))
        assert panel.problem == "EPI failed: RuntimeError: out of memory" and panel.shown is done
    finally:
        panel.release()


def drawn_vertices(panel: EpiPanel, state: ViewerState) -> tuple[int, int]:
    """One UI frame of the open section and the view's marks: the vertices drawn into the panel's
    window and onto the view."""
    imgui.new_frame()
    imgui.set_next_window_pos((0, 0))
    imgui.set_next_window_size((340, 800))  # a window of no set size is hidden in its first frame
    imgui.begin("panel")
    imgui.set_next_item_open(True)
    panel.draw(state)
    in_panel = imgui.get_window_draw_list().vtx_buffer.size()
    imgui.end()
    panel.draw_on_view(state, [PICTURE])
    on_view = imgui.get_background_draw_list().vtx_buffer.size()
    imgui.render()
    return in_panel, on_view


def test_lines_map_onto_the_drawn_epi():
    # A 32-pixel scanline drawn 320 wide: 10 window units a pixel; 5 rows drawn 100 high.
    line = PredictedLine(column=4, depth=3.0, slope=-10.0)
    epi = EpipolarImage(torch.zeros(5, 32, 3), torch.linspace(-0.5, 0.5, 5), 0, [line])
    (start, end), = line_segments(epi, 32, (100.0, 50.0, 320.0, 100.0))
    assert start == pytest.approx((100 + (4.5 + 5) * 10, 60.0))  # s = -0.5, the first row's center
    assert end == pytest.approx((100 + (4.5 - 5) * 10, 140.0))  # s = +0.5, the last row's center


def test_ctrl_drag_on_the_picture_picks_the_scanline_not_the_camera(headless_imgui):
    io = headless_imgui
    state = ViewerState(num_instances=1, res=Resolution.square(128), epi_open=True)
    camera = OrbitCamera(Orbit())

    def ui_frame(x: float, y: float, down: bool, ctrl: bool) -> None:
        io.add_key_event(imgui.Key.mod_ctrl, ctrl)
        io.add_mouse_pos_event(x, y)
        io.add_mouse_button_event(0, down)
        imgui.new_frame()
        camera.handle_input(PICTURE, 1 / 60)
        pick_scanline(state, PICTURE)
        imgui.render()

    for y, down in ((200, False), (200, True), (300, True), (500, True), (500, False)):
        ui_frame(800, y, down, ctrl=True)
    assert camera.orbit == Orbit()
    assert state.epi_scanline == (80 + 0.5) / 128  # 500 of 800 units down: row 80 of 128, its center

    for y, down in ((200, False), (200, True), (300, True), (300, False)):
        ui_frame(800, y, down, ctrl=False)  # without Ctrl the same drag orbits
    assert camera.orbit != Orbit() and state.epi_scanline == (80 + 0.5) / 128
