"""Gradient depth refined by a wide-baseline search in the light field itself.

Gradient depth (models/depth.py) reads the light field's *local* slope: the tangent of a
point's epipolar line at the pixel. The LFN was fitted to views 17-21° apart and is free to bend
its epipolar lines between them (paint sliding a little as the view turns), so local slopes follow
the texture: the depth's error is smooth blobs about 10 pixels wide (DEPTH.md). The same line
measured across a wide baseline averages the bends out. For each pixel with a gradient depth z,
candidate points z·(1 + δ) on its ray are looked at by the LFN from virtual cameras shifted
sideways by ±z·tan θ along 4 image directions (right, down and both diagonals): at the right depth
each of them sees the pixel's own color (a Lambertian surface). The cost of a candidate is the
squared color difference, the smaller of the two sides of each direction (a point is often hidden
from one side), summed over directions and baselines and averaged over a patch of the pixel's
neighbours that have a depth (the same relative δ: their depths are close); the best δ is refined
by a parabola through its neighbours on the grid.

Only the light field is used: no photo, no ground truth. It costs 8 × len(angles) × steps LFN
evaluations a pixel with a depth (StereoConfig.evaluations_per_pixel: 400 at the defaults), so it
serves exports, point clouds and evaluation; the live depth view stays gradient depth alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from models.depth import DepthResult, box_pool, gradient_depth
from models.plucker import plucker
from models.renderer import frame_rays, give_up_if, ray_colors
from models.resolution import Resolution


@dataclass(frozen=True)
class StereoConfig:
    angles_deg: tuple[float, ...] = (20.0, 35.0)  # baselines, as the angle they make at the point
    search: float = 0.06  # candidates z·(1 ± search) around the gradient depth ...
    steps: int = 25  # ... this many, evenly spaced
    patch: int = 3  # costs averaged over patch × patch neighbours with a depth

    @property
    def evaluations_per_pixel(self) -> int:
        """LFN evaluations for each pixel with a depth: ± 4 directions × baselines × candidates."""
        return 8 * len(self.angles_deg) * self.steps


def _directions(cam2world: torch.Tensor) -> list[torch.Tensor]:
    """The image's right and down axes and both diagonals, in world space (unit vectors)."""
    right, down = cam2world[:3, 0], cam2world[:3, 1]
    return [right, down, (right + down) / math.sqrt(2), (right - down) / math.sqrt(2)]


@torch.no_grad()
def refine_depth(renderer, cam2world: torch.Tensor, res: Resolution | int, estimate: DepthResult,
                 config: StereoConfig = StereoConfig(),
                 abandon: Callable[[], bool] | None = None) -> DepthResult:
    """`estimate` (gradient depth of this view, for the latent the renderer holds) with each valid
    pixel's depth moved to where the light field's wide-baseline views agree with its color.
    Pixels whose best candidate lies at the edge of the search keep their gradient depth."""
    res = Resolution.of(res)
    device = estimate.depth.device
    pose = cam2world.to(device, torch.float32)
    origins, dirs = frame_rays(pose, res, device)
    live = estimate.valid.flatten().nonzero()[:, 0]
    if len(live) == 0:
        return estimate
    depth = estimate.depth.flatten().float()
    color = estimate.color.reshape(-1, 3)[live].float()
    deltas = torch.linspace(-config.search, config.search, config.steps, device=device)
    candidates = depth[live, None] * (1 + deltas)  # (n, K)
    points = origins[live, None] + candidates[..., None] * dirs[live, None]  # (n, K, 3)
    cost = torch.zeros_like(candidates)
    for angle in config.angles_deg:
        shift = depth[live, None, None] * math.tan(math.radians(angle))  # (n, 1, 1)
        for direction in _directions(pose):
            sides = []
            for sign in (1.0, -1.0):
                give_up_if(abandon)
                eye = origins[live, None] + sign * shift * direction  # (n, 1, 3)
                rays = plucker(eye.expand_as(points).reshape(-1, 3), (points - eye).reshape(-1, 3))
                seen = ray_colors(renderer, rays.to(renderer.dtype), abandon).float()
                sides.append((seen.view(*candidates.shape, 3) - color[:, None]).square().sum(-1))
            cost += torch.minimum(*sides)
    cost = _patch_mean(cost, live, res, config.patch)
    best = cost.argmin(1)
    inner = (best > 0) & (best < config.steps - 1)
    k = best.clamp(1, config.steps - 2)
    before, at, after = (cost.gather(1, (k + i)[:, None])[:, 0] for i in (-1, 0, 1))
    curvature = (before + after - 2 * at).clamp(min=1e-12)
    offset = (0.5 * (before - after) / curvature).clamp(-1, 1)
    delta = torch.where(inner, deltas[k] + offset * (deltas[1] - deltas[0]), 0.0)
    refined = depth.clone()
    refined[live] = depth[live] * (1 + delta)
    return DepthResult(refined.view(res.height, res.width).to(estimate.depth.dtype), estimate.valid,
                       estimate.confidence, estimate.color)


def estimate_depth(renderer, cam2world: torch.Tensor, res: Resolution | int, summed: bool = False,
                   stereo: bool = False, abandon: Callable[[], bool] | None = None) -> DepthResult:
    """Gradient depth of a frame (`summed`: the channel-summed equations), refined by the
    wide-baseline search where `stereo` asks: the one entry the views, exports and point clouds use."""
    estimate = gradient_depth(renderer, cam2world, res, summed=summed, abandon=abandon)
    return refine_depth(renderer, cam2world, res, estimate, abandon=abandon) if stereo else estimate


def _patch_mean(cost: torch.Tensor, live: torch.Tensor, res: Resolution, patch: int) -> torch.Tensor:
    """(n, K) costs of the live pixels → each averaged with its patch × patch live neighbours'."""
    if patch <= 1:
        return cost
    image = torch.zeros(res.height * res.width, cost.shape[1], device=cost.device)
    image[live] = cost
    weight = torch.zeros(res.height * res.width, device=cost.device)
    weight[live] = 1
    total = box_pool(image.T.reshape(-1, res.height, res.width), patch)
    count = box_pool(weight.view(1, res.height, res.width), patch)
    return (total / count.clamp(min=1e-6)).reshape(cost.shape[1], -1).T[live]
