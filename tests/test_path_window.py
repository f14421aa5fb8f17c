"""Record path in the real window: take two keyframes while orbiting, save the path file and export
the video from the panel (Xvfb and xdotool, through tests/test_viewer_window.py)."""

from __future__ import annotations

import json
import time

import av

from tests.test_reconstruct_window import click
from tests.test_viewer_window import viewer_factory, vivid_ckpt, xvfb  # noqa: F401 (fixtures)

# Where ImGui puts the widgets in a default-size window while the Object section shows one instance
# and the keyframe list is showing (read off a screenshot, as test_viewer_window's INSTANCE_SLIDER).
RECORD_HEADER = (100, 145)
ADD_KEYFRAME = (50, 168)
SAVE_PATH = (43, 394)
EXPORT_VIDEO = (127, 440)
FRAMES = 120  # the panel's default
TIMEOUT_S = 60.0


def test_keyframes_taken_in_the_window_save_and_export(viewer_factory, vivid_ckpt, tmp_path):  # noqa: F811
    viewer = viewer_factory(vivid_ckpt, "--res", "32")
    home = viewer.settled(r"car000 - RGB - 32px$")
    click(viewer, *RECORD_HEADER)
    click(viewer, *ADD_KEYFRAME)
    viewer.drag(800, 400, 100, 20)  # orbit 40 degrees back across azimuth 0
    viewer.settled(r"car000 - RGB - 32px$", unlike=home)
    click(viewer, *ADD_KEYFRAME)
    click(viewer, *SAVE_PATH)
    click(viewer, *EXPORT_VIDEO)

    video = tmp_path / "camera_path.mp4"  # the panel's default names, in the working folder
    deadline = time.monotonic() + TIMEOUT_S
    while not video.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    with av.open(str(video)) as container:
        assert sum(1 for _ in container.decode(video=0)) == FRAMES
    keyframes = json.loads((tmp_path / "camera_path.json").read_text())["keyframes"]
    assert [k["azimuth"] for k in keyframes] == [30.0, -10.0]  # the short way, not 350 degrees on
    assert viewer.stop()["ui_fps"] >= 10
