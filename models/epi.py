"""Epipolar-plane images (EPIs) of an LFN, and the lines that gradient depth predicts in them.

Slide the camera along its own right axis by s (world units), its orientation fixed, and look at
one image row (the scanline) from each position: stacked, these rows are the EPI, one row per
shift, one network evaluation per EPI pixel. In the camera convention of models/cameras.py (OpenCV:
x right, y down, z forward) a point at camera coordinates (X, Y, Z) is seen by the shifted camera
at X − s, so it stays on its row and its column moves as

    x(s) = x0 − f·s / Z

with f the focal length in pixels and Z the point's depth along the optical axis. The field of
view is vertical at every aspect (models/cameras.py), so f follows the frame's height: a W × H
view's EPI is W columns wide and its lines have the slopes of the H × H view's. Each surface
point draws a straight line in the EPI, flatter the farther it is, and along it a Lambertian
color is constant: the stripes of an EPI are those lines. Gradient depth (models/depth.py) reads
their slopes from the network's derivatives; it measures z, the distance along the pixel's ray,
and Z = z·(d·forward) for the ray's unit direction d.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from models.cameras import intrinsics, rays_through_pixels
from models.depth import DepthResult
from models.plucker import plucker
from models.renderer import ray_colors
from models.resolution import Resolution

LINES_PER_SCANLINE = 16  # about this many predicted lines over a scanline the object fills


@dataclass(frozen=True)
class PredictedLine:
    """The EPI line of the surface point seen at scanline pixel `column` from the unshifted camera."""

    column: int
    depth: float  # gradient depth there: distance along the pixel's ray, world units
    slope: float  # dx/ds = −f / Z in pixels per world unit of camera shift

    def x(self, shift: float) -> float:
        """The point's image column at camera shift `shift`, pixel centers at +0.5."""
        return self.column + 0.5 + self.slope * shift


@dataclass
class EpipolarImage:
    image: torch.Tensor  # (len(shifts), W, 3) colors; row k seen from the camera shifted by shifts[k]
    shifts: torch.Tensor  # (rows,) camera shifts along its right axis, world units, ascending
    scanline: int  # the image row the EPI shows
    lines: list[PredictedLine]


def shifted_cameras(cam2world: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """(len(shifts), 4, 4) cam2world: the camera translated by each shift along its right axis."""
    poses = cam2world.expand(len(shifts), 4, 4).clone()
    poses[:, :3, 3] += shifts[:, None].to(poses) * cam2world[:3, 0]
    return poses


def epi_rays(
    cam2world: torch.Tensor, res: Resolution | int, scanline: int, shifts: torch.Tensor,
) -> torch.Tensor:
    """Plücker rays (len(shifts), W, 6) through the scanline's pixels of each shifted camera of a
    W × H view."""
    res = Resolution.of(res)
    poses = shifted_cameras(cam2world, shifts)[:, None]  # broadcast over the columns
    cols = torch.arange(res.width, device=cam2world.device, dtype=cam2world.dtype)
    k = intrinsics(res.width, res.height)
    origins, dirs = rays_through_pixels(poses, k, cols, torch.full_like(cols, scanline))
    return plucker(origins, dirs)


def epi_colors(renderer, rays: torch.Tensor, abandon: Callable[[], bool] | None = None) -> torch.Tensor:
    """(..., 6) Plücker rays → (..., 3) float32 colors from the renderer's current latent, chunked
    and on a CPU sliced as its frames are (models.renderer.ray_colors, which asks `abandon` between
    slices), in its precision and on its device."""
    flat = rays.reshape(-1, 6).to(renderer.device)
    return ray_colors(renderer, flat, abandon).float().view(*rays.shape[:-1], 3)


def predicted_lines(depth: torch.Tensor, valid: torch.Tensor, cam2world: torch.Tensor,
                    res: Resolution | int, scanline: int, columns: torch.Tensor) -> list[PredictedLine]:
    """The EPI lines of scanline pixels `columns` whose depth (distance along the ray; (W,) like
    `valid`) is valid: slope −f / Z with Z the depth along the optical axis."""
    res = Resolution.of(res)
    k = intrinsics(res.width, res.height)  # f = k[0, 0] = k[1, 1], from the height (square pixels)
    depth, valid, columns = depth.cpu().double(), valid.cpu(), columns.cpu()
    columns = columns[valid[columns]]
    pose = cam2world.detach().cpu().double()
    rows = torch.full(columns.shape, float(scanline), dtype=torch.float64)
    _, dirs = rays_through_pixels(pose, k, columns.double(), rows)
    along_ray = depth[columns]
    along_axis = along_ray * (dirs @ pose[:3, 2])  # Z = z · (d · forward)
    return [PredictedLine(c, z, -float(k[0, 0]) / z_axis) for c, z, z_axis
            in zip(columns.tolist(), along_ray.tolist(), along_axis.tolist(), strict=True)]


def line_columns(valid: torch.Tensor, count: int = LINES_PER_SCANLINE) -> torch.Tensor:
    """Every k-th valid pixel of a scanline, k = len(valid) // count: evenly spread over the object
    (about `count` of them when it fills the row), none on the background, where depth says nothing."""
    step = max(1, len(valid) // count)
    return valid.nonzero()[:, 0][step // 2 :: step]


@torch.no_grad()
def epipolar_plane_image(renderer, cam2world: torch.Tensor, res: Resolution | int, scanline: int,
                         shifts: torch.Tensor, depth: DepthResult,
                         abandon: Callable[[], bool] | None = None) -> EpipolarImage:
    """The EPI of the renderer's current latent at `scanline` (a row, 0..H-1) of the W × H view from
    `cam2world`, and the lines that `depth`, the view's gradient depth (models/depth.py), predicts
    in it. `abandon` is asked between slices of a CPU EPI's colors (epi_colors): True gives it up
    (models.renderer.FrameAbandoned)."""
    pose = cam2world.to(renderer.device, torch.float32)
    image = epi_colors(renderer, epi_rays(pose, res, scanline, shifts), abandon)
    row_depth, row_valid = depth.depth[scanline], depth.valid[scanline]
    lines = predicted_lines(row_depth, row_valid, pose, res, scanline, line_columns(row_valid.cpu()))
    return EpipolarImage(image, shifts.cpu(), scanline, lines)
