"""Epipolar-plane images against a light field whose depth is known: a striped fronto-parallel plane,
seen square and wide (the vertical field of view stays, so a wide view's lines keep the square's slopes)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models.cameras import intrinsics, orbit_pose
from models.depth import pixel_equations, ray_tangents, solve_depth
from models.epi import epi_colors, epi_rays, line_columns, predicted_lines
from models.plucker import plucker
from models.renderer import frame_rays
from models.resolution import Resolution

RES = 64
WIDE = Resolution(96, 64)  # the 64² view and 16 more columns on each side
SHIFTS = torch.linspace(-0.45, 0.45, 97)  # ±15 % of the default orbit radius, s = 0 in the middle
POSE = orbit_pose(30.0, 20.0)
FOCAL = float(intrinsics(RES, RES)[0, 0])  # WIDE's too: the focal length follows the height
MAX_STEP_PX = 1.5  # a stripe edge moves ≈ 0.4 px from one EPI row to the next


class StripedPlane:
    """A light field written as a function of Plücker coordinates, with the renderer's `colors`:
    the plane at optical depth `depth` in front of POSE, facing it, with sinusoidal stripes across
    the camera's right axis (one phase per channel, so some channel always changes)."""

    device = torch.device("cpu")
    dtype = torch.float32
    rays_per_chunk = 1000  # several chunks per EPI: the chunked path is the one tested
    bounded = False  # a plane: no sphere holds it

    def __init__(self, depth: float, period: float = 0.6):
        self.right, self.forward, self.center = POSE[:3, 0], POSE[:3, 2], POSE[:3, 3]
        self.depth, self.period = depth, period

    def colors(self, rays: torch.Tensor) -> torch.Tensor:
        d, m = rays[..., :3], rays[..., 3:]
        closest = torch.linalg.cross(d, m, dim=-1)  # the ray's point nearest the origin
        to_plane = (self.center @ self.forward + self.depth - closest @ self.forward) / (d @ self.forward)
        across = (closest + to_plane[..., None] * d - self.center) @ self.right
        phase = 2 * math.pi * across[..., None] / self.period + torch.arange(3) * 2 * math.pi / 3
        return 0.5 + 0.4 * torch.sin(phase)


def rising_crossings(row: np.ndarray) -> np.ndarray:
    """Sub-pixel columns (pixel centers at +0.5) where `row` - 0.5 crosses zero upward."""
    value = row - 0.5
    i = np.nonzero((value[:-1] < 0) & (value[1:] >= 0))[0]
    return i + 0.5 + value[i] / (value[i] - value[i + 1])


def tracked_stripe(epi: np.ndarray, start_column: float) -> np.ndarray:
    """A stripe edge's column in every EPI row: the red channel's upward crossing nearest
    `start_column` in the middle row (s = 0), followed row by row up and down from there; NaN from
    where it leaves the picture (the nearest crossing is then another stripe's, a jump)."""
    middle = len(epi) // 2
    track = np.full(len(epi), np.nan)
    for rows in (range(middle, len(epi)), range(middle, -1, -1)):
        previous = start_column
        for k in rows:
            crossings = rising_crossings(epi[k, :, 0])
            nearest = crossings[np.argmin(np.abs(crossings - previous))] if len(crossings) else np.inf
            if abs(nearest - previous) > MAX_STEP_PX and k != middle:
                break
            previous = track[k] = nearest
    return track


def fitted_line(track: np.ndarray) -> tuple[float, float, float]:
    """Slope and offset of the least-squares line through a track's rows, and its largest residual."""
    kept = ~np.isnan(track)
    assert kept.sum() >= 24, "the stripe edge left the picture too soon to measure"
    shifts = SHIFTS.numpy()[kept]
    slope, offset = np.polyfit(shifts, track[kept], 1)
    return slope, offset, np.abs(track[kept] - (slope * shifts + offset)).max()


def plane_distances(depth: float, columns: torch.Tensor, row: int, res: Resolution) -> torch.Tensor:
    """Distance along each scanline pixel's ray to the plane at optical depth `depth`."""
    _, dirs = frame_rays(POSE, res, "cpu")
    return depth / (dirs.view(res.height, res.width, 3)[row, columns] @ POSE[:3, 2])


@pytest.mark.parametrize("res", [Resolution.square(RES), WIDE], ids=str)
@pytest.mark.parametrize("depth", [2.0, 3.5])
@pytest.mark.parametrize("column", [8, 32, 55])  # off-center columns check Z = z·(d·forward)
def test_plane_stripes_are_lines_with_the_slope_their_depth_predicts(res, depth, column):
    row = 20
    column += (res.width - RES) // 2  # the square view's pixel, wherever the frame is wider
    plane = StripedPlane(depth)
    epi = epi_colors(plane, epi_rays(POSE, res, row, SHIFTS)).numpy()
    assert epi.shape == (len(SHIFTS), res.width, 3)
    slope, _, straightness = fitted_line(tracked_stripe(epi, column + 0.5))
    assert straightness < 0.01, "the stripe edge is not a straight line"
    assert slope == pytest.approx(-FOCAL / depth, rel=1e-3)  # x(s) = x0 − f·s/Z, Z the optical depth

    columns = torch.arange(res.width)
    lines = predicted_lines(plane_distances(depth, columns, row, res),
                            torch.ones(res.width, dtype=torch.bool), POSE, res, row, columns)
    assert [line.column for line in lines] == list(range(res.width))
    assert all(line.slope == pytest.approx(-FOCAL / depth, rel=1e-6) for line in lines)
    assert lines[column].slope == pytest.approx(slope, rel=1e-3)


def test_the_planes_gradient_depth_predicts_the_slope_seen_in_its_epi():
    depth, row = 2.5, 30
    plane = StripedPlane(depth)
    origins, dirs = frame_rays(POSE, RES, "cpu")
    rays = plucker(origins, dirs)
    tangents = ray_tangents(origins, dirs, POSE[:3, 0].expand_as(dirs), POSE[:3, 1].expand_as(dirs))
    derivatives = torch.stack([torch.func.jvp(plane.colors, (rays,), (t,))[1] for t in tangents])
    result = solve_depth(plane.colors(rays), *pixel_equations(derivatives), RES, window=1)
    valid = result.valid[row]
    assert valid.all()

    lines = predicted_lines(result.depth[row], valid, POSE, RES, row, line_columns(valid))
    assert len(lines) == 16
    epi = epi_colors(plane, epi_rays(POSE, RES, row, SHIFTS)).numpy()
    for line in lines:
        measured = fitted_line(tracked_stripe(epi, line.x(0.0)))[0]
        assert line.slope == pytest.approx(measured, rel=1e-3)


def test_a_wide_views_epi_is_the_square_views_epi_widened():
    plane, row = StripedPlane(3.0), 20
    square = epi_colors(plane, epi_rays(POSE, RES, row, SHIFTS))
    wide = epi_colors(plane, epi_rays(POSE, WIDE, row, SHIFTS))
    assert wide.shape == (len(SHIFTS), WIDE.width, 3)
    assert torch.allclose(wide[:, 16:80], square, atol=1e-5)


def test_line_columns_spread_over_the_valid_pixels_only():
    valid = torch.zeros(64, dtype=torch.bool)
    valid[10:42] = True
    columns = line_columns(valid, count=16)  # every 4th of the 32 valid pixels
    assert columns.tolist() == list(range(12, 42, 4))
    assert not len(line_columns(torch.zeros(64, dtype=torch.bool)))
