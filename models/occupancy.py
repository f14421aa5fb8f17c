"""The volumetric baseline as interactive renderers run it: empty-space skipping and early stopping.

Dense rendering (models/volumetric.py) evaluates the network at all 196 samples of every ray. Most
of them are in empty space or behind the opaque surface, where they change nothing visible.
instant-ngp and nerfacc skip both, and so does this module:

1. An occupancy grid over the unit sphere's cube, built from the model's own density for the
   current latent: a cell is occupied if the density at any of its probe points (jittered
   positions, several view directions, since this network's density also sees the direction)
   exceeds DENSITY_THRESHOLD, then dilated by one cell so thin parts between probes are kept.
2. Marching: the dense sample positions are kept exactly (so the image matches the dense one);
   the network runs only at samples in occupied cells, in blocks of MARCH_BLOCK samples along
   the rays, and a ray stops once its transmittance falls under EARLY_STOP_TRANSMITTANCE.

A skipped sample has density under the threshold, i.e. an alpha under ~1e-4 at the dense step;
the rest of a stopped ray could add at most its remaining transmittance. The benchmark checks
the result against the dense render (PSNR), so a speed-up never comes from a worse picture.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from models.mlp import mlp_forward
from models.volumetric import decode_samples, sample_along_rays, sample_inputs, sample_weights

DENSITY_THRESHOLD = 0.01  # nerfacc's default for its occupancy grid
EARLY_STOP_TRANSMITTANCE = 1e-4
MARCH_BLOCK = 16  # samples along every ray per network call: fewer calls vs. work past the stop
PROBE_POINTS = 4  # jittered probes per cell
# Axis directions both ways: density is read from every side a camera can see the cell from.
PROBE_DIRECTIONS = ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1))


@dataclass
class OccupancyGrid:
    occupied: torch.Tensor  # (G, G, G) bool over the cube [-1, 1]^3, indexed [x, y, z]

    @property
    def resolution(self) -> int:
        return self.occupied.shape[0]

    def lookup(self, points: torch.Tensor) -> torch.Tensor:
        """(..., 3) points → (...) bool: inside an occupied cell (outside the cube: empty)."""
        g = self.resolution
        cell = torch.floor((points + 1.0) * (g / 2.0)).long()
        inside = ((cell >= 0) & (cell < g)).all(-1)
        cell = cell.clamp(0, g - 1)
        return inside & self.occupied[cell[..., 0], cell[..., 1], cell[..., 2]]

    @property
    def occupied_share(self) -> float:
        return float(self.occupied.float().mean())


def cell_centers(resolution: int, device: torch.device) -> torch.Tensor:
    """(G, G, G, 3) centers of the grid's cells in [-1, 1]^3, indexed [x, y, z]."""
    axis = (torch.arange(resolution, device=device, dtype=torch.float32) + 0.5) * (2.0 / resolution) - 1.0
    return torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1)


@torch.no_grad()
def build_occupancy(
    density: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], resolution: int, device: torch.device,
    seed: int = 0, chunk: int = 1 << 16,
) -> OccupancyGrid:
    """The grid of cells where `density(points (N, 3), dirs (N, 3)) → (N,)` exceeds the threshold
    at any probe (PROBE_POINTS jittered points × PROBE_DIRECTIONS), dilated by one cell."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    centers = cell_centers(resolution, device).reshape(-1, 3)
    half_cell = 1.0 / resolution
    peak = torch.zeros(centers.shape[0], device=device)
    for _ in range(PROBE_POINTS):
        jitter = (torch.rand(centers.shape, generator=generator) * 2 - 1).to(device) * half_cell
        points = centers + jitter
        for direction in PROBE_DIRECTIONS:
            dirs = torch.tensor(direction, device=device, dtype=torch.float32).expand_as(points)
            for start in range(0, points.shape[0], chunk):
                stop = start + chunk
                values = density(points[start:stop], dirs[start:stop]).float()
                peak[start:stop] = torch.maximum(peak[start:stop], values)
    occupied = (peak > DENSITY_THRESHOLD).view(1, 1, resolution, resolution, resolution).float()
    dilated = F.max_pool3d(occupied, kernel_size=3, stride=1, padding=1)[0, 0] > 0
    return OccupancyGrid(dilated)


def field_density(mlp_tensors: tuple[torch.Tensor, ...], frequencies: int):
    """density(points, dirs) of the volumetric field whose latent is folded into `mlp_tensors`."""

    def density(points: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
        dtype = mlp_tensors[0].dtype
        x = sample_inputs(points.to(dtype), dirs.to(dtype), torch.zeros_like(points[:, :1], dtype=dtype),
                          frequencies)[:, 0]
        return decode_samples(mlp_forward(x, *mlp_tensors).float())[0]

    return density


@dataclass
class MarchResult:
    color: torch.Tensor  # (N, 3) over the white background
    depth: torch.Tensor  # (N,) expected distance, normalised by opacity
    opacity: torch.Tensor  # (N,)
    evaluations: torch.Tensor  # (N,) network evaluations each ray took


@torch.no_grad()
def march(
    origins: torch.Tensor, dirs: torch.Tensor, mlp_tensors: tuple[torch.Tensor, ...], samples: int,
    frequencies: int, grid: OccupancyGrid, block: int = MARCH_BLOCK,
) -> MarchResult:
    """Render (N, 3) rays at the dense sample positions, evaluating the network only where the grid
    says occupied and only while the ray can still be seen through."""
    t, deltas = sample_along_rays(origins, dirs, samples, jitter=False)
    n = origins.shape[0]
    device = origins.device
    transmittance = torch.ones(n, device=device)
    color = torch.zeros(n, 3, device=device)
    depth = torch.zeros(n, device=device)
    evaluations = torch.zeros(n, dtype=torch.long, device=device)
    dtype = mlp_tensors[0].dtype
    for start in range(0, samples, block):
        alive = transmittance > EARLY_STOP_TRANSMITTANCE
        if not bool(alive.any()):
            break
        t_block, d_block = t[:, start:start + block], deltas[:, start:start + block].float()
        points = origins[:, None] + t_block[..., None] * dirs[:, None]
        wanted = grid.lookup(points) & alive[:, None]
        rays, steps = torch.nonzero(wanted, as_tuple=True)
        density = torch.zeros(t_block.shape, device=device)
        rgb = torch.zeros(*t_block.shape, 3, device=device)
        if rays.numel():
            at = t_block[rays, steps, None].to(dtype)
            x = sample_inputs(origins[rays].to(dtype), dirs[rays].to(dtype), at, frequencies)[:, 0]
            sigma, colors = decode_samples(mlp_forward(x, *mlp_tensors).float())
            density[rays, steps], rgb[rays, steps] = sigma, colors
            evaluations += wanted.sum(1)
        block_weights, through = sample_weights(density, d_block)
        weights = transmittance[:, None] * block_weights
        color += (weights[..., None] * rgb).sum(1)
        depth += (weights * t_block.float()).sum(1)
        transmittance = transmittance * through
    opacity = 1.0 - transmittance
    return MarchResult(color + transmittance[:, None], depth / opacity.clamp(min=1e-6), opacity, evaluations)
