"""Reconstruction from one image in the viewer, without a window: the fitting session (start, stop,
continue, save), the photo and its pose file, publishing fitted codes to the view, latent tools."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.frame import FrameRenderer
from engine.latents import FittedLatent, InstanceLatent
from engine.metrics import psnr
from models.cameras import Orbit
from models.checkpoint import load_checkpoint
from models.renderer import LFNRenderer
from tests.conftest import names, tiny_lfn
from tests.test_fit_image import photo
from viewer.fitted_latents import FittedLatentBank
from viewer.reconstruct import (
    FitSession,
    ReconstructError,
    default_save_path,
    load_input,
    read_pose,
    save_fitted,
)
from viewer.reconstruct_panel import PUBLISH_INTERVAL_S, Reconstruction, folder_of, png_names
from viewer.state import ViewerState

OPTIONS = {"lr": 5e-2, "rays_per_step": 512}


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def settle(session: FitSession) -> int:
    """The step count once the step in flight at pause() has landed."""
    while True:
        steps = session.steps
        time.sleep(0.05)
        if session.steps == steps:
            return steps


def known_view(model, pose: Orbit, res: int = 24) -> np.ndarray:
    """What the model shows of instance 2 from `pose`: a photo whose best latent is known."""
    renderer = LFNRenderer(model)
    renderer.set_latent(model.latents.weight[2])
    return (renderer.render(pose.cam2world(), res) * 255).round().to(torch.uint8).numpy()


def test_session_runs_stops_continues_and_saves_a_loadable_instance(tiny_ckpt, tmp_path):
    ckpt = load_checkpoint(tiny_ckpt)
    pose = Orbit(40.0, 25.0)
    photo = known_view(ckpt.model, pose)
    session = FitSession(ckpt.model, photo, pose, OPTIONS)
    try:
        assert session.steps == 0 and not session.running  # created paused
        session.resume(steps=40)
        wait_for(lambda: not session.running)  # pauses by itself after its run of steps
        assert session.steps == 40
        time.sleep(0.05)
        assert session.steps == 40  # stopped means stopped

        session.resume(steps=10_000)
        wait_for(lambda: session.steps >= 60)
        session.pause()
        assert not session.running
        stopped_at = settle(session)
        time.sleep(0.05)
        assert session.steps == stopped_at

        session.resume(steps=60)  # Continue: the same latent and optimizer state
        wait_for(lambda: not session.running)
        losses, psnrs = session.history()
        assert len(losses) == len(psnrs) == session.steps >= 120
        assert losses[-10:].mean() < 0.5 * losses[:10].mean()
        assert psnrs[-10:].mean() > psnrs[:10].mean() + 3
        latent = session.latest.latent
        session.resume(steps=10_000)
    finally:
        session.close()  # also while running: ends after the step in flight
    assert not session.running and session.steps < 10_000
    assert all(p.requires_grad for p in ckpt.model.parameters())  # the network is given back

    out = default_save_path(tiny_ckpt)
    assert out == tmp_path / "tiny_fitted.pt"
    index = save_fitted(ckpt, latent, "red", {"fit_steps": 120}, out, source=tiny_ckpt)
    saved = load_checkpoint(out)
    assert index == len(saved.instance_names) - 1 == len(ckpt.instance_names)
    assert saved.instance_names[-1] == "red" and saved.meta["fit_steps"] == 120
    assert torch.equal(saved.latents[:-1], ckpt.latents.detach())
    assert torch.allclose(saved.latents[-1], latent)
    renderer = LFNRenderer(saved.model)
    renderer.set_latent(saved.latents[-1])
    assert psnr(renderer.render(pose.cam2world(), 24), torch.from_numpy(photo) / 255) > 25


def test_saving_refuses_the_open_checkpoint_and_non_pt_files(tiny_ckpt, tmp_path):
    ckpt = load_checkpoint(tiny_ckpt)
    latent = ckpt.latents[0]
    for path, needle in ((tiny_ckpt, "open checkpoint"), (tmp_path / "x.png", ".pt"),
                         (tmp_path / "no" / "x.pt", "does not exist")):
        with pytest.raises(ReconstructError, match=needle):
            save_fitted(ckpt, latent, "x", {}, path, source=tiny_ckpt)


def test_pose_comes_from_a_sidecar_file(tmp_path):
    image = tmp_path / "car.png"
    Image.new("RGB", (32, 32), "white").save(image)
    assert read_pose(image) is None
    assert read_pose(Path("/")) is None and read_pose(tmp_path / "missing.png") is None
    (tmp_path / "car.png.json").write_text(json.dumps({"azimuth": 10, "elevation": 5}))
    assert read_pose(image) == Orbit(10.0, 5.0, 3.0)
    (tmp_path / "car.json").write_text(json.dumps({"azimuth": 1, "elevation": 2, "radius": 2.5}))
    assert read_pose(image) == Orbit(1.0, 2.0, 2.5)  # car.json comes first
    for bad in ("{", '{"azimuth": 1}', '{"azimuth": 1, "elevation": 2, "radius": -1}', "[1, 2]"):
        (tmp_path / "car.json").write_text(bad)
        with pytest.raises(ReconstructError, match="car.json"):
            read_pose(image)


def test_bad_photos_are_one_line_errors(tmp_path):
    (tmp_path / "junk.png").write_bytes(b"not an image")
    Image.new("RGB", (40, 30), "white").save(tmp_path / "wide.png")
    for name, needle in (("missing.png", "no such file"), ("junk.png", "not a readable image"),
                         ("wide.png", "must be square")):
        with pytest.raises(ReconstructError, match=needle) as error:
            load_input(tmp_path / name, 32)
        assert "\n" not in str(error.value) and "--fit-image" not in str(error.value)


def test_reconstruction_publishes_the_fit_to_the_view(tiny_ckpt, tmp_path):
    ckpt = load_checkpoint(tiny_ckpt)
    bank = FittedLatentBank(ckpt.latents, ckpt.instance_names)
    rec = Reconstruction(ckpt, tiny_ckpt, bank, OPTIONS)
    state = ViewerState(num_instances=3)
    red = photo(tmp_path / "red.png")
    with pytest.raises(ReconstructError):
        rec.start(tmp_path / "missing.png", Orbit(), state)
    assert rec.session is None and state.latent_source is InstanceLatent
    try:
        rec.start(red, Orbit(), state)
        assert state.latent_source is FittedLatent and rec.photo.shape == (128, 128, 3)  # fit resolution
        assert (state.fitted_serial, state.fitted_label) == (1, "red fit step 0")
        assert torch.equal(bank.latent(state.latent_selection()), ckpt.latents.detach().mean(0))
        wait_for(lambda: rec.session.steps >= 2)
        rec.update(state, now=100.0)
        assert state.fitted_serial == 2 and state.fitted_label.startswith("red fit step ")
        assert len(rec.nearest) == 3 and rec.nearest[0][1] <= rec.nearest[-1][1]
        assert state.fit_target == rec.nearest[0][0]  # interpolation starts toward the nearest
        selection = state.latent_selection()
        wait_for(lambda: rec.session.steps > int(state.fitted_label.split()[-1]))
        rec.update(state, now=100.0 + PUBLISH_INTERVAL_S / 2)  # too soon while running
        assert state.latent_selection() == selection
        rec.session.pause()
        settle(rec.session)
        rec.update(state, now=100.0 + PUBLISH_INTERVAL_S / 2)  # paused: the last code at once
        assert state.fitted_label == f"red fit step {rec.session.steps}"
        assert torch.equal(bank.latent(state.latent_selection()), rec.session.latest.latent)
        message = rec.save(tmp_path / "out.pt")
        assert "instance 3 (red" in message
        assert rec.stats()["fit_steps"] == rec.session.steps
    finally:
        rec.close()
    assert load_checkpoint(tmp_path / "out.pt").instance_names == [*names(3), "red"]


def test_fitted_selections_blend_toward_an_instance_and_find_neighbours():
    table = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0], [5.0, 5.0]])
    bank = FittedLatentBank(table, ["a", "b", "c", "d"])
    bank.publish(torch.tensor([0.9, 0.2]))
    state = ViewerState(num_instances=4, latent_source=FittedLatent, fitted_serial=3,
                        fitted_label="car fit step 9", fit_target=2, fit_t=0.5)
    fitted = state.latent_selection()
    assert fitted == FittedLatent(3, "car fit step 9", 2, 0.5)
    assert torch.allclose(bank.latent(fitted), torch.tensor([0.45, 1.6]))
    assert bank.label(fitted) == "car fit step 9->c t=0.50"
    state.fit_t = 0.0
    assert bank.label(state.latent_selection()) == "car fit step 9"
    assert [i for i, _ in bank.nearest(torch.tensor([0.9, 0.2]), k=3)] == [1, 0, 2]
    assert bank.typical_spacing() == pytest.approx(1.0)
    frames = FrameRenderer(LFNRenderer(tiny_lfn()), bank, volumetric=object(), volumetric_latents=bank)
    assert not frames.has_reference(fitted) and frames.has_reference(InstanceLatent(0))


def test_png_list_is_of_the_typed_paths_folder(tmp_path, monkeypatch):
    for name in ("b.png", "a.PNG", "c.txt"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub.png").mkdir()
    assert png_names(tmp_path) == ["a.PNG", "b.png"]
    assert folder_of(str(tmp_path / "b.png")) == folder_of(str(tmp_path)) == tmp_path.resolve()
    monkeypatch.chdir(tmp_path)
    assert folder_of("") == folder_of("nowhere/x.png") == tmp_path
    assert png_names(tmp_path / "missing") == []

