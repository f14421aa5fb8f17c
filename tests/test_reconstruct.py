"""Reconstruction from one photo in the viewer, without a window: the inference session (start,
stop, continue, save), the photo and its pose file, dropped files, publishing codes to the view
(the encoder's at once, then the refinement's), the mode toggle, latent tools."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.display_mode import DisplayMode
from engine.frame import FrameRenderer, FrameRequest
from engine.latents import FittedLatent, InstanceLatent
from engine.metrics import psnr
from models.cameras import Orbit
from models.checkpoint import load_checkpoint
from models.encoder import angular_distance, load_encoder
from models.inference import InferenceMode, view_psnr
from models.modulation_fit import MODULATION_STEPS
from models.renderer import LFNRenderer
from tests.conftest import names, tiny_lfn
from tests.test_fit_image import photo
from viewer import reconstruct
from viewer.fitted_latents import FittedLatentBank
from viewer.reconstruct import (
    FitSession,
    Phase,
    ReconstructError,
    default_save_path,
    load_input,
    read_pose,
    save_fitted,
)
from viewer.reconstruct_panel import folder_of, png_names
from viewer.reconstruction import NO_POSE, PUBLISH_INTERVAL_S, Reconstruction
from viewer.state import ViewerState

ROOT = Path(__file__).resolve().parents[1]
CARS = ROOT / "checkpoints" / "cars.pt"
SHIPPED_ENCODER = ROOT / "checkpoints" / "cars.encoder.pt"

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
    """What the model shows of instance 2 from `pose` on every ray: a photo whose best latent is known."""
    renderer = LFNRenderer(model, bounded=False)
    renderer.set_latent(model.latents.weight[2])
    return (renderer.render(pose.cam2world(), res) * 255).round().to(torch.uint8).numpy()


def test_session_runs_stops_continues_and_saves_a_loadable_instance(tiny_ckpt, tmp_path):
    ckpt = load_checkpoint(tiny_ckpt)
    pose = Orbit(40.0, 25.0)
    photo = known_view(ckpt.model, pose)
    session = FitSession(ckpt.model, photo, InferenceMode.AUTODECODE, pose, options=OPTIONS)
    try:
        wait_for(lambda: session.start is not None)
        assert session.steps == 0 and not session.running  # created paused
        assert session.phase is Phase.DONE and session.pose == pose  # its run of 0 steps is done
        session.resume(steps=40)
        wait_for(lambda: not session.running)  # pauses by itself after its run of steps
        assert session.steps == 40 and session.phase is Phase.DONE
        time.sleep(0.05)
        assert session.steps == 40  # stopped means stopped

        session.resume(steps=10_000)
        wait_for(lambda: session.steps >= 60)
        session.pause()
        assert not session.running and session.phase is Phase.PAUSED
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
        assert session.pose == pose  # a given pose is kept
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
    renderer = LFNRenderer(saved.model, bounded=False)  # as known_view rendered the photo
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
    rec = Reconstruction(ckpt, tiny_ckpt, bank, options=OPTIONS)
    state = ViewerState(num_instances=3)
    red = photo(tmp_path / "red.png")
    with pytest.raises(ReconstructError):
        rec.start(tmp_path / "missing.png", Orbit(), state)
    assert rec.session is None and state.latent_source is InstanceLatent
    try:
        rec.start(red, Orbit(), state)
        assert rec.photo.shape == (128, 128, 3)  # fit resolution
        wait_for(lambda: rec.session.start is not None)
        rec.update(state, now=99.0)  # the start: the mean latent, seen from the photo's camera
        assert state.latent_source is FittedLatent and state.camera_requested == Orbit()
        assert (state.fitted_serial, state.fitted_label) == (1, "red fit step 0")
        assert torch.equal(bank.latent(state.latent_selection()), ckpt.latents.detach().mean(0))
        wait_for(lambda: rec.session.steps >= 2)
        rec.update(state, now=100.0)
        assert state.fitted_serial == 2 and state.fitted_label.startswith("red fit step ")
        assert len(rec.nearest) == 3 and rec.nearest[0][1] <= rec.nearest[-1][1]
        assert state.fit_target == bank.nearest(ckpt.latents.mean(0), 1)[0][0]  # blends toward it
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
    saved = load_checkpoint(tmp_path / "out.pt")
    assert saved.instance_names == [*names(3), "red"]
    assert saved.meta["fit_mode"] == "autodecode" and saved.meta["fit_pose_estimated"] is False


def hold_modulation_steps(monkeypatch, at_step: int) -> threading.Event:
    """The session's modulation steps wait after step `at_step` until the returned event is set."""
    gate, refine = threading.Event(), reconstruct.refine_modulations

    def held(*args, on_step, **options):
        def step(taken):
            on_step(taken)
            if taken.step == at_step:
                gate.wait(30)
        return refine(*args, on_step=step, **options)

    monkeypatch.setattr(reconstruct, "refine_modulations", held)
    return gate


def test_an_auto_decoding_fit_goes_past_its_latent_shows_and_saves_the_offset(tiny_ckpt, tmp_path,
                                                                             monkeypatch):
    ckpt = load_checkpoint(tiny_ckpt)
    bank = FittedLatentBank.of_checkpoint(ckpt)
    rec = Reconstruction(ckpt, tiny_ckpt, bank, options=OPTIONS, steps=20)
    state = ViewerState(num_instances=3)
    gate = hold_modulation_steps(monkeypatch, at_step=5)
    try:
        rec.start(photo(tmp_path / "red.png"), Orbit(), state)
        session = rec.session
        assert not session.can_go_past_latent  # no latent steps yet
        wait_for(lambda: session.steps == 20 and session.phase is Phase.DONE)
        rec.update(state, now=0.0)  # its latent steps are done: autodecode goes past the latent
        assert session.modulation_target == MODULATION_STEPS and not session.can_go_past_latent
        wait_for(lambda: session.modulation_steps == 5)
        assert session.phase is Phase.PAST_LATENT
        rec.update(state, now=1.0)  # the offset so far is shown while the steps run
        assert state.fitted_label == "red past the latent, step 5"
        selection = state.latent_selection()
        assert torch.equal(bank.latent(selection), session.latest.latent)
        assert torch.equal(bank.offset(selection), session.newest_offset()[1])
        assert bank.offset(selection).abs().max() > 0
        gate.set()
        wait_for(lambda: session.modulation_offset is not None)
        assert session.phase is Phase.DONE and session.modulation_steps == MODULATION_STEPS
        latent = session.latest.latent
        alone = view_psnr(ckpt.model, latent, Orbit(), torch.tensor(rec.photo))
        assert session.modulation_psnr > alone  # the photo, better past the latent
        rec.update(state, now=1.0)
        assert state.fitted_label == "red past the latent"
        rec.update(state, now=2.0)  # and stays: its latent is not shown again without the offset
        assert state.fitted_label == "red past the latent"
        selection = state.latent_selection()
        assert torch.equal(bank.latent(selection), latent)
        assert torch.equal(bank.offset(selection), session.modulation_offset)
        session.resume(10)  # the offset belongs to this latent: no more latent steps
        assert not session.running and session.steps == 20
        message = rec.save(tmp_path / "out.pt")
        assert "instance 3 (red, step 20 and past the latent)" in message
    finally:
        rec.close()
    saved = load_checkpoint(tmp_path / "out.pt")
    assert saved.meta["fit_modulation_steps"] == MODULATION_STEPS
    assert list(saved.modulation_offsets) == [3]
    assert torch.allclose(saved.modulation_offsets[3], session.modulation_offset)


def test_stop_during_the_modulation_steps_keeps_the_offset_so_far(tiny_ckpt, tmp_path, monkeypatch):
    ckpt = load_checkpoint(tiny_ckpt)
    rec = Reconstruction(ckpt, tiny_ckpt, FittedLatentBank.of_checkpoint(ckpt), options=OPTIONS,
                         steps=5)
    state = ViewerState(num_instances=3)
    gate = hold_modulation_steps(monkeypatch, at_step=3)
    try:
        rec.start(photo(tmp_path / "red.png"), Orbit(), state)
        session = rec.session
        wait_for(lambda: session.steps == 5 and session.phase is Phase.DONE)
        rec.update(state, now=0.0)  # past the latent, by itself
        wait_for(lambda: session.modulation_steps == 3)
        assert session.running  # the panel offers Stop
        session.pause()
        gate.set()
        wait_for(lambda: session.modulation_offset is not None)
        assert session.phase is Phase.DONE and session.modulation_steps < MODULATION_STEPS
        assert torch.equal(session.modulation_offset, session.newest_offset()[1])
        rec.update(state, now=1.0)
        assert state.fitted_label == "red past the latent"
    finally:
        rec.close()


@pytest.fixture(scope="module")
def cars_with_encoder():
    """The shipped car network and its encoder."""
    ckpt = load_checkpoint(CARS)
    return ckpt, load_encoder(SHIPPED_ENCODER, ckpt.model)


def car_photo(ckpt, path: Path) -> Path:
    """A car on white at the network's resolution, as a user's photo would be."""
    renderer = LFNRenderer(ckpt.model)
    renderer.set_latent(ckpt.latents[5])
    rgb = (renderer.render(Orbit(-150.0, 10.0).cam2world(), 128) * 255).round().to(torch.uint8)
    Image.fromarray(rgb.numpy()).save(path)
    return path


def test_a_dropped_photo_shows_the_encoder_code_at_once_then_refines_to_the_end(
        cars_with_encoder, tmp_path):
    ckpt, encoder = cars_with_encoder
    bank = FittedLatentBank(ckpt.latents, ckpt.instance_names)
    rec = Reconstruction(ckpt, CARS, bank, encoder, "shipped", options={"rays_per_step": 256},
                         steps=3)
    state = ViewerState(num_instances=len(ckpt.instance_names))
    car = car_photo(ckpt, tmp_path / "car.png")
    assert rec.mode is InferenceMode.REFINE and not rec.pose_known  # the encoder's, by default
    try:
        rec.open_dropped([str(car)], state)
        assert rec.message is None and rec.session.phase in (Phase.STARTING, Phase.REFINING)
        wait_for(lambda: rec.session.start is not None)
        start = rec.session.start
        rec.update(state, now=0.0)  # at once: the encoder's latent, from its estimated pose
        shown = bank.latent(state.latent_selection())
        expected = encoder.encode_photo(torch.tensor(rec.photo)).latent[0]
        assert state.fitted_label == "car fit step 0" and torch.allclose(shown, expected)
        assert state.camera_requested == start.orbit
        estimate = start.estimate
        assert estimate is not None and estimate.orbit == start.orbit
        assert 0 < estimate.mass <= 1 and 0.5 <= estimate.side_probability <= 1
        assert estimate.uniform_mass == pytest.approx(3 / 72)  # 3 of the encoder's 72 bins
        truth = torch.tensor(-150.0)  # car_photo's camera: the shipped encoder finds it
        assert angular_distance(torch.tensor(start.orbit.azimuth), truth) < 10
        assert abs(start.orbit.elevation - 10.0) < 10

        wait_for(lambda: rec.session.steps >= 1)  # refinement in the background
        rec.update(state, now=1.0)
        assert state.fitted_label.startswith("car fit step ") and rec.session.target_steps == 3
        wait_for(lambda: rec.session.phase is Phase.DONE)
        rec.update(state, now=2.0)
        assert state.fitted_label == "car fit step 3"
        assert torch.equal(bank.latent(state.latent_selection()), rec.session.latest.latent)
        assert rec.session.pose != start.orbit  # the estimated pose is refined with the latent
        assert len(rec.session.history()[0]) == 3

        rec.mode = InferenceMode.ENCODER  # the toggle: the same photo, the encoder alone
        rec.reconstruct(state)
        wait_for(lambda: rec.session.phase is Phase.DONE and rec.session.start_psnr is not None)
        rec.update(state, now=3.0)
        assert rec.session.steps == 0 and rec.session.target_steps == 0
        assert state.fitted_label == "car fit step 0"
        assert torch.allclose(bank.latent(state.latent_selection()), expected)
    finally:
        rec.close()


def test_in_a_window_the_first_frame_is_the_encoder_code_and_the_fit_waits_for_it(
        cars_with_encoder, tmp_path, monkeypatch):
    ckpt, encoder = cars_with_encoder
    bank = FittedLatentBank(ckpt.latents, ckpt.instance_names)
    woken = threading.Event()
    rec = Reconstruction(ckpt, CARS, bank, encoder, "shipped", options={"rays_per_step": 256},
                         steps=3, wake=woken.set)
    state = ViewerState(num_instances=len(ckpt.instance_names))
    car = car_photo(ckpt, tmp_path / "car.png")
    monkeypatch.setattr(reconstruct, "START_HOLD_S", 60.0)  # held until on screen, however slow
    try:
        rec.open_dropped([str(car)], state)
        wait_for(woken.is_set)  # the window's loop is woken once the encoder's start is known
        rec.update(state, now=0.0)
        first = FrameRequest(state.camera_requested, 64, DisplayMode.RGB, state.latent_selection())
        expected = encoder.encode_photo(torch.tensor(rec.photo)).latent[0]
        assert torch.allclose(bank.latent(first.latent), expected)
        time.sleep(0.3)
        session = rec.session  # held: neither its PSNR render nor a step takes the cores
        assert session.start_psnr is None and session.steps == 0 and session.running
        rec.on_screen(first, render_ms=30.0, now=time.perf_counter())
        wait_for(lambda: session.phase is Phase.DONE)
        rec.update(state, now=1.0)
        assert session.start_psnr is not None and state.fitted_label == "car fit step 3"
        rec.on_screen(FrameRequest(first.orbit, 64, DisplayMode.RGB, state.latent_selection()),
                      render_ms=30.0, now=time.perf_counter())
        (timing,) = rec.stats()["photos"]
        assert [frame["step"] for frame in timing["frames"]] == [0, 3]
        assert 0 < timing["start_ms"] <= timing["published_ms"] < timing["frames"][0]["on_screen_ms"]

        monkeypatch.setattr(reconstruct, "START_HOLD_S", 0.05)  # a minimized window shows nothing
        rec.reconstruct(state)
        wait_for(lambda: rec.session.phase is Phase.DONE)  # the fit runs anyway
        assert rec.session.steps == 3
    finally:
        rec.close()


def test_without_an_encoder_a_dropped_photo_asks_for_its_pose(tiny_ckpt, tmp_path):
    ckpt = load_checkpoint(tiny_ckpt)
    rec = Reconstruction(ckpt, tiny_ckpt, FittedLatentBank(ckpt.latents, ckpt.instance_names),
                         options=OPTIONS, steps=2)
    state = ViewerState(num_instances=3)
    red = photo(tmp_path / "red.png")
    assert rec.mode is InferenceMode.AUTODECODE
    rec.open_dropped([str(red)], state)
    assert rec.session is None and rec.is_error and rec.message == NO_POSE
    rec.pose_known, rec.pose = True, Orbit(30.0, 20.0)  # the user sets it and presses Reconstruct
    try:
        rec.reconstruct(state)
        assert rec.message is None
        wait_for(lambda: rec.session.phase is Phase.DONE)
        assert rec.session.steps == 2 and rec.session.pose == Orbit(30.0, 20.0)
        (tmp_path / "blue.json").write_text(json.dumps({"azimuth": 10, "elevation": 5}))
        rec.open_dropped([str(photo(tmp_path / "blue.png"))], state)  # its pose file is enough
        assert rec.message is None and rec.pose == Orbit(10.0, 5.0)
        wait_for(lambda: rec.session.phase is Phase.DONE)
        assert rec.name == "blue" and rec.session.start.estimate is None
        rec.mode = InferenceMode.REFINE  # the panel greys it out; the controller refuses it too
        rec.reconstruct(state)
        assert rec.is_error and "needs an encoder" in rec.message
    finally:
        rec.close()


def test_a_bad_dropped_file_is_a_message_and_leaves_the_shown_car(tiny_ckpt, tmp_path):
    ckpt = load_checkpoint(tiny_ckpt)
    rec = Reconstruction(ckpt, tiny_ckpt, FittedLatentBank(ckpt.latents, ckpt.instance_names),
                         options=OPTIONS, steps=1)
    state = ViewerState(num_instances=3)
    (tmp_path / "red.json").write_text(json.dumps({"azimuth": 30, "elevation": 20}))
    (tmp_path / "junk.png").write_bytes(b"not an image")
    Image.new("RGB", (40, 30), "white").save(tmp_path / "wide.png")
    Image.new("RGB", (32, 32), (60, 60, 60)).save(tmp_path / "grey.png")
    (tmp_path / "car.json").write_text("{")
    Image.new("RGB", (32, 32), "white").save(tmp_path / "car.png")
    try:
        rec.open_dropped([str(photo(tmp_path / "red.png"))], state)
        wait_for(lambda: rec.session.phase is Phase.DONE)
        session = rec.session
        for name, needle in (("junk.png", "not a readable image"), ("wide.png", "must be square"),
                             ("grey.png", "white background"), ("car.png", "car.json"),
                             ("missing.png", "no such file"), (".", "is a folder"),
                             ("x" * 300 + ".png", "cannot be read")):
            rec.open_dropped([str(tmp_path / name)], state)
            assert rec.is_error and needle in rec.message and "\n" not in rec.message, name
            assert rec.session is session  # the car on screen stays
        rec.open_dropped([str(tmp_path / "red.png"), str(tmp_path / "junk.png")], state)
        assert not rec.is_error and "2 files dropped" in rec.message and rec.name == "red"
    finally:
        rec.close()


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
    assert frames.volumetric_twin(fitted) is None
    assert frames.volumetric_twin(InstanceLatent(0)) == InstanceLatent(0)


def test_png_list_is_of_the_typed_paths_folder(tmp_path, monkeypatch):
    for name in ("b.png", "a.PNG", "c.txt"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub.png").mkdir()
    assert png_names(tmp_path) == ["a.PNG", "b.png"]
    assert folder_of(str(tmp_path / "b.png")) == folder_of(str(tmp_path)) == tmp_path.resolve()
    monkeypatch.chdir(tmp_path)
    assert folder_of("") == folder_of("nowhere/x.png") == tmp_path
    assert png_names(tmp_path / "missing") == []

