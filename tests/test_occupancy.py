"""Empty-space skipping and early stopping for the volumetric baseline (models/occupancy.py)."""

import math

import pytest
import torch

from models.cameras import orbit_pose
from models.folded_field import FoldedField
from models.mlp import mlp_forward
from models.occupancy import (
    CPU_SCHEDULE,
    DENSITY_THRESHOLD,
    EARLY_STOP_TRANSMITTANCE,
    GPU_SCHEDULE,
    MarchSchedule,
    OccupancyGrid,
    build_occupancy,
    cell_centers,
    cell_corners,
    cells_over,
    march,
    occupied_samples,
    peak_density,
    schedule_for,
)
from models.renderer import frame_rays
from models.volumetric import composite, decode_samples, render_specialized, sample_along_rays, sample_inputs
from tests.conftest import tiny_volumetric

CPU = torch.device("cpu")


def ball(points, dirs):  # dense inside radius 0.5, empty outside
    return torch.where(points.norm(dim=-1) < 0.5, 50.0, 0.0)


def shell(points, dirs):  # a smooth, thin shell at radius 0.6: thinner than the coarse corners' spacing
    return 50.0 * torch.exp(-(((points.norm(dim=-1) - 0.6) / 0.03) ** 2))


def test_grid_marks_the_cells_a_sphere_occupies():
    grid = build_occupancy(ball, 16, CPU)
    distance = cell_centers(16, CPU).norm(dim=-1)
    half_diagonal = math.sqrt(3) / 16
    assert grid.occupied[distance < 0.5].all()  # a cell whose center is inside has a corner inside
    assert not grid.occupied[distance > 0.5 + half_diagonal].any()  # no corner inside: no dilation
    assert 0.05 < grid.occupied_share < 0.25
    inside, outside = torch.tensor([[0.1, 0.0, 0.2]]), torch.tensor([[0.9, 0.9, 0.0], [1.5, 0.0, 0.0]])
    assert grid.lookup(inside).tolist() == [True] and grid.lookup(outside).tolist() == [False, False]


def test_coarse_to_fine_marks_what_every_corner_would():
    for density in (ball, shell):
        grid = build_occupancy(density, 16, CPU)
        every_corner = peak_density(density, cell_corners(16, CPU).view(-1, 3), 1 << 16).view(17, 17, 17)
        assert torch.equal(grid.occupied, cells_over(every_corner, DENSITY_THRESHOLD))
        assert grid.build_evaluations < 6 * 17**3  # the coarse pass spared the far corners


def test_lookup_finds_the_cell_a_point_is_in():
    occupied = torch.rand(8, 8, 8, generator=torch.Generator().manual_seed(0)) < 0.5
    points = torch.rand(5000, 3, generator=torch.Generator().manual_seed(1)) * 2.4 - 1.2
    cell = torch.floor((points + 1.0) * 4.0).long()
    inside = ((cell >= 0) & (cell < 8)).all(-1)
    cell = cell.clamp(0, 7)
    expected = inside & occupied[cell[:, 0], cell[:, 1], cell[:, 2]]
    assert torch.equal(OccupancyGrid(occupied).lookup(points.view(50, 100, 3)), expected.view(50, 100))


def test_a_dilated_lookup_finds_the_cells_within_that_many_cells_of_an_occupied_one():
    occupied = torch.zeros(8, 8, 8, dtype=torch.bool)
    occupied[2, 5, 4] = True
    centers = cell_centers(8, CPU)
    reach = (cell_centers(8, CPU) - centers[2, 5, 4]).abs().amax(-1) * 4  # in cells along the farthest axis
    grid = OccupancyGrid(occupied)
    for dilation in (0, 1, 2):
        assert torch.equal(grid.lookup(centers, dilation), reach < dilation + 0.5)
    # Just outside the cube, next to an occupied cell on its surface: near it, though in no cell.
    occupied[0, 5, 4] = True
    grid = OccupancyGrid(occupied)
    outside = torch.tensor([[-1.01, centers[0, 5, 4, 1], centers[0, 5, 4, 2]], [0.0, 1.3, 0.0]])
    assert grid.lookup(outside, 1).tolist() == [True, False] and not grid.lookup(outside).any()


class CountingGrid(OccupancyGrid):
    """An OccupancyGrid that counts the points looked up in the undilated grid."""

    fine_lookups = 0

    def lookup(self, points, dilation=0):
        if dilation == 0:
            self.fine_lookups += points.numel() // 3
        return super().lookup(points, dilation)


def test_occupied_samples_are_the_dense_samples_in_occupied_cells_without_looking_up_all():
    origins, dirs = frame(16)
    samples = 196
    for dtype in (torch.float32, torch.float16):
        o, d = origins.to(dtype), dirs.to(dtype)
        t, deltas = sample_along_rays(o, d, samples, jitter=False)
        ball = cell_centers(32, CPU).norm(dim=-1) < 0.4
        for occupied in (ball, torch.rand(32, 32, 32, generator=torch.Generator().manual_seed(3)) < 0.05):
            grid = CountingGrid(occupied)
            expected = OccupancyGrid(occupied).lookup(o[:, None] + t[..., None] * d[:, None]) & (deltas > 0)
            listed = occupied_samples(o, d, samples, grid)
            assert expected.any() and torch.equal(listed.counts, expected.sum(1))
            assert torch.equal(listed.distances, t[expected])  # bit for bit, in the rays' dtype
            assert torch.equal(listed.first, torch.cumsum(expected.sum(1), 0) - expected.sum(1))
            assert torch.equal(listed.step, deltas[:, 0])
            if occupied is ball:  # only the blocks near it are looked up sample by sample
                assert 0 < grid.fine_lookups < t.numel() / 3


def tiny_field():
    model = tiny_volumetric()
    tensors = model.specialize(model.latents.weight[1])
    return model, tuple(t.detach() for t in tensors)


def frame(res: int = 12):
    return frame_rays(orbit_pose(40.0, 25.0, 3.0), res, CPU)


def dense_samples(origins, dirs, tensors, cfg):
    """The dense render's per-sample density and colors (N, S), (N, S, 3), with t and deltas."""
    t, deltas = sample_along_rays(origins, dirs, cfg.samples_per_ray, jitter=False)
    x = sample_inputs(origins, dirs, t, cfg.frequencies)
    density, rgb = decode_samples(mlp_forward(x.view(-1, x.shape[-1]), *tensors).view(*t.shape, 4))
    return density, rgb, t, deltas


def test_marching_matches_the_dense_render_within_the_stated_bound():
    model, tensors = tiny_field()
    cfg = model.config
    origins, dirs = frame()
    dense_color, dense_depth, dense_opacity = render_specialized(
        origins, dirs, FoldedField(tensors, cfg.frequencies), cfg.samples_per_ray)
    grid = build_occupancy(FoldedField(tensors, cfg.frequencies).density, 8, CPU)
    result = march(origins, dirs, FoldedField(tensors, cfg.frequencies), cfg.samples_per_ray, grid)
    # A skipped sample has alpha < 1 - exp(-threshold * step) where the density is smooth over a
    # cell; a stopped ray hides less than its remaining transmittance. Both bound how far a color can
    # move (white background, colors in [0, 1]).
    step = 2.0 / cfg.samples_per_ray
    bound = cfg.samples_per_ray * (1 - math.exp(-DENSITY_THRESHOLD * step)) + EARLY_STOP_TRANSMITTANCE
    assert (result.color - dense_color).abs().max() <= bound + 1e-5
    assert (result.opacity - dense_opacity).abs().max() <= bound + 1e-5
    assert (result.evaluations <= cfg.samples_per_ray).all()


def test_one_round_of_every_sample_composites_the_occupied_ones_exactly():
    model, tensors = tiny_field()
    cfg = model.config
    origins, dirs = frame()
    grid = OccupancyGrid(torch.rand(8, 8, 8, generator=torch.Generator().manual_seed(2)) < 0.4)
    result = march(origins, dirs, FoldedField(tensors, cfg.frequencies), cfg.samples_per_ray, grid,
                   schedule=MarchSchedule((cfg.samples_per_ray,), CPU_SCHEDULE.stop_slack))
    density, rgb, t, deltas = dense_samples(origins, dirs, tensors, cfg)
    occupied = grid.lookup(origins[:, None] + t[..., None] * dirs[:, None]) & (deltas > 0)  # misses: none
    color, depth, opacity = composite(torch.where(occupied, density, 0.0), rgb, t, deltas)
    assert result.rounds == 1 and torch.equal(result.evaluations, occupied.sum(1))
    assert torch.allclose(result.color, color, atol=1e-5)
    assert torch.allclose(result.opacity, opacity, atol=1e-5)
    assert torch.allclose(result.depth, depth, atol=1e-4)


def test_rounds_of_one_sample_stop_each_ray_at_the_sample_that_makes_it_opaque():
    model, tensors = tiny_field()
    cfg = model.config
    origins, dirs = frame()
    opaque = tuple(t.clone() for t in tensors)
    opaque[-1][0] += 4.0  # the density output's bias: rays turn opaque within a few samples
    full = OccupancyGrid(torch.ones(8, 8, 8, dtype=torch.bool))
    exact = march(origins, dirs, FoldedField(opaque, cfg.frequencies), cfg.samples_per_ray, full,
                  schedule=MarchSchedule((1,), CPU_SCHEDULE.stop_slack))
    density, rgb, t, deltas = dense_samples(origins, dirs, opaque, cfg)
    tau = density * deltas
    in_front = torch.exp(-(torch.cumsum(tau, 1) - tau))  # transmittance before each sample
    assert (exact.opacity > 0.5).any()
    expected = ((in_front > EARLY_STOP_TRANSMITTANCE) & (deltas > 0)).sum(1)  # a miss has none to take
    assert torch.equal(exact.evaluations, expected)
    # Larger rounds evaluate a few samples past the stop, which change a color by less than the rest
    # of the transmittance.
    rounded = march(origins, dirs, FoldedField(opaque, cfg.frequencies), cfg.samples_per_ray, full)
    assert (rounded.evaluations >= exact.evaluations).all()
    assert (rounded.color - exact.color).abs().max() <= EARLY_STOP_TRANSMITTANCE + 1e-5
    dense_color = composite(density, rgb, t, deltas)[0]
    assert (exact.color - dense_color).abs().max() <= EARLY_STOP_TRANSMITTANCE + 1e-5


def test_marching_skips_empty_cells_and_stops_behind_opaque_ones():
    model, tensors = tiny_field()
    cfg = model.config
    origins, dirs = frame()
    empty = march(origins, dirs, FoldedField(tensors, cfg.frequencies), cfg.samples_per_ray,
                  OccupancyGrid(torch.zeros(8, 8, 8, dtype=torch.bool)))
    assert empty.evaluations.sum() == 0 and empty.rounds == 0
    assert torch.equal(empty.color, torch.ones_like(empty.color))

    full = OccupancyGrid(torch.ones(8, 8, 8, dtype=torch.bool))
    opaque = tuple(t.clone() for t in tensors)
    opaque[-1][0] += 40.0  # the density output's bias: every sample nearly opaque
    result = march(origins, dirs, FoldedField(opaque, cfg.frequencies), cfg.samples_per_ray, full)
    step = sample_along_rays(origins, dirs, cfg.samples_per_ray, jitter=False)[1][:, 0]
    through_the_middle = step > 0.5 * step.max()  # long samples: each one nearly opaque
    first_round = CPU_SCHEDULE.rounds[0]  # march()'s default
    assert through_the_middle.any() and (result.evaluations[through_the_middle] == first_round).all()
    assert (result.evaluations[step == 0] == 0).all()  # a miss has nothing to evaluate


def test_a_ray_in_even_density_takes_about_what_it_needs_to_turn_opaque():
    model, tensors = tiny_field()
    cfg = model.config
    origins, dirs = frame()
    even = tuple(t.clone() for t in tensors)
    even[-2].zero_()  # the output layer's weights: the network returns its bias alone
    even[-1][0] = 5.5  # density ~45 everywhere: ~20 samples to opacity through the sphere's middle
    full = OccupancyGrid(torch.ones(8, 8, 8, dtype=torch.bool))
    exact = march(origins, dirs, FoldedField(even, cfg.frequencies), cfg.samples_per_ray, full,
                  schedule=MarchSchedule((1,), CPU_SCHEDULE.stop_slack))
    # After one sample, a second round could take every sample left: the ray's optical depth so far
    # says how many it needs, and it takes the schedule's stop slack times that many.
    budgeted = march(origins, dirs, FoldedField(even, cfg.frequencies), cfg.samples_per_ray, full,
                     schedule=MarchSchedule((1, cfg.samples_per_ray), CPU_SCHEDULE.stop_slack))
    needed = exact.evaluations
    assert budgeted.rounds == 2 and (needed[needed > 0] < cfg.samples_per_ray // 4).any()
    assert (needed <= budgeted.evaluations).all()
    hit = needed > 0
    slack = CPU_SCHEDULE.stop_slack
    assert (budgeted.evaluations[hit] <= 1 + torch.ceil(slack * (needed[hit] - 1)) + 1).all()
    assert (budgeted.evaluations[~hit] == 0).all()
    assert (budgeted.color - exact.color).abs().max() <= EARLY_STOP_TRANSMITTANCE + 1e-5


def test_each_device_marches_in_its_own_schedule_and_a_schedule_that_cannot_end_is_refused():
    assert schedule_for(torch.device("cpu")) is CPU_SCHEDULE
    assert schedule_for(torch.device("cuda")) is GPU_SCHEDULE
    # fewer, fuller rounds where each round's launches cost more than its evaluations
    assert len(GPU_SCHEDULE.rounds) < len(CPU_SCHEDULE.rounds)
    assert GPU_SCHEDULE.stop_slack > CPU_SCHEDULE.stop_slack
    for rounds, slack in (((), 1.5), ((8, 0), 1.5), ((8,), 0.0), ((8,), float("nan"))):
        with pytest.raises(ValueError, match="march schedule"):
            MarchSchedule(rounds, slack)
