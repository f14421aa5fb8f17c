"""The real viewer window under Xvfb, driven with xdotool and read back with ImageMagick's import.

Each test starts `python main.py` as a user would. The window title names the frame on screen
(instance, mode, resolution), so a test waits for the title and for two equal screenshots
instead of sleeping.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import main
from models.checkpoint import load_checkpoint, save_checkpoint
from tests.conftest import names, skip_or_fail, tiny_lfn, tiny_volumetric
from viewer import app as viewer_app
from viewer.app import BACKGROUND, NO_DISPLAY, WINDOW_SIZE, save_screenshot_png, window_size, window_sizes
from viewer.layout import PANEL_WIDTH, Layout

MAIN = Path(__file__).resolve().parents[1] / "main.py"
TIMEOUT_S = 30.0
INSTANCE_SLIDER = (20, 83)  # the panel's instance slider in a default-size window (ImGui's layout)


@pytest.fixture
def vivid_ckpt(tmp_path: Path) -> Path:
    """A tiny LFN with enlarged weights: its picture changes visibly with the camera, unlike the
    near-uniform color of conftest's tiny checkpoint."""
    model = tiny_lfn()
    with torch.no_grad():
        model.net.layers[0].weight.mul_(20.0)
        for layer in model.net.layers[1:]:
            layer.weight.mul_(3.0)
    path = tmp_path / "vivid.pt"
    save_checkpoint(model, names(3), {"steps": 0, "dataset": "none", "metrics": {}}, path)
    return path


@pytest.fixture(scope="module")
def xvfb():
    """A private X server; yields its DISPLAY value."""
    for tool in ("Xvfb", "xdotool", "import"):
        if shutil.which(tool) is None:
            skip_or_fail(f"{tool} is not installed (apt-get install xvfb xdotool imagemagick)")
    # -displayfd: Xvfb picks a free display number itself and writes it to our pipe when ready.
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", "1", "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    number = server.stdout.readline().strip()
    if not number.isdigit():
        server.kill()
        skip_or_fail("Xvfb did not start")
    yield f":{number}"
    server.terminate()
    server.wait(timeout=10)


def picture_rect(width: int, height: int, aspect: float = 1.0) -> tuple[int, int, int, int]:
    """Where the window draws a single-pane frame of `aspect` (x, y, w, h), from the viewer's own
    layout."""
    x, y, w, h = Layout(width, height, (1.0, 1.0)).pictures(1, aspect)[0]
    return int(x), int(y), int(w), int(h)


class Viewer:
    """A viewer process on the Xvfb display, with helpers to drive and watch it."""

    def __init__(self, display: str, ckpt: Path, folder: Path, *args: str):
        self.env = dict(os.environ, DISPLAY=display)
        self.stats = folder / "stats.json"
        self.proc = subprocess.Popen(
            [sys.executable, str(MAIN), "--ckpt", str(ckpt), "--stats", str(self.stats),
             "--exit-after", "120", *args],
            cwd=folder, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        found = self.xdotool("search", "--sync", "--onlyvisible", "--name", "^LFN viewer",
                             timeout=TIMEOUT_S)
        self.window = found.split()[0]
        self.xdotool("windowfocus", "--sync", self.window)

    def xdotool(self, *args: str, timeout: float = 10.0) -> str:
        try:
            result = subprocess.run(["xdotool", *args], env=self.env, capture_output=True,
                                    text=True, timeout=timeout, check=True)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail(f"xdotool {' '.join(args)} timed out; viewer said: {self.proc.stderr.read()}")
        return result.stdout

    def title(self) -> str:
        return self.xdotool("getwindowname", self.window).strip()

    def screenshot(self) -> np.ndarray:
        png = subprocess.run(["import", "-window", self.window, "png:-"], env=self.env,
                             capture_output=True, check=True, timeout=10).stdout
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int16)

    def settled(self, title_pattern: str, size=WINDOW_SIZE, unlike: np.ndarray | None = None,
                aspect: float = 1.0):
        """The window once its title matches, its picture differs from `unlike` and two
        screenshots in a row agree on it; returns the picture region (a frame of `aspect`)."""
        deadline = time.monotonic() + TIMEOUT_S
        previous = None
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.proc.stderr.read()
            before = self.title()
            shot = self.screenshot()
            ok = re.search(title_pattern, before) and re.search(title_pattern, self.title())
            if ok and shot.shape[1::-1] == tuple(size):
                x, y, w, h = picture_rect(*size, aspect)
                picture = shot[y : y + h, x : x + w]
                fresh = unlike is None or np.abs(picture - unlike).max() > 3
                if fresh and previous is not None and np.array_equal(picture, previous):
                    return picture
                previous = picture
            time.sleep(0.15)
        pytest.fail(f"window never settled on {title_pattern!r}; title is {self.title()!r}")

    def drag(self, x: int, y: int, dx: int, dy: int, button: int = 1) -> None:
        # Rest a moment on the start point, as a hand does: ImGui decides what is under the
        # pointer (panel or picture) from a frame that has seen it there.
        steps = [("mousemove", "--window", self.window, str(x), str(y)), ("sleep", "0.1"),
                 ("mousedown", str(button))]
        for k in range(1, 6):
            steps.append(("mousemove", "--window", self.window,
                          str(x + dx * k // 5), str(y + dy * k // 5)))
            steps.append(("sleep", "0.03"))
        steps.append(("mouseup", str(button)))
        self.xdotool(*[word for step in steps for word in step])

    def key(self, name: str) -> None:
        self.xdotool("key", "--delay", "30", name)

    def stop(self) -> dict:
        """SIGTERM, as a desktop closes a window: a clean exit that writes the stats."""
        self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=TIMEOUT_S)
        assert self.proc.returncode == 0, err
        assert err == "", err
        return json.loads(self.stats.read_text())

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture
def viewer_factory(xvfb, tmp_path):
    started = []

    def start(ckpt: Path, *args: str) -> Viewer:
        started.append(Viewer(xvfb, ckpt, tmp_path, *args))
        return started[-1]

    yield start
    for viewer in started:
        viewer.kill()


def headless_png(ckpt: Path, folder: Path, *args: str) -> np.ndarray:
    out = folder / "headless.png"
    assert main.main(["--ckpt", str(ckpt), "--headless", "--out", str(out), *args]) == 0
    return np.asarray(Image.open(out).convert("RGB")).astype(np.int16)


def test_mode_flag_opens_the_window_on_that_display(viewer_factory, vivid_ckpt):
    """--mode normals: the first picture is the normals display, not RGB's (the title says which)."""
    first = viewer_factory(vivid_ckpt, "--res", "64")
    rgb = first.settled(r"car000 - RGB - 64px$")
    first.kill()  # one window named "LFN viewer" at a time: the next one is found by that name
    normals = viewer_factory(vivid_ckpt, "--res", "64", "--mode", "normals").settled(
        r"car000 - normals - 64px$")
    assert np.abs(normals - rgb).max() > 30


def test_orbit_instance_keys_and_screenshot(viewer_factory, vivid_ckpt, tmp_path):
    viewer = viewer_factory(vivid_ckpt, "--res", "128")
    home = viewer.settled(r"car000 - RGB - 128px$")
    background = np.array(BACKGROUND) * 255
    assert np.abs(home.mean((0, 1)) - background).max() > 10, "the picture area shows no frame"

    # A drag that starts on the panel's instance slider belongs to ImGui, even where it ends
    # over the picture: the instance goes to the last one and the camera stays put.
    viewer.drag(*INSTANCE_SLIDER, 700, 300)
    last = viewer.settled(r"car002 - RGB - 128px$", unlike=home)
    viewer.key("bracketleft")
    viewer.key("Page_Up")
    assert np.abs(viewer.settled(r"car000 - RGB - 128px$", unlike=last) - home).max() <= 1

    x, y, w, h = picture_rect(*WINDOW_SIZE)
    viewer.drag(x + w // 2, y + h // 2, 150, 60)  # left-drag orbits
    orbited = viewer.settled(r"car000 - RGB - 128px$", unlike=home)

    viewer.key("bracketright")  # next instance
    other = viewer.settled(r"car001 - RGB - 128px$", unlike=orbited)

    viewer.key("r")  # home camera
    viewer.key("bracketleft")  # back to instance 0: the very first picture again
    back = viewer.settled(r"car000 - RGB - 128px$", unlike=other)
    assert np.abs(back - home).max() <= 1

    viewer.key("s")  # screenshot of the rendered frame: exactly the headless PNG of that camera
    shot = tmp_path / "lfn-screenshot-001.png"
    deadline = time.monotonic() + TIMEOUT_S
    while not shot.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    saved = np.asarray(Image.open(shot).convert("RGB")).astype(np.int16)
    assert np.abs(saved - headless_png(vivid_ckpt, tmp_path, "--res", "128")).max() <= 1

    stats = viewer.stop()
    for key in ("ui_fps", "render_ms_median", "frames", "render_res_min", "render_res_max"):
        assert stats[key] is not None, key
    assert stats["texture_path"] == "cpu-copy"
    assert stats["render_res_min"] < stats["render_res_max"] == 128  # coarse while moving
    assert stats["ui_fps"] >= 10


def test_window_frame_matches_headless_png(viewer_factory, vivid_ckpt, tmp_path):
    res = 128
    # A window this size leaves exactly res × res right of the panel: the frame is drawn 1:1.
    size = (res * 3 // 2, res)
    assert picture_rect(*size)[2:] == (res, res)
    expected = headless_png(vivid_ckpt, tmp_path, "--res", str(res), "--instance", "2",
                            "--azimuth", "100", "--elevation", "35")
    viewer = viewer_factory(vivid_ckpt, "--res", str(res), "--instance", "2",
                            "--azimuth", "100", "--elevation", "35")
    viewer.xdotool("windowsize", "--sync", viewer.window, str(size[0]), str(size[1]))
    picture = viewer.settled(rf"car002 - RGB - {res}px$", size=size)
    assert np.abs(picture - expected).max() <= 1

    viewer.xdotool("windowsize", viewer.window, "1", "1")  # nearly minimized: must not crash
    time.sleep(0.5)
    viewer.xdotool("windowsize", viewer.window, "640", "400")
    viewer.settled(rf"car002 - RGB - {res}px$", size=(640, 400))
    viewer.stop()


def test_a_non_square_frame_opens_a_window_of_its_aspect_and_matches_headless(
        viewer_factory, vivid_ckpt, tmp_path):
    aspect = 96 / 64
    assert window_size(aspect) == (PANEL_WIDTH + 1200, 800)  # the view beside the panel is 3:2 too
    viewer = viewer_factory(vivid_ckpt, "--res", "96x64")
    viewer.settled(r"car000 - RGB - 96x64px$", size=window_size(aspect), aspect=aspect)
    # A window this size leaves exactly 96 × 64 right of the panel: the frame is drawn 1:1.
    size = (144, 64)
    assert picture_rect(*size, aspect)[2:] == (96, 64)
    viewer.xdotool("windowsize", "--sync", viewer.window, str(size[0]), str(size[1]))
    picture = viewer.settled(r"car000 - RGB - 96x64px$", size=size, aspect=aspect)
    assert np.abs(picture - headless_png(vivid_ckpt, tmp_path, "--res", "96x64")).max() <= 1
    viewer.stop()


def test_display_modes(viewer_factory, vivid_ckpt, tiny_volumetric_ckpt):
    viewer = viewer_factory(vivid_ckpt, "--res", "32", "--volumetric", str(tiny_volumetric_ckpt))
    viewer.settled(r"car000 - RGB - 32px$")
    viewer.key("2")
    viewer.settled(r"car000 - gradient depth - 32px$")
    viewer.key("3")
    viewer.settled(r"car000 - normals - 32px$")
    viewer.key("4")
    viewer.settled(r"car000 - LFN vs volumetric - 32px$")
    shot = viewer.screenshot()
    x, y, w, h = Layout(*WINDOW_SIZE, (1.0, 1.0)).pictures(3)[2]
    heatmap = shot[y + h // 4 : y + 3 * h // 4, x + w // 4 : x + 3 * w // 4]
    assert heatmap.std((0, 1)).max() > 1, "the difference pane is flat"
    viewer.stop()


def test_compare_mode_shows_a_car_the_baseline_lacks_by_the_lfn_alone(
        viewer_factory, vivid_ckpt, tiny_volumetric_ckpt, tmp_path):
    """The baseline holds car000-car002; this LFN holds two of them and "extra", in another order."""
    vivid = load_checkpoint(vivid_ckpt)
    ckpt = tmp_path / "more_cars.pt"
    save_checkpoint(vivid.model, ["car002", "extra", "car000"], vivid.meta, ckpt)
    viewer = viewer_factory(ckpt, "--res", "32", "--volumetric", str(tiny_volumetric_ckpt), "--instance", "1")
    alone = viewer.settled(r"extra - RGB - 32px$")
    viewer.key("4")
    # one pane where the RGB frame was: the LFN's picture, no volumetric car beside it
    assert np.abs(viewer.settled(r"extra - LFN vs volumetric - 32px$") - alone).max() <= 1
    viewer.key("bracketright")
    viewer.settled(r"car000 - LFN vs volumetric - 32px$")
    x, y, w, h = Layout(*WINDOW_SIZE, (1.0, 1.0)).pictures(3)[2]
    heatmap = viewer.screenshot()[y + h // 4 : y + 3 * h // 4, x + w // 4 : x + 3 * w // 4]
    assert heatmap.std((0, 1)).max() > 1, "car000 has a twin, but no difference pane shows"
    viewer.stop()


def test_the_comparison_is_refused_only_for_a_baseline_sharing_no_car(tiny_ckpt, tmp_path):
    ckpt, baseline = load_checkpoint(tiny_ckpt), tmp_path / "baseline.pt"  # car000, car001, car002
    for baseline_names, note in ((["car002", "elsewhere", "car000"], None),
                                 (["a", "b", "c"], f"{baseline} holds none of the LFN's cars (no instance "
                                                   "name in common)")):
        save_checkpoint(tiny_volumetric(), baseline_names, {"steps": 0, "dataset": "none", "metrics": {}},
                        baseline)
        renderer, latents, why = viewer_app.load_volumetric(baseline, ckpt, torch.device("cpu"), "fp32")
        assert why == note and (renderer is None) == (latents is None) == (note is not None)

def test_no_display_is_one_line_and_exit_1(tiny_ckpt):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    result = subprocess.run([sys.executable, str(MAIN), "--ckpt", str(tiny_ckpt)], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr == NO_DISPLAY + "\n"
    assert result.stdout == ""


def test_exit_after_closes_cleanly_and_writes_stats(xvfb, tiny_ckpt, tmp_path):
    stats = tmp_path / "stats.json"
    result = subprocess.run(
        [sys.executable, str(MAIN), "--ckpt", str(tiny_ckpt), "--res", "32", "--exit-after", "1.5",
         "--stats", str(stats)],
        env=dict(os.environ, DISPLAY=xvfb), cwd=tmp_path, capture_output=True, text=True,
        timeout=60,
    )
    assert (result.returncode, result.stderr, result.stdout) == (0, "", "")
    summary = json.loads(stats.read_text())
    # no frame-rate floor: a test is no benchmark, and on a loaded 2-core machine this one saw 9 FPS
    assert summary["frames"] > 0 and summary["renders"] >= 1
    assert summary["texture_path"] == "cpu-copy" and 1.4 < summary["seconds"] < 10


def test_sizes_read_across_a_resize_are_refused(monkeypatch):
    """A resize between the window and framebuffer queries gave ImGui a 640× font scale in CI,
    which overflowed its font atlas; such a pair must never reach a frame."""
    reads = iter([(1, 1), (640, 400), (640, 400)])  # window, framebuffer, window again
    monkeypatch.setattr(viewer_app.glfw, "get_window_size", lambda _w: next(reads))
    monkeypatch.setattr(viewer_app.glfw, "get_framebuffer_size", lambda _w: next(reads))
    assert window_sizes(None) is None
    reads = iter([(640, 400), (1280, 800), (640, 400)])  # a steady HiDPI window
    assert window_sizes(None) == ((640, 400), (1280, 800))
    reads = iter([(0, 0), (0, 0), (0, 0)])  # minimized
    assert window_sizes(None) is None


def test_screenshot_appears_whole(tmp_path, monkeypatch):
    """A screenshot is written under a hidden name and renamed: a watcher that sees the file sees
    a whole PNG (CI once read one half written)."""
    image = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    write_png = Image.Image.save

    def save_unseen(picture, path, *args, **kwargs):
        write_png(picture, path, *args, **kwargs)
        assert not (tmp_path / "lfn-screenshot-002.png").exists(), "visible before it was whole"

    (tmp_path / "lfn-screenshot-001.png").touch()  # taken: the next free number is used
    monkeypatch.setattr(Image.Image, "save", save_unseen)
    assert save_screenshot_png(image, tmp_path) == tmp_path / "lfn-screenshot-002.png"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lfn-screenshot-001.png",
                                                          "lfn-screenshot-002.png"]
    assert np.array_equal(np.asarray(Image.open(tmp_path / "lfn-screenshot-002.png")), image)


def test_a_slow_frame_names_the_frame_the_render_thread_is_rendering():
    """background_work names what runs beside the UI thread, the render thread's frame in flight
    included (an AOTInductor frame holds the GIL); the app's parts stand in as plain objects."""
    from types import SimpleNamespace

    from engine.display_mode import DisplayMode
    from engine.frame import Frame, FrameRequest
    from engine.latents import InstanceLatent
    from models.cameras import Orbit

    request = FrameRequest(Orbit(), 128, DisplayMode.DEPTH, InstanceLatent(0))
    idle = SimpleNamespace(running=False, exporting=False)
    app = SimpleNamespace(
        switch=SimpleNamespace(status=lambda: SimpleNamespace(switching="aoti fp16")),
        benchmark_panel=SimpleNamespace(running=True), path_recording=idle, reconstruction=idle,
        submitted=request, submitted_s=time.perf_counter(), shown=None,
        renderer=SimpleNamespace(backend="aoti", precision="fp16"),
    )
    assert viewer_app.ViewerApp.background_work(app) == (
        "backend switch to aoti fp16", "benchmark", "frame depth 128 aoti fp16")
    app.shown = Frame(request, torch.zeros(128, 128, 4))  # on screen: nothing in flight
    assert viewer_app.ViewerApp.background_work(app) == ("backend switch to aoti fp16", "benchmark")
