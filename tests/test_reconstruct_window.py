"""Reconstruct from a photo in the real window: type a photo's path into the panel and press Enter,
or drop files on the window (a real XDND drop, bench/xdnd.py), and watch the fit drive the picture
(Xvfb and xdotool, through tests/test_viewer_window.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bench.xdnd import drop
from models.checkpoint import load_checkpoint
from models.encoder import encoder_path, network_fingerprint, save_encoder
from models.inference import DEFAULT_STEPS
from tests.test_encoder import tiny_encoder
from tests.test_fit_image import photo
from tests.test_viewer_window import viewer_factory, vivid_ckpt, xvfb  # noqa: F401 (fixtures)
from viewer.layout import Layout

# Where ImGui puts the widgets in a default-size window while the Object section shows one instance
# and no encoder is loaded (read off a screenshot, as test_viewer_window's INSTANCE_SLIDER).
RECONSTRUCT_HEADER = (100, 122)
PHOTO_FIELD = (100, 162)
RECONSTRUCT_BUTTON = (45, 271)
WARNING_RGB = (255, 140, 77)  # viewer/reconstruct_panel.py WARNING: the panel's error lines
AUTODECODE_STEPS = DEFAULT_STEPS["autodecode"]  # a run without an encoder: the fit from the mean
REFINE_STEPS = DEFAULT_STEPS["refine"]  # with an encoder: its code, then these steps


def click(viewer, x: int, y: int) -> None:
    # rest on the widget first: ImGui decides what is hovered from a frame that saw the pointer there
    viewer.xdotool("mousemove", "--window", viewer.window, str(x), str(y), "sleep", "0.15",
                   "click", "1", "sleep", "0.15")


def with_pose_file(path: Path) -> Path:
    """The red box photo with its pose beside it: without an encoder, the pose is needed."""
    photo(path)
    path.with_suffix(".json").write_text(json.dumps({"azimuth": 30, "elevation": 20, "radius": 3}))
    return path


def warning_pixels(viewer) -> int:
    """Pixels of the panel drawn in the error color: a new error line adds some."""
    shot = viewer.screenshot()
    panel = shot[:, : int(Layout(shot.shape[1], shot.shape[0], (1.0, 1.0)).panel)]
    return int((np.abs(panel - np.array(WARNING_RGB)).max(-1) < 40).sum())


def test_typed_path_reconstructs_and_shows_the_car(viewer_factory, vivid_ckpt, tmp_path):  # noqa: F811
    red = with_pose_file(tmp_path / "red.png")
    viewer = viewer_factory(vivid_ckpt, "--res", "64")
    home = viewer.settled(r"car000 - RGB - 64px$")

    click(viewer, *RECONSTRUCT_HEADER)
    click(viewer, *RECONSTRUCT_BUTTON)  # no path yet: a one-line error in the panel, nothing else
    assert viewer.title().endswith("car000 - RGB - 64px")

    click(viewer, *PHOTO_FIELD)
    viewer.xdotool("type", "--delay", "10", str(red))
    viewer.xdotool("key", "Return")
    # The fit pauses by itself after its run of steps, goes past its latent (autodecode's default),
    # and the car it ends on is then shown at full res.
    fitted = viewer.settled(r"red past the latent - RGB - 64px$", unlike=home)
    assert np.abs(fitted - home).max() > 10

    stats = viewer.stop()
    assert stats["fit_steps"] == AUTODECODE_STEPS and stats["fit_steps_per_s"] > 0
    assert stats["ui_fps"] >= 10


def test_dropped_files_reconstruct_or_say_what_is_wrong(viewer_factory, vivid_ckpt, xvfb,  # noqa: F811
                                                       tmp_path):
    red = with_pose_file(tmp_path / "red.png")
    (tmp_path / "notes.png").write_text("not an image")
    viewer = viewer_factory(vivid_ckpt, "--res", "64")
    home = viewer.settled(r"car000 - RGB - 64px$")
    window = int(viewer.window)
    click(viewer, *RECONSTRUCT_HEADER)
    before = warning_pixels(viewer)  # the open section's "pose is needed" line

    drop(xvfb, window, 800, 400, [str(tmp_path / "notes.png")])
    # An error line under the buttons; the window lives on with the same picture.
    viewer.settled(r"car000 - RGB - 64px$")
    assert warning_pixels(viewer) > before + 100
    assert viewer.proc.poll() is None

    drop(xvfb, window, 800, 400, [str(red)])
    fitted = viewer.settled(r"red past the latent - RGB - 64px$", unlike=home)
    assert np.abs(fitted - home).max() > 10
    assert viewer.stop()["fit_steps"] == AUTODECODE_STEPS


def test_a_dropped_photo_shows_the_encoder_code_first_then_the_refined_ones(
        viewer_factory, vivid_ckpt, xvfb, tmp_path):  # noqa: F811
    model = load_checkpoint(vivid_ckpt).model
    save_encoder(tiny_encoder(), network_fingerprint(model), {}, encoder_path(vivid_ckpt))
    red = photo(tmp_path / "red.png")  # no pose file: the encoder estimates it
    viewer = viewer_factory(vivid_ckpt, "--res", "64")
    viewer.settled(r"car000 - RGB - 64px$")
    drop(xvfb, int(viewer.window), 800, 400, [str(red)])
    viewer.settled(r"red past the latent - RGB - 64px$")  # refine goes past its latent by default
    (timing,) = viewer.stop()["photos"]  # the window's own record of the drop
    steps = [frame["step"] for frame in timing["frames"]]
    assert timing["mode"] == "refine" and steps[0] == 0  # the encoder's code, before any step
    assert steps == sorted(steps) and steps[-1] == REFINE_STEPS  # then the refined codes, in order
    assert timing["start_ms"] <= timing["published_ms"] < timing["frames"][0]["on_screen_ms"]
