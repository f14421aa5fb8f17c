"""The encoder prior: shapes, azimuth hypotheses, pose math, a tiny training run, the three
inference modes and the command line without --pose."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.encoder_evaluation import logistic_slope
from main import main as cli_main
from models.cameras import Orbit, intrinsics, orbit_from_cam2world, orbit_pose
from models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from models.encoder import (
    CarEncoder,
    EncoderConfig,
    EncoderOutput,
    angular_distance,
    encoder_path,
    find_encoder,
    load_encoder,
    network_fingerprint,
    save_encoder,
)
from models.fitting import fit_latent
from models.inference import (
    EncoderGuess,
    InferenceError,
    InferenceMode,
    hypothesis_posterior,
    infer,
    pick_hypothesis,
    resolve_steps,
)
from models.renderer import LFNRenderer
from tests.conftest import TINY, names, tiny_lfn
from tests.synthetic_cars import write_synthetic_dataset
from tools.evaluate_encoder import main as evaluate_encoder_main
from tools.train_encoder import (
    EncoderTrainConfig,
    TrainingViews,
    parse_args,
    photo_rays,
    train_encoder,
)

RES = 24
TINY_ENCODER = dict(input_res=32, channels=(8, 16, 16), hidden=32, azimuth_bins=24)


def tiny_encoder(seed: int = 0) -> CarEncoder:
    torch.manual_seed(seed)
    return CarEncoder(EncoderConfig(latent_dim=TINY["latent_dim"], **TINY_ENCODER)).eval()


def view_of(model, instance: int, orbit: Orbit, res: int = RES) -> torch.Tensor:
    """(res, res, 3) uint8 render of one instance, every ray the network's (a fit matches them all)."""
    renderer = LFNRenderer(model, bounded=False)
    renderer.set_latent(model.latents.weight[instance])
    return (renderer.render(orbit.cam2world(), res) * 255).round().to(torch.uint8)


def test_encoder_outputs_have_the_checkpoint_latent_size_and_a_pose():
    encoder = tiny_encoder()
    out = encoder(torch.rand(2, 3, 40, 40))  # resized to its input resolution
    assert out.latent.shape == (2, TINY["latent_dim"])
    assert out.azimuth_logits.shape == (2, TINY_ENCODER["azimuth_bins"])
    assert out.elevation.shape == (2,)
    azimuths, masses = out.azimuth_hypotheses()
    assert azimuths.shape == masses.shape == (2, 2)


def test_two_azimuth_modes_give_two_hypotheses_the_stronger_first():
    bins = 72  # 5° bins; mass around 30° (stronger) and around its front/back twin 150°
    centers = torch.arange(bins) * 5.0
    logits = torch.full((1, bins), -20.0)
    logits[0, centers == 30.0], logits[0, centers == 35.0] = 5.0, 4.0
    logits[0, centers == 150.0] = 4.5
    out = EncoderOutput(torch.zeros(1, 4), logits, torch.zeros(1))
    azimuths, masses = out.azimuth_hypotheses()
    assert 30.0 < azimuths[0, 0] < 35.0  # the circular mean of the peak's neighbourhood
    assert azimuths[0, 1] == pytest.approx(150.0, abs=1e-3)
    assert masses[0, 0] > masses[0, 1]


def test_pose_round_trip_from_cam2world_is_exact_and_renders_the_same_view():
    for azimuth, elevation, radius in [(0, 0, 3), (37.5, 22, 3), (-120, 55, 2.5), (179, -10, 4)]:
        orbit = orbit_from_cam2world(orbit_pose(azimuth, elevation, radius))
        assert angular_distance(torch.tensor(orbit.azimuth), torch.tensor(azimuth)) < 1e-4
        assert orbit.elevation == pytest.approx(elevation, abs=1e-4)
        assert orbit.radius == pytest.approx(radius, rel=1e-6)
    model = tiny_lfn()
    known = Orbit(-65.0, 28.0)
    recovered = orbit_from_cam2world(known.cam2world())
    assert torch.allclose(recovered.cam2world(), known.cam2world(), atol=1e-6)
    assert torch.equal(view_of(model, 1, recovered), view_of(model, 1, known))


def test_orbit_pose_is_differentiable_in_its_angles():
    angles = torch.tensor([30.0, 20.0], requires_grad=True)
    orbit_pose(angles[0], angles[1])[:3, 3].sum().backward()
    assert angles.grad is not None and angles.grad.abs().sum() > 0


def test_joint_refinement_moves_a_wrong_pose_toward_the_true_one():
    model = tiny_lfn()
    truth = Orbit(40.0, 25.0)
    photo = view_of(model, 2, truth)
    start = Orbit(47.0, 20.0)
    fit = fit_latent(model, photo[None], start, intrinsics(RES, RES), steps=40,
                     init=model.latents.weight[2].detach(), lr=1e-3, pose_lr=0.3)
    before = abs(start.azimuth - truth.azimuth) + abs(start.elevation - truth.elevation)
    after = abs(fit.orbit.azimuth - truth.azimuth) + abs(fit.orbit.elevation - truth.elevation)
    assert after < 0.5 * before


def test_the_front_back_pick_weighs_bin_mass_against_the_renders():
    # a marginally better render (1 % lower MSE) does not overturn a 4:1 prior...
    masses, mses = torch.tensor([0.8, 0.2]), torch.tensor([0.0101, 0.0100])
    assert mses.argmin() == 1 and hypothesis_posterior(masses, mses).argmax() == 0
    # ...and a clearly better render (half the MSE) overturns a slight one
    masses, mses = torch.tensor([0.55, 0.45]), torch.tensor([0.02, 0.01])
    assert masses.argmax() == 0 and hypothesis_posterior(masses, mses).argmax() == 1
    # with equal masses the renders alone decide; without renders the masses alone do
    assert hypothesis_posterior(torch.tensor([0.3, 0.3]), mses).argmax() == 1
    assert torch.allclose(hypothesis_posterior(torch.tensor([0.3, 0.1])).float(),
                          torch.tensor([0.75, 0.25]))


def test_pick_hypothesis_renders_each_candidate_and_weighs_it_by_its_mass():
    model = tiny_lfn()
    truth, twin = Orbit(30.0, 20.0), Orbit(150.0, 20.0)
    photo = view_of(model, 0, truth)
    guess = EncoderGuess(model.latents.weight[0].detach(), [twin, truth], torch.tensor([0.5, 0.5]), 0.1)
    assert pick_hypothesis(model, guess, photo)[0] == 1  # equal prior: the true view renders better
    # Two near candidates and another car's latent: renders that differ by little. The photometric
    # argmin and the mass-weighted pick then disagree when the mass favours the other one.
    near = [truth, Orbit(33.0, 20.0)]
    flat = EncoderGuess(model.latents.weight[1].detach(), near, torch.tensor([0.5, 0.5]), 0.1)
    better, posterior = pick_hypothesis(model, flat, photo)
    worse = 1 - better
    assert posterior[better] < 0.9  # the renders alone are weak evidence here
    prior = torch.tensor([0.1, 0.1])
    prior[worse] = 0.9
    weighted = EncoderGuess(flat.latent, near, prior, 0.1)
    assert pick_hypothesis(model, weighted, photo)[0] == worse


def test_the_evidence_slope_is_the_logistic_fit_of_which_render_wins():
    # r > 0: the true azimuth rendered better. One loss at r = -0.05 among wins bounds the slope,
    # and at the fitted slope the likelihood is stationary: mean(sigmoid(-slope * r) * r) = 0.
    r = torch.tensor([0.5, 0.8, 1.2, 0.02, -0.05], dtype=torch.float64)
    slope = logistic_slope(r)
    assert slope > 0
    assert float((torch.sigmoid(-slope * r) * r).mean()) == pytest.approx(0.0, abs=1e-3)
    assert logistic_slope(torch.tensor([0.1, 0.3], dtype=torch.float64)) is None  # unbounded


@pytest.fixture
def checkpoint_with_encoder(tmp_path) -> Path:
    path = tmp_path / "tiny.pt"
    model = tiny_lfn()
    save_checkpoint(model, names(3), {"steps": 0, "dataset": "none", "metrics": {}}, path)
    save_encoder(tiny_encoder(), network_fingerprint(model), {}, encoder_path(path))
    return path


def test_three_modes_run_end_to_end(checkpoint_with_encoder):
    ckpt = load_checkpoint(checkpoint_with_encoder)
    encoder = find_encoder(checkpoint_with_encoder, ckpt.model)
    truth = Orbit(60.0, 25.0)
    photo = view_of(ckpt.model, 1, truth)
    only = infer(ckpt.model, photo, InferenceMode.ENCODER, encoder)
    refined = infer(ckpt.model, photo, InferenceMode.REFINE, encoder, steps=25)
    decoded = infer(ckpt.model, photo, InferenceMode.AUTODECODE, orbit=truth, steps=10)
    for result in (only, refined, decoded):
        assert result.latent.shape == (TINY["latent_dim"],)
        assert np.isfinite(result.psnr) and result.seconds > 0
    assert only.steps == 0 and refined.steps == 25 and decoded.steps == 10
    assert only.pose_estimated and refined.pose_estimated and not decoded.pose_estimated
    assert decoded.orbit == truth  # a given pose stays as given
    assert refined.psnr > only.psnr  # the steps start from the encoder's guess and improve it
    with pytest.raises(InferenceError, match="needs an encoder"):
        infer(ckpt.model, photo, InferenceMode.REFINE, None, truth)
    with pytest.raises(InferenceError, match="no pose"):
        infer(ckpt.model, photo, InferenceMode.AUTODECODE, None)


def test_refine_takes_more_steps_by_default_on_a_gpu_and_given_steps_everywhere():
    refine, autodecode = InferenceMode.REFINE, InferenceMode.AUTODECODE
    assert resolve_steps(refine, None, "cpu") == resolve_steps(refine, None) == 20
    assert resolve_steps(refine, None, torch.device("cuda", 0)) == 100
    assert resolve_steps(refine, 7, "cuda") == 7
    assert resolve_steps(autodecode, None, "cuda") == resolve_steps(autodecode, None, "cpu") == 300
    assert resolve_steps(InferenceMode.ENCODER, 50, "cuda") == 0


def test_an_encoder_for_another_network_is_refused(checkpoint_with_encoder):
    other = tiny_lfn(seed=1)
    with pytest.raises(CheckpointError, match="another network"):
        load_encoder(encoder_path(checkpoint_with_encoder), other)


def test_the_photometric_term_draws_from_other_views_of_the_car():
    """--photo-views V: the term's colors come from the input view and V - 1 other views of the
    same car. Car 0's view 0 is black, its other views white; car 1 is all gray."""
    rgb = torch.full((2, 6, 8, 8, 3), 255, dtype=torch.uint8)
    rgb[0, 0] = 0
    rgb[1] = 128
    poses = torch.stack([orbit_pose(30.0 * v, 20.0, 2.0) for v in range(6)])
    views = TrainingViews(rgb=rgb, cam2world=poses.expand(2, 6, 4, 4), intrinsics=intrinsics(8, 8),
                          latents=torch.zeros(2, 4), azimuth=torch.zeros(2, 6),
                          elevation=torch.zeros(2, 6))
    cars, picks = torch.tensor([0, 0, 1]), torch.zeros(3, dtype=torch.long)

    def colors(photo_views: int) -> torch.Tensor:
        cfg = EncoderTrainConfig(data="d", ckpt="c", photo_rays=64, photo_views=photo_views)
        return photo_rays(views, cars, picks, cfg, torch.Generator().manual_seed(0),
                          torch.device("cpu"))[2]

    alone, shown = colors(1), colors(4)
    assert alone.shape == (3, 64, 3) and shown.shape == (3, 256, 3)
    assert alone[:2].max() == 0  # the input view alone: car 0's black photo
    white = (shown[:2] == 1).all(-1).float().mean()
    assert 0.5 < white < 0.95  # three views in four white, the input view's rays black
    assert torch.allclose(shown[2], torch.tensor(128 / 255))  # never another car's views


def test_a_tiny_training_run_lowers_its_losses(tmp_path):
    data = write_synthetic_dataset(tmp_path / "cars", cars=4, views=8, res=16)
    ckpt_path = tmp_path / "spheres.pt"
    model = tiny_lfn(num_instances=3)
    save_checkpoint(model, [f"sphere{c:03d}" for c in range(3)],
                    {"steps": 0, "dataset": "spheres", "metrics": {}}, ckpt_path)
    out = train_encoder(EncoderTrainConfig(
        data=str(data), ckpt=str(ckpt_path), steps=60, warmup_steps=10, batch=16, lr=3e-3, input_res=16,
        channels="8,16,16", hidden=32, azimuth_bins=12, photo_rays=32, photo_views=2, log_every=10,
        device="cpu"))
    assert out == encoder_path(ckpt_path)
    history = torch.load(out, weights_only=True)["meta"]["history"]
    first, last = history[0], history[-1]
    assert first["latent"] <= 1.0  # starts at the table's mean code, not ~30× its scale
    assert last["latent"] < first["latent"]
    assert last["azimuth"] < first["azimuth"] and last["elevation"] < first["elevation"]
    assert find_encoder(ckpt_path, load_checkpoint(ckpt_path).model) is not None
    summary = evaluate_encoder_main(["--ckpt", str(ckpt_path), "--data", str(data),
                                     "--cars-per-source", "1", "--novel-views", "2",
                                     "--refine-steps", "3", "--autodecode-steps", "5", "--res",
                                     "16", "--front-back-views", "2", "--device", "cpu", "--json",
                                     str(tmp_path / "e.json")])
    assert summary == 0
    result = json.loads((tmp_path / "e.json").read_text())
    assert result["front_back"]["views"] == 2  # 2 views of the one held-out car
    scores = result["per_source"]["procedural"]
    assert scores["cars"] == 1
    assert 0 <= scores["pose_error_deg_encoder_median"] <= 180
    assert scores["autodecode_5_input_psnr_median"] > 0
    assert scores["refine_estimated_pose_novel_psnr_median"] > 0  # the pose found, not given
    assert result["modulation_steps"] == 0
    # past the latent: refine's novel views render the offset; the encoder's column stays one pass
    assert evaluate_encoder_main(["--ckpt", str(ckpt_path), "--data", str(data),
                                  "--cars-per-source", "1", "--novel-views", "2", "--refine-steps",
                                  "3", "--autodecode-steps", "5", "--res", "16",
                                  "--front-back-views", "2", "--device", "cpu",
                                  "--modulation-steps", "4", "--json", str(tmp_path / "m.json")]) == 0
    past = json.loads((tmp_path / "m.json").read_text())
    assert past["modulation_steps"] == 4
    row, past_row = scores["rows"][0], past["per_source"]["procedural"]["rows"][0]
    assert past_row["encoder"]["novel_psnr"] == row["encoder"]["novel_psnr"]
    assert past_row["refine_3"]["novel_psnr"] != row["refine_3"]["novel_psnr"]


def test_init_starts_from_an_encoder_of_the_network_before_its_fine_tune(tmp_path):
    data = write_synthetic_dataset(tmp_path / "cars", cars=4, views=8, res=16)
    model = tiny_lfn(num_instances=3)
    spheres = [f"sphere{c:03d}" for c in range(3)]
    before, after = tmp_path / "before.pt", tmp_path / "after.pt"
    save_checkpoint(model, spheres, {"steps": 0, "dataset": "spheres", "metrics": {}}, before)
    small = dict(data=str(data), warmup_steps=10, batch=16, lr=3e-3, input_res=16,
                 channels="8,16,16", hidden=32, azimuth_bins=12, log_every=10, device="cpu")
    first = train_encoder(EncoderTrainConfig(ckpt=str(before), steps=150, **small))
    with torch.no_grad():  # a fine-tune: the network and its codes move a little
        model.latents.weight.mul_(1.1)
        next(model.parameters()).add_(0.01)
    save_checkpoint(model, spheres, {"steps": 1, "dataset": "spheres", "metrics": {}}, after)

    def first_latent_loss(**extra) -> float:
        out = train_encoder(EncoderTrainConfig(ckpt=str(after), steps=1, out=str(
            tmp_path / f"e{len(extra)}.pt"), **{**small, **extra}))
        return torch.load(out, weights_only=True)["meta"]["history"][0]["latent"]

    trained = torch.load(first, weights_only=True)["meta"]["history"][-1]["latent"]
    assert first_latent_loss(init=str(first)) < 0.5 * first_latent_loss()  # not the mean's start
    assert first_latent_loss(init=str(first)) < 2 * trained + 0.05
    with pytest.raises(ValueError, match="--init .* architecture"):
        train_encoder(EncoderTrainConfig(ckpt=str(after), steps=1, init=str(first),
                                         **{**small, "hidden": 16}))


def photo_file(path: Path) -> Path:
    """A red box on white: a photo the loader accepts (tiny LFN renders have no white border)."""
    image = np.full((32, 32, 3), 255, np.uint8)
    image[10:-10, 6:-6] = (200, 30, 30)
    Image.fromarray(image).save(path)
    return path


def test_cli_fits_without_pose_when_the_checkpoint_has_an_encoder(checkpoint_with_encoder,
                                                                  tmp_path, capsys):
    photo = photo_file(tmp_path / "blue.png")
    out = tmp_path / "car.pt"
    assert cli_main(["--ckpt", str(checkpoint_with_encoder), "--fit-image", str(photo),
                     "--steps", "3", "--out", str(out)]) == 0
    assert "refine inference" in capsys.readouterr().out
    fitted = load_checkpoint(out)
    assert fitted.instance_names[-1] == "blue" and fitted.meta["fit_mode"] == "refine"
    assert cli_main(["--ckpt", str(checkpoint_with_encoder), "--fit-image", str(photo),
                     "--inference", "encoder", "--pose", "30,20", "--out", str(out)]) == 0
    assert load_checkpoint(out).meta["fit_pose"] == [30.0, 20.0, 3.0]


def test_cli_takes_an_encoder_named_by_encoder(checkpoint_with_encoder, tmp_path, capsys):
    named = tmp_path / "elsewhere" / "my_encoder.pt"
    named.parent.mkdir()
    encoder_path(checkpoint_with_encoder).rename(named)  # no longer beside the checkpoint
    photo = photo_file(tmp_path / "blue.png")
    out = tmp_path / "car.pt"
    fit = ["--ckpt", str(checkpoint_with_encoder), "--fit-image", str(photo), "--steps", "2",
           "--out", str(out)]
    assert cli_main(fit) == 1 and "--pose" in one_error_line(capsys)  # none found beside it
    assert cli_main([*fit, "--encoder", str(named)]) == 0
    assert load_checkpoint(out).meta["fit_mode"] == "refine"
    capsys.readouterr()
    assert cli_main([*fit, "--encoder", str(tmp_path / "missing.pt")]) == 1
    assert "--encoder" in one_error_line(capsys)
    with pytest.raises(SystemExit) as exited:
        cli_main(["--ckpt", str(checkpoint_with_encoder), "--headless", "--out",
                  str(tmp_path / "x.png"), "--encoder", str(named)])
    assert exited.value.code == 2 and "--encoder" in one_error_line(capsys)


def one_error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def test_cli_without_pose_or_encoder_says_so_in_one_line(tiny_ckpt, tmp_path, capsys):
    photo = photo_file(tmp_path / "car.png")
    assert cli_main(["--ckpt", str(tiny_ckpt), "--fit-image", str(photo),
                     "--out", str(tmp_path / "o.pt")]) == 1
    assert "--pose" in one_error_line(capsys)
    assert cli_main(["--ckpt", str(tiny_ckpt), "--fit-image", str(photo), "--inference", "refine",
                     "--pose", "30,20", "--out", str(tmp_path / "o.pt")]) == 1
    assert "needs an encoder" in one_error_line(capsys)
    with pytest.raises(SystemExit) as exited:
        cli_main(["--ckpt", str(tiny_ckpt), "--fit-image", str(photo)])
    assert exited.value.code == 2 and "needs --out" in one_error_line(capsys)


@pytest.mark.parametrize("make, needle", [
    (lambda p: p.write_bytes(b"not an image at all"), "not a readable image"),
    (lambda p: Image.new("RGB", (32, 32), (60, 60, 60)).save(p), "white background"),
])
def test_bad_photos_fail_in_one_line_through_the_encoder_path(checkpoint_with_encoder, tmp_path,
                                                              capsys, make, needle):
    path = tmp_path / "bad.png"
    make(path)
    assert cli_main(["--ckpt", str(checkpoint_with_encoder), "--fit-image", str(path),
                     "--out", str(tmp_path / "o.pt")]) == 1
    assert needle in one_error_line(capsys)


def test_an_encoder_time_budget_alone_is_not_cut_short_by_the_default_step_count():
    timed, _ = parse_args(["--data", "d", "--ckpt", "c", "--minutes", "8"])
    assert timed.step_budget is None
    assert parse_args(["--data", "d", "--ckpt", "c"])[0].step_budget == 20_000
    both, _ = parse_args(["--data", "d", "--ckpt", "c", "--minutes", "8", "--steps", "300"])
    assert both.step_budget == 300
