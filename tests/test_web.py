"""`main.py --web` in a real browser (headless Chromium through Selenium), and its parts.

The page test drags the view and changes the instance, and checks that the picture the browser
shows changes after each and holds still between them. Others record a camera path and download
its video, and reconstruct uploaded photos with and without their pose.
"""

from __future__ import annotations

import json
import re
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image
from viser.transforms import SO3

from bench.web_latency import SERVER_START_S, BrowserPage, SocketPage, chromium_paths, free_port, poll
from engine.display_mode import STEREO_DEPTH, SUMMED_DEPTH
from models.cameras import Orbit
from models.checkpoint import load_checkpoint, save_checkpoint
from models.encoder import encoder_path, network_fingerprint, save_encoder
from tests.conftest import names, skip_or_fail, tiny_lfn
from tests.test_encoder import tiny_encoder
from viewer.web import fit_aspect, is_loopback, orbit_from_cam2world, viser_cam2world

ROOT = Path(__file__).resolve().parents[1]
RES = 64  # the page test's resolution: quick to render on a slow CPU
CHANGED = 5.0  # mean absolute difference (of 255) that says the picture changed


@pytest.mark.parametrize("azimuth, elevation, radius, target", [
    (30.0, 20.0, 3.0, (0.0, 0.0, 0.0)),
    (-140.0, -35.0, 2.2, (0.3, -0.1, 0.2)),
    (95.0, 70.0, 4.5, (0.0, 0.5, 0.0)),
])
def test_viser_camera_becomes_the_same_orbit(azimuth, elevation, radius, target):
    """A viser camera (wxyz of our OpenCV cam2world, position, look-at distance) converts back to
    the orbit it came from, and so to the same cam2world."""
    pose = Orbit(azimuth, elevation, radius, target).cam2world().double().numpy()
    cam2world = viser_cam2world(SO3.from_matrix(pose[:3, :3]).wxyz, pose[:3, 3])
    torch.testing.assert_close(cam2world, torch.from_numpy(pose).float(), atol=1e-5, rtol=0)
    orbit = orbit_from_cam2world(cam2world, radius)
    assert orbit.azimuth == pytest.approx(azimuth, abs=1e-3)
    assert orbit.elevation == pytest.approx(elevation, abs=1e-3)
    assert orbit.target == pytest.approx(target, abs=1e-5)
    torch.testing.assert_close(orbit.cam2world(), cam2world, atol=1e-5, rtol=0)


def test_fit_aspect_pads_with_the_side_color_and_crops_centered():
    image = np.full((4, 4, 3), 200, np.uint8)  # background 200, an object of 99 crossing the left edge
    image[1:3, 0:3] = 99
    wide = fit_aspect(image, 2.0)
    assert wide.shape == (4, 8, 3)
    assert (wide[:, :2] == 200).all() and (wide[:, -2:] == 200).all()  # flat background bands
    assert (wide[:, 2:6] == image).all()  # the picture itself, centered
    narrow = fit_aspect(image, 0.5)
    assert narrow.shape == (4, 2, 3) and (narrow == image[:, 1:3]).all()


def test_loopback_hosts():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")


def test_busy_port_is_one_error_line(tiny_ckpt):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "main.py", "--web", "--port", str(port), "--ckpt", str(tiny_ckpt),
             "--device", "cpu", "--exit-after", "30"],
            cwd=ROOT, capture_output=True, text=True, timeout=300,
        )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: --port {port}: "), result.stderr


def vivid_lfn():
    """A tiny LFN with large weights: its pictures vary by tens of levels across views and
    instances (the default tiny one's vary by less than one)."""
    model = tiny_lfn()
    with torch.no_grad():
        for p in model.net.parameters():
            p.normal_(std=2.0 / p.shape[-1] ** 0.5 if p.dim() > 1 else 0.2)
    return model


def test_a_named_encoder_that_cannot_load_is_one_error_line(tiny_ckpt, tmp_path):
    missing = tmp_path / "none.encoder.pt"
    result = subprocess.run(
        [sys.executable, "main.py", "--web", "--port", str(free_port()), "--ckpt", str(tiny_ckpt),
         "--device", "cpu", "--encoder", str(missing), "--exit-after", "30"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines == [f"error: --encoder checkpoint {missing}: no such file"], result.stderr
    assert "serving the viewer" not in result.stdout


@pytest.fixture
def vivid_ckpt(tmp_path: Path) -> Path:
    path = tmp_path / "vivid.pt"
    save_checkpoint(vivid_lfn(), names(3), {"steps": 0, "dataset": "none", "metrics": {}}, path)
    return path


@pytest.fixture
def vivid_ckpt_with_encoder(vivid_ckpt: Path) -> Path:
    """The vivid LFN with an (untrained) encoder beside it, which estimates a photo's pose."""
    model = load_checkpoint(vivid_ckpt).model
    save_encoder(tiny_encoder(), network_fingerprint(model), {}, encoder_path(vivid_ckpt))
    return vivid_ckpt


def test_host_beyond_loopback_warns_once(tiny_ckpt):
    port = free_port()
    result = subprocess.run(
        [sys.executable, "main.py", "--web", "--host", "0.0.0.0", "--port", str(port),
         "--ckpt", str(tiny_ckpt), "--device", "cpu", "--exit-after", "0.5"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    warnings = result.stderr.strip().splitlines()
    assert len(warnings) == 1 and warnings[0].startswith("warning: --host 0.0.0.0")
    assert "no authentication" in warnings[0]
    assert f"http://0.0.0.0:{port}" in result.stdout


# main.py in a fresh interpreter that says, once it returns, which of the window's GUI packages it loaded
WINDOW_GUI = ("imgui_bundle", "glfw", "moderngl")
MAIN_THEN_LOADED_GUI = f"""
import sys
import main
code = main.main(sys.argv[1:])
print("loaded:", *[name for name in {WINDOW_GUI!r} if name in sys.modules])
sys.exit(code)
"""


def test_serving_a_page_loads_no_window_gui(tiny_ckpt):
    """`--web` up to a page's rendered frame imports none of the window's GUI wheels (imgui-bundle,
    glfw, moderngl): a GPU server for the page installs without them."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", MAIN_THEN_LOADED_GUI, "--web", "--port", str(port), "--ckpt", str(tiny_ckpt),
         "--device", "cpu", "--res", "32", "--exit-after", "600"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        ready, _, _ = select.select([server.stdout], [], [], SERVER_START_S)
        assert ready and "serving the viewer at" in server.stdout.readline()
        page = SocketPage(f"ws://127.0.0.1:{port}/")
        try:
            page.wait_settled(32, timeout=180)  # a session, its render thread and a frame sent
        finally:
            page.quit()
        server.send_signal(signal.SIGTERM)
        stdout, stderr = server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert server.returncode == 0, stderr
    assert stdout.strip().splitlines()[-1] == "loaded:"


def differs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def require_chromium() -> None:
    if chromium_paths() is None:
        skip_or_fail("chromium and chromedriver are not installed (apt-get install chromium "
                     "chromium-driver)")


def test_page_follows_drag_and_instance(vivid_ckpt):
    require_chromium()
    page = BrowserPage(vivid_ckpt, ("--res", str(RES), "--exit-after", "600"))
    try:
        browser = page.open_browser()
        browser.dismiss_notifications()
        status = browser.wait_settled(RES, timeout=180)
        first = browser.view()
        time.sleep(1.5)  # nothing changes: the picture and the frame count hold still
        assert differs(browser.view(), first) == 0.0
        assert browser.status().frames_sent == status.frames_sent

        browser.drag(150)
        status = browser.wait_settled(RES, after_frames=status.frames_sent)
        dragged = browser.view()
        assert differs(dragged, first) > CHANGED

        browser.set_instance(2)
        status = browser.wait_settled(RES, after_frames=status.frames_sent)
        other = browser.view()
        assert differs(other, dragged) > CHANGED
        assert "car002" in browser.driver.page_source  # the panel names the instance shown
        time.sleep(1.5)
        assert differs(browser.view(), other) == 0.0
    finally:
        code, stderr = page.close()
    assert code == 0, stderr


def test_the_depth_options_are_ticked_in_the_browser_by_their_labels(vivid_ckpt):
    """The refinement's label has hyphens, which viser breaks with <wbr>: the driver still finds
    its box, and ticking it brings new frames."""
    require_chromium()
    page = BrowserPage(vivid_ckpt, ("--res", str(RES), "--mode", "depth", "--exit-after", "600"))
    try:
        browser = page.open_browser()
        browser.dismiss_notifications()
        status = browser.wait_settled(RES, timeout=180)
        for option in (STEREO_DEPTH, SUMMED_DEPTH):
            assert not browser.checkbox(option.label).is_selected()
            browser.click_checkbox(option.label)
            status = browser.wait_settled(RES, after_frames=status.frames_sent, timeout=180)
            assert browser.checkbox(option.label).is_selected()
    finally:
        code, stderr = page.close()
    assert code == 0, stderr


def test_each_browser_has_its_own_camera(vivid_ckpt, tmp_path):
    """A drag in one browser turns only its own view, and a keyframe it takes is its own; the
    server's --stats count each one's frames."""
    require_chromium()
    stats = tmp_path / "stats.json"
    page = BrowserPage(vivid_ckpt, ("--res", str(RES), "--exit-after", "600"), stats=stats)
    try:
        dragging, watching = page.open_browser(), page.open_browser()
        for browser in (dragging, watching):
            browser.dismiss_notifications()
        before = {id(b): b.wait_settled(RES, timeout=180) for b in (dragging, watching)}
        watched = watching.view()

        dragging.drag(150)
        dragging.wait_settled(RES, after_frames=before[id(dragging)].frames_sent)
        time.sleep(1.0)
        assert watching.status() == before[id(watching)]  # not one frame more
        assert differs(watching.view(), watched) == 0.0
        for browser in (dragging, watching):
            browser.open_folder("Record path")
        dragging.click_button("add keyframe")
        dragging.click_button("add keyframe")
        poll(lambda: "2 keyframe(s)" in dragging.text(), 30, "the dragging page's keyframes")
        dragging.click_button("delete last keyframe")
        poll(lambda: "1 keyframe(s)" in dragging.text(), 30, "one keyframe deleted")
        time.sleep(1.0)  # a few of the server's list updates
        assert "0 keyframe(s)" in watching.text()
    finally:
        code, stderr = page.close()
    assert code == 0, stderr
    counts = [len(session["sent_s"]) for session in json.loads(stats.read_text())["sessions"]]
    assert len(counts) == 2 and before[id(watching)].frames_sent in counts
    counts.remove(before[id(watching)].frames_sent)
    assert counts[0] > before[id(dragging)].frames_sent


def test_benchmark_button_shows_fps_table(tiny_ckpt, tiny_volumetric_ckpt):
    require_chromium()
    page = BrowserPage(tiny_ckpt, ("--res", str(RES), "--volumetric", str(tiny_volumetric_ckpt),
                                   "--exit-after", "600"))
    try:
        browser = page.open_browser()
        browser.dismiss_notifications()
        browser.wait_settled(RES, timeout=180)
        browser.open_folder("Benchmark")
        browser.click_button("run benchmark")
        tables = poll(browser.tables, 300, "benchmark table", interval=0.5)
        rows = {line.split()[0]: line.split()[1:] for line in tables[0].splitlines()}
        assert {"lfn", "volumetric"} <= rows.keys()
        assert all(float(cell) > 0 for cell in rows["lfn"] + rows["volumetric"])
        assert "speedup over volumetric" in browser.driver.page_source
    finally:
        code, stderr = page.close()
    assert code == 0, stderr


def red_box_photo(folder: Path) -> Path:
    photo = np.full((64, 64, 3), 255, np.uint8)
    photo[24:44, 12:52] = (200, 30, 30)  # a red box on white
    path = folder / "redbox.png"
    Image.fromarray(photo).save(path)
    return path


def test_uploaded_photo_is_fitted_and_shown(vivid_ckpt, tmp_path):
    """Without an encoder a photo needs its pose: uploaded without one, the page says so; with it,
    the fit starts, the page's code becomes the fitted one and the picture follows it."""
    require_chromium()
    path = red_box_photo(tmp_path)
    page = BrowserPage(vivid_ckpt, ("--res", str(RES), "--exit-after", "600"))
    try:
        browser = page.open_browser()
        browser.dismiss_notifications()
        status = browser.wait_settled(RES, timeout=180)
        before = browser.view()
        browser.open_folder("Reconstruct from a photo")
        browser.upload(path)
        poll(lambda: "no encoder to estimate the photo's pose" in browser.text(), 60, "pose needed")
        browser.click_checkbox("pose known")
        browser.click_button("reconstruct")  # the photo uploaded, now with its pose
        poll(lambda: re.search(r"step (\d+), PSNR", browser.text()), 180, "fit progress")
        assert "redbox fit step" in browser.text()  # the view shows the fitted code
        assert "pose az 30.0°, el 20.0° (given)" in browser.text()
        browser.click_button("stop fitting")
        # stopped, or done where its 300 steps ended first (a tiny network on a free CPU)
        poll(lambda: re.search(r"(stopped|done): step", browser.text()), 120, "fit stopped")
        browser.wait_settled(RES, after_frames=status.frames_sent)
        assert differs(browser.view(), before) > CHANGED
    finally:
        code, stderr = page.close()
    assert code == 0, stderr


def test_upload_without_a_pose_is_fitted_from_the_encoders_estimate(vivid_ckpt_with_encoder, tmp_path):
    """With an encoder beside the checkpoint the pose is optional: the page shows the pose the
    encoder estimated (front/back pick included) and the fit runs from it."""
    require_chromium()
    page = BrowserPage(vivid_ckpt_with_encoder, ("--res", str(RES), "--exit-after", "600"))
    try:
        browser = page.open_browser()
        browser.dismiss_notifications()
        browser.wait_settled(RES, timeout=180)
        browser.open_folder("Reconstruct from a photo")
        poll(lambda: "encoder: vivid.encoder.pt: it estimates the photo's pose" in browser.text(), 30,
             "the encoder's note")
        browser.upload(red_box_photo(tmp_path))
        estimate = poll(lambda: re.search(r"estimated az (-?[\d.]+)°, el (-?[\d.]+)°: azimuth p ([\d.]+) "
                                          r"\(chance [\d.]+\), front/back ([\d.]+)", browser.text()),
                        120, "estimated pose")
        assert 0.5 <= float(estimate[4]) <= 1.0  # the chosen side is at least as likely as its twin
        poll(lambda: re.search(r"step (\d+), PSNR", browser.text()), 180, "fit progress")
        assert re.search(r"pose az -?[\d.]+°, el -?[\d.]+°\n", browser.text() + "\n")  # not "(given)"
    finally:
        code, stderr = page.close()
    assert code == 0, stderr

def test_a_recorded_path_is_exported_and_downloaded(vivid_ckpt, tmp_path):
    """Two keyframes taken at two camera positions in the page become a video through the window's
    export code; the browser downloads it and it decodes to the frames asked for."""
    require_chromium()
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    page = BrowserPage(vivid_ckpt, ("--res", str(RES), "--exit-after", "600"))
    try:
        browser = page.open_browser()
        browser.save_downloads_to(downloads)
        browser.dismiss_notifications()
        status = browser.wait_settled(RES, timeout=180)
        browser.open_folder("Record path")
        browser.click_button("add keyframe")
        poll(lambda: "1 keyframe(s)" in browser.text(), 30, "the first keyframe")
        browser.drag(150)
        browser.wait_settled(RES, after_frames=status.frames_sent)
        browser.click_button("add keyframe")
        poll(lambda: "2 keyframe(s)" in browser.text(), 30, "the second keyframe")
        azimuths = [float(a) for a in re.findall(r"^az (-?\d+) el", browser.text(), re.MULTILINE)]
        assert len(azimuths) == 2 and abs(azimuths[1] - azimuths[0]) >= 10
        browser.set_number("frames", 6)
        browser.set_number("fps", 10)
        poll(lambda: "6 frames at 10 fps (0.6 s), 64²" in browser.text(), 30, "the video's timing")
        browser.click_button("export video")
        poll(lambda: "6 frames, 64x64, 10 fps: camera_path.mp4 sent to this page" in browser.text(),
             120, "the exported video")
        browser.download("camera_path.mp4")
        video = poll(lambda: (downloads / "camera_path.mp4").is_file() and downloads / "camera_path.mp4",
                     30, "the downloaded video")
    finally:
        code, stderr = page.close()
    assert code == 0, stderr
    with av.open(str(video)) as container:
        assert container.streams.video[0].average_rate == 10
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 6 and frames[0].shape == (RES, RES, 3)
    assert differs(frames[0], frames[-1]) > CHANGED  # the camera moved between the keyframes
