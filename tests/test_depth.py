"""Depth from light-field gradients against analytic light fields with known depth."""

from pathlib import Path

import pytest
import torch

from models.cameras import orbit_pose
from models.checkpoint import load_checkpoint
from models.depth import (
    color_derivatives,
    gradient_depth,
    mlp_forward_with_tangents,
    normals_from_depth,
    pixel_equations,
    ray_tangents,
    solve_depth,
)
from models.mlp import mlp_forward
from models.plucker import plucker
from models.renderer import LFNRenderer, frame_rays
from tests.conftest import tiny_lfn

RADIUS = 0.8


def textured_sphere(rays: torch.Tensor) -> torch.Tensor:
    """A light field written as a function of Plücker coordinates: a sphere of radius 0.8 at the
    origin with a smooth color texture, white where the ray misses it."""
    d, m = rays[:, :3], rays[:, 3:]
    closest = torch.linalg.cross(d, m, dim=-1)  # the ray's point nearest the origin
    inside = (RADIUS**2 - (closest**2).sum(-1)).clamp(min=1e-9)
    x = closest - torch.sqrt(inside)[:, None] * d
    texture = torch.stack([torch.sin(7 * x[:, 0] + 3 * x[:, 2]), torch.cos(5 * x[:, 1] - 4 * x[:, 2]),
                           torch.sin(6 * x[:, 2] + 2 * x[:, 0])], -1)
    return 0.5 + 0.4 * texture


def true_sphere_depth(origins, dirs):
    b = (origins * dirs).sum(-1)
    disc = b**2 - ((origins**2).sum(-1) - RADIUS**2)
    return torch.where(disc > 0, -b - torch.sqrt(disc.clamp(min=0)), torch.inf)


def sphere_derivatives(light_field, azimuth: float, elevation: float, res: int):
    """The frame's rays, colors and exact ray-tangent derivatives (4, N, 3) of `light_field`."""
    pose = orbit_pose(azimuth, elevation).double()
    origins, dirs = frame_rays(pose, res, "cpu")
    rays = plucker(origins, dirs)
    tangents = ray_tangents(origins, dirs, pose[:3, 0].expand_as(dirs), pose[:3, 1].expand_as(dirs))
    derivatives = torch.stack([torch.func.jvp(light_field, (rays,), (t,))[1] for t in tangents])
    return origins, dirs, light_field(rays), derivatives


@pytest.mark.parametrize("summed", [False, True])
@pytest.mark.parametrize("azimuth, elevation", [(30.0, 20.0), (200.0, 50.0)])
def test_gradient_depth_of_an_analytic_sphere_is_within_one_percent(azimuth, elevation, summed):
    res = 48
    origins, dirs, color, derivatives = sphere_derivatives(textured_sphere, azimuth, elevation, res)
    result = solve_depth(color, *pixel_equations(derivatives, summed), res, window=1)
    truth = true_sphere_depth(origins, dirs).view(res, res)
    on_sphere = torch.isfinite(truth)
    # stay off the silhouette, where the sphere's texture is compressed to nothing
    interior = on_sphere & (truth < truth[on_sphere].min() + 0.5)
    assert result.valid[interior].float().mean() > 0.95
    error = ((result.depth - truth).abs() / truth)[interior & result.valid]
    assert error.median() < 0.01 and error.quantile(0.9) < 0.02


def test_summed_equations_lose_an_edge_whose_channels_cancel():
    # Red rises where green falls by as much: the channels' sum is flat, so the summed equations
    # see nothing there and mark it invalid; the per-channel ones still measure the depth.
    def opposed(rays):
        red = textured_sphere(rays)[:, :1]
        return torch.cat([red, 1.0 - red, torch.full_like(red, 0.5)], -1)

    res = 32
    origins, dirs, color, derivatives = sphere_derivatives(opposed, 30.0, 20.0, res)
    per_channel = solve_depth(color, *pixel_equations(derivatives), res, window=1)
    summed = solve_depth(color, *pixel_equations(derivatives, summed=True), res, window=1)
    on_sphere = torch.isfinite(true_sphere_depth(origins, dirs)).view(res, res)
    assert per_channel.valid[on_sphere].float().mean() > 0.9
    assert not summed.valid.any()


def test_forward_mode_tangents_equal_autodiff():
    model = tiny_lfn()
    tensors = model.specialize(model.latents.weight[1])
    x, tangents = torch.randn(40, 6), torch.randn(4, 40, 6)
    out, dout = mlp_forward_with_tangents(x, tangents, *tensors)
    assert torch.allclose(out, mlp_forward(x, *tensors), atol=1e-5)
    for t, d in zip(tangents, dout, strict=True):
        expected = torch.func.jvp(lambda v: mlp_forward(v, *tensors), (x,), (t,))[1]
        assert torch.allclose(d, expected, atol=1e-5)


def test_saturated_rays_skip_the_tangent_pass_with_the_same_derivatives():
    # The shipped car: its white background saturates the sigmoids to exactly 1, where the
    # derivatives are exactly 0; color_derivatives runs the tangent pass on the other rays only.
    ckpt = load_checkpoint(Path(__file__).resolve().parents[1] / "checkpoints" / "cars.pt")
    renderer = LFNRenderer(ckpt.model, backend="eager")
    renderer.set_latent(ckpt.latents[0])
    pose, res = orbit_pose(30, 20), 40
    color, derivatives = color_derivatives(renderer, pose, res)

    origins, dirs = frame_rays(pose, res, "cpu")  # every ray through the tangent pass
    tangents = ray_tangents(origins, dirs, pose[:3, 0].expand_as(dirs), pose[:3, 1].expand_as(dirs))
    logits, dlogits = mlp_forward_with_tangents(plucker(origins, dirs), tangents, *renderer.folded_mlp())
    full_color = torch.sigmoid(logits)
    full = (full_color * (1 - full_color))[None] * dlogits
    skipped = (color * (1 - color) == 0).all(1)
    assert 0.5 < skipped.float().mean() < 0.95, "the view needs background and car"
    assert (full[:, skipped] == 0).all() and (derivatives[:, skipped] == 0).all()
    assert ((derivatives != 0) == (full != 0)).all(), "a derivative was lost or made up"
    assert torch.allclose(color, full_color, atol=1e-6)
    assert torch.allclose(derivatives, full, rtol=1e-4, atol=1e-4 * full.abs().max())


def test_depth_of_a_tiny_model_is_finite_where_valid_and_flat_regions_are_invalid():
    model = tiny_lfn()
    renderer = LFNRenderer(model)
    result = gradient_depth(renderer, orbit_pose(30, 20), 24)
    assert torch.isfinite(result.depth).all() and (result.depth[result.valid] > 0).all()
    flat = torch.zeros(24 * 24, 3) + 0.5
    zeros = torch.zeros(24 * 24)
    assert not solve_depth(flat, zeros, zeros, 24).valid.any()


def test_pooling_weighs_each_pixel_by_its_gradient_norm():
    # One uniform-color 5 × 5 window: 24 pixels say depth 2 with |a| = 1, the centre says 3 with
    # |a| = 10. Weighted by |a| the centre moves its depth to (24·2 + 10·3) / 34 ≈ 2.29; the
    # plain least squares (weights a², 100) would give (24·2 + 100·3) / 124 ≈ 2.81.
    res = 5
    aa = torch.ones(res * res)
    aa[12] = 100.0
    depth = torch.full((res * res,), 2.0)
    depth[12] = 3.0
    color = torch.full((res * res, 3), 0.5)
    result = solve_depth(color, depth * aa, aa, res, window=5)
    assert result.depth[2, 2] == pytest.approx(78 / 34, rel=1e-5)
    assert result.confidence[2, 2] == pytest.approx(34.0, rel=1e-5)


def test_normals_of_a_plane_are_its_normal():
    res = 48
    pose = orbit_pose(0.0, 30.0)
    origins, dirs = frame_rays(pose, res, "cpu")
    # the ground plane z = 0, seen from above
    depth = (-origins[:, 2] / dirs[:, 2]).view(res, res)
    valid = depth > 0
    normals, ok = normals_from_depth(depth, valid, pose, res)
    assert ok.sum() >= (res - 6) ** 2  # all but the 3-pixel border the differences need
    assert torch.allclose(normals[ok], torch.tensor([0.0, 0.0, 1.0]).expand_as(normals[ok]), atol=1e-3)
