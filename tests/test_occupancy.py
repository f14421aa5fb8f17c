"""Empty-space skipping and early stopping for the volumetric baseline (models/occupancy.py)."""

import math

import torch

from models.cameras import orbit_pose
from models.occupancy import (
    DENSITY_THRESHOLD,
    EARLY_STOP_TRANSMITTANCE,
    OccupancyGrid,
    build_occupancy,
    cell_centers,
    field_density,
    march,
)
from models.renderer import frame_rays
from models.volumetric import render_specialized
from tests.conftest import tiny_volumetric


def test_grid_marks_the_cells_a_sphere_occupies():
    def sphere(points, dirs):  # dense inside radius 0.5, empty outside
        return torch.where(points.norm(dim=-1) < 0.5, 50.0, 0.0)

    grid = build_occupancy(sphere, 16, torch.device("cpu"))
    distance = cell_centers(16, torch.device("cpu")).norm(dim=-1)
    cell = 2.0 / 16
    assert grid.occupied[distance < 0.5 - cell].all()  # every cell well inside
    assert not grid.occupied[distance > 0.5 + 2.5 * cell].any()  # one cell of dilation, no more
    assert 0.05 < grid.occupied_share < 0.25
    inside, outside = torch.tensor([[0.1, 0.0, 0.2]]), torch.tensor([[0.9, 0.9, 0.0], [1.5, 0.0, 0.0]])
    assert grid.lookup(inside).tolist() == [True] and grid.lookup(outside).tolist() == [False, False]


def tiny_field():
    model = tiny_volumetric()
    tensors = model.specialize(model.latents.weight[1])
    return model, tuple(t.detach() for t in tensors)


def frame(res: int = 12):
    return frame_rays(orbit_pose(40.0, 25.0, 3.0), res, torch.device("cpu"))


def test_marching_matches_the_dense_render_within_the_stated_bound():
    model, tensors = tiny_field()
    cfg = model.config
    origins, dirs = frame()
    dense_color, dense_depth, dense_opacity = render_specialized(
        origins, dirs, tensors, cfg.samples_per_ray, cfg.frequencies)
    grid = build_occupancy(field_density(tensors, cfg.frequencies), 8, torch.device("cpu"))
    result = march(origins, dirs, tensors, cfg.samples_per_ray, cfg.frequencies, grid)
    # A skipped sample has alpha < 1 - exp(-threshold * step); a stopped ray hides less than its
    # remaining transmittance. Both bound how far a color can move (white background, colors in [0, 1]).
    step = 2.0 / cfg.samples_per_ray
    bound = cfg.samples_per_ray * (1 - math.exp(-DENSITY_THRESHOLD * step)) + EARLY_STOP_TRANSMITTANCE
    assert (result.color - dense_color).abs().max() <= bound + 1e-5
    assert (result.opacity - dense_opacity).abs().max() <= bound + 1e-5
    assert (result.evaluations <= cfg.samples_per_ray).all()


def test_marching_skips_empty_cells_and_stops_behind_opaque_ones():
    model, tensors = tiny_field()
    cfg = model.config
    origins, dirs = frame()
    empty = march(origins, dirs, tensors, cfg.samples_per_ray, cfg.frequencies,
                  OccupancyGrid(torch.zeros(8, 8, 8, dtype=torch.bool)))
    assert empty.evaluations.sum() == 0 and torch.equal(empty.color, torch.ones_like(empty.color))

    full = OccupancyGrid(torch.ones(8, 8, 8, dtype=torch.bool))
    opaque = tuple(t.clone() for t in tensors)
    opaque[-1][0] += 40.0  # the density output's bias: every sample nearly opaque
    result = march(origins, dirs, opaque, cfg.samples_per_ray, cfg.frequencies, full)
    hit = result.opacity > 0.5
    assert hit.any() and (result.evaluations[hit] <= 32).all()  # stopped within two blocks
