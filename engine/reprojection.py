"""A training-time geometry term: the LFN's own gradient depth, checked against other photos.

For a few drawn rays of each car, the network's exact ray derivatives (forward mode, the same
four tangents and the same least squares as models/depth.py, per ray, unpooled) give a depth z
along the ray; the point o + z·d is projected into the `neighbours` training views of the same
car whose cameras are nearest the ray's own, and the photo's color there (bilinear) is compared
with the ray's target color. Where the light field's depth is right the colors agree (a Lambertian
surface); a depth off by a pixel's worth lands on other paint. The smallest error over the
neighbours counts (a view that sees the point occluded or outside its frame loses the minimum),
as a Charbonnier distance (robust, L1-like). Rays whose colors hardly change (|a| below
`min_gradient`: background, flat paint) have no depth to check and are left out, as the estimator
leaves them out.

Its gradient reaches the network only through z, the ratio of the rotation and shift derivatives:
it moves the light field's local epipolar slope toward the depth the other photos agree with,
which the image loss alone leaves free between the training views (17-21° apart here). No ground
truth enters; rendering is unchanged (one evaluation per ray).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.cardata import CarViews
from models.depth import ray_tangents

CHARBONNIER_EPS = 1e-3
DEPTH_RANGE = (0.5, 10.0)  # distances along the ray trusted as depths (cars sit at ≈ 2-4)


@dataclass
class GeometryConfig:
    weight: float = 0.0  # 0: the term is off and the step is the plain one, bit for bit
    rays_per_object: int = 64  # rays of each drawn car that carry the 4 tangents
    neighbours: int = 3  # nearest training views each ray's depth point is projected into
    min_gradient: float = 0.02  # per-ray |a| (√Σ a²) below which a ray has no depth


@dataclass
class GeometryRays:
    """What the term needs of the first `rays_per_object` rays of each car, before the forward."""

    tangents: torch.Tensor  # (4, B, K, 6) Plücker tangents: shift, rotate along right, then down
    views: torch.Tensor  # (B, K, n) the neighbouring training views (data-set view indices)
    poses: torch.Tensor  # (B, K, n, 4, 4) their cam2world


class ReprojectionLoss:
    """The term for one data set on one device; `prepare` before the forward, `__call__` after."""

    def __init__(self, cars: CarViews, train_views: torch.Tensor, config: GeometryConfig):
        if config.neighbours >= len(train_views):
            raise ValueError(f"--geometry-neighbours {config.neighbours}: the data set has "
                             f"{len(train_views)} training views a car")
        self.config = config
        self.rgb = cars.rgb  # (C, V, H, W, 3) uint8, resident; gathered pixel by pixel
        self.train_views = train_views
        self.intrinsics = cars.intrinsics.to(cars.cam2world.device)
        self.centers = cars.cam2world[:, train_views, :3, 3]  # (C, Vt, 3)
        self.cam2world = cars.cam2world

    def prepare(self, objects: torch.Tensor, origins: torch.Tensor,
                dirs: torch.Tensor) -> GeometryRays:
        """Each ray's own view is the training camera at its origin; its neighbours are the next
        nearest. objects (B,), origins and dirs (B, N, 3) of the batch."""
        k = self.config.rays_per_object
        origins, dirs = origins[:, :k].detach(), dirs[:, :k].detach()
        distance = torch.cdist(origins, self.centers[objects])  # (B, K, Vt)
        nearest = distance.topk(self.config.neighbours + 1, dim=-1, largest=False).indices
        views = self.train_views[nearest]  # (B, K, n + 1), the ray's own view first
        poses = self.cam2world[objects[:, None, None], views]
        own = poses[:, :, 0]
        tangents = ray_tangents(origins, dirs, own[..., :3, 0], own[..., :3, 1])
        return GeometryRays(tangents, views[..., 1:], poses[:, :, 1:])

    def __call__(self, objects: torch.Tensor, origins: torch.Tensor, dirs: torch.Tensor,
                 target: torch.Tensor, derivatives: torch.Tensor, rays: GeometryRays) -> torch.Tensor:
        """The mean robust color error over the rays with a depth; 0 when none has one.
        derivatives (4, B, K, 3) of the first K rays' colors along rays.tangents."""
        k = self.config.rays_per_object
        origins, dirs, target = origins[:, :k], dirs[:, :k], target[:, :k]
        derivatives = derivatives.float()
        shift, rotate = derivatives[0::2], derivatives[1::2]
        aa = (shift * shift).sum((0, -1))
        floor = self.config.min_gradient ** 2
        depth = (shift * rotate).sum((0, -1)) / aa.clamp(min=floor)
        has_depth = (aa > floor) & (depth > DEPTH_RANGE[0]) & (depth < DEPTH_RANGE[1])
        depth = depth.clamp(*DEPTH_RANGE)
        points = origins + depth[..., None] * dirs  # (B, K, 3)
        seen, color = self.sample(objects, points, rays)
        error = torch.sqrt(((color - target[:, :, None]) ** 2).sum(-1) + CHARBONNIER_EPS**2)
        error = torch.where(seen, error, torch.inf).amin(-1)  # (B, K)
        used = has_depth & torch.isfinite(error)
        return torch.where(used, error, 0.0).sum() / used.sum().clamp(min=1)

    def sample(self, objects: torch.Tensor, points: torch.Tensor,
               rays: GeometryRays) -> tuple[torch.Tensor, torch.Tensor]:
        """Project points (B, K, 3) into the neighbouring views: (B, K, n) whether the point is in
        front of the camera and inside the frame, and the photo's bilinear color (B, K, n, 3)."""
        rotation, center = rays.poses[..., :3, :3], rays.poses[..., :3, 3]
        local = torch.einsum("bknji,bknj->bkni", rotation, points[:, :, None] - center)
        z = local[..., 2]
        safe_z = torch.where(z > 1e-3, z, 1.0)
        k = self.intrinsics
        # pixel (i, j) has its center at (i + 0.5, j + 0.5): integer coordinates are centers here
        col = k[0, 0] * local[..., 0] / safe_z + k[0, 2] - 0.5
        row = k[1, 1] * local[..., 1] / safe_z + k[1, 2] - 0.5
        height, width = self.rgb.shape[2:4]
        seen = (z > 1e-3) & (col >= 0) & (col <= width - 1) & (row >= 0) & (row <= height - 1)
        col0 = col.detach().floor().clamp(0, width - 2)
        row0 = row.detach().floor().clamp(0, height - 2)
        fc, fr = (col - col0)[..., None], (row - row0)[..., None]
        c0, r0 = col0.long(), row0.long()
        obj = objects[:, None, None].expand_as(rays.views)

        def pixel(dr: int, dc: int) -> torch.Tensor:
            return self.rgb[obj, rays.views, r0 + dr, c0 + dc].float() / 255.0

        top = pixel(0, 0) * (1 - fc) + pixel(0, 1) * fc
        bottom = pixel(1, 0) * (1 - fc) + pixel(1, 1) * fc
        return seen, top * (1 - fr) + bottom * fr
