"""Reconstruct from image in the real window: type a photo's path into the panel, click Reconstruct,
and watch the fit drive the picture (Xvfb and xdotool, through tests/test_viewer_window.py)."""

from __future__ import annotations

import json

import numpy as np

from tests.test_fit_image import photo
from tests.test_viewer_window import viewer_factory, vivid_ckpt, xvfb  # noqa: F401 (fixtures)
from viewer.reconstruct import STEPS_PER_RUN

# Where ImGui puts the widgets in a default-size window while the Object section shows one instance
# (read off a screenshot, as test_viewer_window's INSTANCE_SLIDER).
RECONSTRUCT_HEADER = (100, 122)
IMAGE_FIELD = (100, 146)
RECONSTRUCT_BUTTON = (45, 277)


def click(viewer, x: int, y: int) -> None:
    # rest on the widget first: ImGui decides what is hovered from a frame that saw the pointer there
    viewer.xdotool("mousemove", "--window", viewer.window, str(x), str(y), "sleep", "0.15",
                   "click", "1", "sleep", "0.15")


def test_typed_path_reconstructs_and_shows_the_car(viewer_factory, vivid_ckpt, tmp_path):  # noqa: F811
    red = photo(tmp_path / "red.png")
    (tmp_path / "red.json").write_text(json.dumps({"azimuth": 30, "elevation": 20, "radius": 3}))
    viewer = viewer_factory(vivid_ckpt, "--res", "64")
    home = viewer.settled(r"car000 - RGB - 64px$")

    click(viewer, *RECONSTRUCT_HEADER)
    click(viewer, *RECONSTRUCT_BUTTON)  # no path yet: a one-line error in the panel, nothing else
    assert viewer.title().endswith("car000 - RGB - 64px")

    click(viewer, *IMAGE_FIELD)
    viewer.xdotool("type", "--delay", "10", str(red))
    click(viewer, *RECONSTRUCT_BUTTON)
    # The fit pauses by itself after its run of steps; its last code is then shown at full res.
    fitted = viewer.settled(rf"red fit step {STEPS_PER_RUN} - RGB - 64px$", unlike=home)
    assert np.abs(fitted - home).max() > 10

    stats = viewer.stop()
    assert stats["fit_steps"] == STEPS_PER_RUN and stats["fit_steps_per_s"] > 0
    assert stats["ui_fps"] >= 10
