"""The training-time geometry term (engine/reprojection.py) and the forward that feeds it."""

import json
from pathlib import Path

import pytest
import torch

from engine.cardata import CarViews
from engine.reprojection import GeometryConfig, ReprojectionLoss
from engine.train_step import BatchForward, batch_loss, draw_batch, make_training_step
from models.cameras import intrinsics, orbit_pose, pixel_rays
from models.checkpoint import load_checkpoint, save_checkpoint
from models.lfn import LFNConfig, LightFieldNetwork
from models.plucker import plucker
from tests.synthetic_cars import write_synthetic_dataset
from tests.test_train_step import trained_a_little
from tools.train import main, parse_args, train

RADIUS = 0.8
RES = 64
VIEWS = 18  # every 20°, as far apart as the data set's nearest training views


def painted_sphere(rays: torch.Tensor, radius: float = RADIUS) -> torch.Tensor:
    """A Lambertian light field as a function of Plücker coordinates (..., 6): a sphere at the
    origin with a smooth color texture of the surface point; white where the ray misses."""
    d, m = rays[..., :3], rays[..., 3:]
    closest = torch.linalg.cross(d, m, dim=-1)  # the ray's point nearest the origin
    inside = radius**2 - (closest**2).sum(-1)
    x = closest - torch.sqrt(inside.clamp(min=1e-9))[..., None] * d
    texture = torch.stack([torch.sin(9 * x[..., 0] + 4 * x[..., 2]),
                           torch.cos(8 * x[..., 1] - 5 * x[..., 2]),
                           torch.sin(7 * x[..., 2] + 3 * x[..., 0])], -1)
    return torch.where((inside > 0)[..., None], 0.5 + 0.4 * texture, 1.0)


@pytest.fixture(scope="module")
def sphere_photos() -> CarViews:
    """One "car": the painted sphere photographed from VIEWS cameras around it."""
    poses = torch.stack([orbit_pose(20.0 * i, 15.0 + 10 * (i % 2)) for i in range(VIEWS)])
    k = intrinsics(RES, RES)
    images = []
    for pose in poses:
        origins, dirs = pixel_rays(pose.double(), k, RES, RES)
        images.append((painted_sphere(plucker(origins, dirs)) * 255).round().byte())
    return CarViews(["sphere"], torch.stack(images)[None], poses[None], k,
                    torch.ones(VIEWS, dtype=torch.bool))


def sphere_rays(count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`count` rays of view 0 well inside the sphere's outline: origins, dirs (1, count, 3) and
    their pixel colors (the photo's)."""
    pose = orbit_pose(0.0, 15.0).double()
    origins, dirs = pixel_rays(pose, intrinsics(RES, RES), RES, RES)
    closest = torch.linalg.cross(dirs, torch.linalg.cross(origins, dirs, dim=-1), dim=-1)
    interior = ((closest**2).sum(-1) < (0.75 * RADIUS) ** 2).flatten().nonzero()[:, 0]
    pick = interior[torch.randperm(len(interior), generator=torch.Generator().manual_seed(0))[:count]]
    origins, dirs = origins.reshape(-1, 3)[pick], dirs.reshape(-1, 3)[pick]
    return origins[None], dirs[None], painted_sphere(plucker(origins, dirs))[None]


def term(photos: CarViews, light_field, config: GeometryConfig | None = None) -> torch.Tensor:
    """The geometry term for 200 sphere rays whose derivatives are `light_field`'s (exact, jvp)."""
    origins, dirs, _ = sphere_rays(200)
    term = ReprojectionLoss(photos, torch.arange(VIEWS), config or GeometryConfig(1.0, 200, 3))
    objects = torch.zeros(1, dtype=torch.long)
    rays = term.prepare(objects, origins.float(), dirs.float())
    plucker_rays = plucker(origins, dirs)
    derivatives = torch.stack([torch.func.jvp(light_field, (plucker_rays,), (t.double(),))[1]
                               for t in rays.tangents])
    return term(objects, origins.float(), dirs.float(), derivatives, rays)


def test_the_term_is_near_zero_for_a_consistent_light_field_and_not_for_a_wrong_depth(
        sphere_photos):
    consistent = term(sphere_photos, painted_sphere)
    # the same paint on a sphere 5 % larger: its derivatives put the surface ≈ 2 % nearer
    # (≈ 1 px of disparity in the neighbouring views) than the photos show it
    inconsistent = term(sphere_photos, lambda rays: painted_sphere(rays, 1.05 * RADIUS))
    # a relative depth error: the search finds the photos' depth to 0.3 %
    assert consistent < 0.003 and inconsistent > 0.015


def test_a_flat_light_field_has_no_depth_to_check(sphere_photos):
    assert term(sphere_photos, lambda rays: torch.full_like(rays[..., :3], 0.5)) == 0


def test_the_folded_forward_with_tangents_gives_the_colors_and_their_exact_derivatives():
    model = trained_a_little()
    latents = model.latents.weight[:2]
    rays = torch.randn(2, 40, 6)
    tangents = torch.randn(4, 2, 10, 6)
    colors, derivatives = model.colors_with_derivatives(rays, tangents, latents)
    torch.testing.assert_close(colors, model.plucker_colors(rays, latents), rtol=1e-5, atol=1e-6)
    for t in range(4):
        _, expected = torch.func.jvp(lambda r: model.plucker_colors(r, latents),
                                     (rays[:, :10],), (tangents[t],))
        torch.testing.assert_close(derivatives[t], expected, rtol=1e-4, atol=1e-6)


@pytest.fixture(scope="module")
def spheres(tmp_path_factory) -> Path:
    return write_synthetic_dataset(tmp_path_factory.mktemp("cars"), cars=4, views=8, res=16)


def test_the_term_sends_gradients_to_the_network_and_the_latent_codes(sphere_photos):
    model = trained_a_little()
    origins, dirs, _ = sphere_rays(100)
    origins, dirs = origins.float().expand(2, -1, -1), dirs.float().expand(2, -1, -1)
    objects = torch.zeros(2, dtype=torch.long)
    # a search wide enough that the untrained network's depths find the photos' minimum
    term = ReprojectionLoss(sphere_photos, torch.arange(VIEWS),
                            GeometryConfig(1.0, 100, 3, min_gradient=0.0, search=0.6,
                                           search_steps=121))
    rays = term.prepare(objects, origins, dirs)
    _, _, derivatives = BatchForward(model, folded=True)(torch.tensor([0, 1]), origins, dirs,
                                                          rays.tangents)
    value = term(objects, origins, dirs, derivatives, rays)
    value.backward()
    assert value > 0
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().max() > 0, name


def test_the_step_without_the_term_is_the_plain_step(spheres):
    """geometry=None computes exactly the loss of the plain forward, bit for bit."""
    from engine.cardata import load_cars

    cars = load_cars(spheres, "train")
    views = torch.nonzero(cars.train_view).flatten()
    batch = draw_batch(cars, views, 3, 64, torch.Generator().manual_seed(2), "fast")
    model = trained_a_little()
    step = make_training_step(model, "fast", 0.0, 0.0, 1e-3, torch.device("cpu"))
    loss, mse, geometry = step.forward_and_loss(batch.objects, batch.origins, batch.dirs,
                                                batch.target)
    plain = batch_loss(*BatchForward(model, folded=True)(batch.objects, batch.origins, batch.dirs),
                       batch.target, 1e-3)
    assert geometry is None and torch.equal(loss, plain[0]) and torch.equal(mse, plain[1])


TINY = ["--objects-per-step", "3", "--rays-per-object", "64", "--width", "32", "--latent-dim",
        "16", "--hidden-layers", "3", "--log-every", "5", "--eval-every", "1000", "--save-every",
        "1000", "--steps", "10", "--device", "cpu"]


def weights(run: Path) -> dict:
    return load_checkpoint(run / "model.pt").model.state_dict()


@pytest.fixture
def textured_start(spheres, tmp_path) -> Path:
    """A checkpoint of the TINY architecture for the synthetic cars whose colors vary enough
    along rays for per-ray depths to pass the term's gradient floor (a fresh network's do not)."""
    torch.manual_seed(0)
    model = LightFieldNetwork(LFNConfig(num_instances=3, latent_dim=16, width=32, hidden_layers=3))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    names = [c["id"] for c in json.loads((spheres / "manifest.json").read_text())["cars"]
             if c["split"] == "train"]
    save_checkpoint(model, names, {}, tmp_path / "start.pt")
    return tmp_path / "start.pt"


def test_training_with_weight_zero_is_training_without_the_term_and_with_it_differs(
        spheres, textured_start, tmp_path):
    runs = {name: tmp_path / name for name in ("plain", "zero", "on")}
    common = ["--data", str(spheres), *TINY, "--init", str(textured_start)]
    train(parse_args([*common, "--out", str(runs["plain"])]))
    train(parse_args([*common, "--out", str(runs["zero"]), "--geometry-weight", "0"]))
    train(parse_args([*common, "--out", str(runs["on"]), "--geometry-weight", "0.5",
                      "--geometry-rays", "32", "--geometry-neighbours", "2"]))
    plain, zero, on = (weights(r) for r in runs.values())
    assert all(torch.equal(plain[k], zero[k]) for k in plain)
    assert any(not torch.equal(plain[k], on[k]) for k in plain)
    log = [json.loads(line) for line in (runs["on"] / "log.jsonl").read_text().splitlines()]
    assert all(r["geometry"] > 0 for r in log)
    assert not any("geometry" in json.loads(line)
                   for line in (runs["plain"] / "log.jsonl").read_text().splitlines())


def test_init_starts_from_a_checkpoints_network_and_codes(spheres, textured_start, tmp_path):
    train(parse_args(["--data", str(spheres), "--out", str(tmp_path / "run"), *TINY,
                      "--steps", "1", "--lr", "0", "--latent-lr", "0",
                      "--init", str(textured_start)]))
    source, copy = (load_checkpoint(p) for p in (textured_start, tmp_path / "run" / "model.pt"))
    assert copy.instance_names == source.instance_names
    for name, value in source.model.state_dict().items():
        torch.testing.assert_close(copy.model.state_dict()[name], value, rtol=0, atol=0, msg=name)
    textured_start.unlink()  # a later call, without --init, where the start is not at hand
    train(parse_args(["--data", str(spheres), "--out", str(tmp_path / "run"), *TINY,
                      "--steps", "2", "--resume"]))
    resumed = load_checkpoint(tmp_path / "run" / "model.pt").meta
    assert resumed["steps"] == 2 and resumed["train_config"]["init"] == str(textured_start)
    assert [r["checkpoint"] for r in resumed["started_from"]] == ["start.pt"]
    train(parse_args(["--data", str(spheres), "--out", str(tmp_path / "second"), *TINY,
                      "--steps", "1", "--init", str(tmp_path / "run" / "model.pt")]))
    chain = load_checkpoint(tmp_path / "second" / "model.pt").meta["started_from"]
    assert [r["checkpoint"] for r in chain] == ["start.pt", "model.pt"]  # oldest run first
    assert chain[1]["steps"] == 2 and chain[1]["dataset"] == str(spheres)


@pytest.mark.parametrize("flags, message", [
    (["--geometry-weight", "1", "--geometry-rays", "0"], "--geometry-rays 0"),
    (["--geometry-weight", "-0.1"], "--geometry-weight -0.1"),
    (["--geometry-weight", "1", "--geometry-neighbours", "8"], "--geometry-neighbours 8"),
    (["--geometry-weight", "1", "--step-impl", "reference"], "fast step"),
    (["--init", "missing.pt"], "missing.pt"),
])
def test_bad_geometry_flags_are_one_error_line(spheres, tmp_path, capsys, flags, message):
    assert main(["--data", str(spheres), "--out", str(tmp_path / "run"), *TINY, *flags]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
