"""Gradient depth refined by a wide-baseline search in the light field (models/stereo_depth.py)."""

import math

import torch

from models.cameras import orbit_pose
from models.depth import DepthResult
from models.plucker import plucker
from models.renderer import frame_rays
from models.stereo_depth import StereoConfig, refine_depth
from tests.test_depth import textured_sphere, true_sphere_depth

RES = 48


class SphereLightField:
    """tests.test_depth's textured sphere with the renderer's `colors`."""

    device = torch.device("cpu")
    dtype = torch.float32
    rays_per_chunk = 4096
    bounded = False

    def __init__(self):
        self.evaluated = 0

    def colors(self, rays: torch.Tensor) -> torch.Tensor:
        self.evaluated += len(rays)
        return textured_sphere(rays.double()).float()


def sphere_view(azimuth: float, elevation: float):
    pose = orbit_pose(azimuth, elevation)
    origins, dirs = frame_rays(pose, RES, "cpu")
    truth = true_sphere_depth(origins.double(), dirs.double()).float().view(RES, RES)
    color = textured_sphere(plucker(origins, dirs).double()).float().view(RES, RES, 3)
    interior = torch.isfinite(truth) & (truth < truth[torch.isfinite(truth)].min() + 0.5)
    return pose, truth, color, interior


def blobby(truth: torch.Tensor, interior: torch.Tensor, amplitude: float) -> torch.Tensor:
    """The true depth with smooth relative errors of ±amplitude, blobs ~10 pixels wide: the kind
    gradient depth has on the trained cars."""
    rows, cols = torch.meshgrid(torch.arange(RES), torch.arange(RES), indexing="ij")
    wobble = torch.sin(2 * math.pi * rows / 11) * torch.cos(2 * math.pi * cols / 13)
    return torch.where(interior, truth * (1 + amplitude * wobble), 0.0)


def test_blobby_depth_of_an_analytic_sphere_moves_to_the_surface():
    pose, truth, color, interior = sphere_view(30.0, 20.0)
    estimate = DepthResult(blobby(truth, interior, 0.03), interior, interior.float(), color)
    light_field = SphereLightField()
    refined = refine_depth(light_field, pose, RES, estimate)
    before = ((estimate.depth - truth).abs() / truth)[interior]
    after = ((refined.depth - truth).abs() / truth)[interior]
    assert before.median() > 0.01 and before.quantile(0.9) > 0.025
    # a 4-5 × smaller error (1.05 → 0.22 % median): not zero, since a patch's neighbours searched
    # at the same relative offset sit on slightly different blobs
    assert after.median() < 0.003 and after.quantile(0.9) < 0.007
    assert torch.equal(refined.valid, interior)
    assert StereoConfig().evaluations_per_pixel == 400
    assert light_field.evaluated == int(interior.sum()) * 400


def test_exact_depth_stays_and_a_search_that_ends_at_its_edge_keeps_the_estimate():
    pose, truth, color, interior = sphere_view(200.0, 50.0)
    exact = refine_depth(SphereLightField(), pose, RES, DepthResult(torch.where(interior, truth, 0.0),
                                                                   interior, interior.float(), color))
    error = ((exact.depth - truth).abs() / truth)[interior]
    assert error.median() < 1e-4
    # 20 % too far: the truth lies outside the ±6 % searched, so the estimate is kept as it was
    far = DepthResult(torch.where(interior, truth * 1.2, 0.0), interior, interior.float(), color)
    kept = refine_depth(SphereLightField(), pose, RES, far)
    assert torch.equal(kept.depth, far.depth)


def test_a_view_without_depth_is_returned_as_it_is():
    pose, truth, color, _ = sphere_view(30.0, 20.0)
    nothing = torch.zeros(RES, RES, dtype=torch.bool)
    estimate = DepthResult(torch.zeros(RES, RES), nothing, torch.zeros(RES, RES), color)
    light_field = SphereLightField()
    assert refine_depth(light_field, pose, RES, estimate) is estimate
    assert light_field.evaluated == 0
