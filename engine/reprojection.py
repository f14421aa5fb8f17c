"""A training-time geometry term: the LFN's own gradient depth, checked against other photos.

For a few drawn rays of each car, the network's exact ray derivatives (forward mode, the same
four tangents and the same least squares as models/depth.py, per ray, unpooled) give a depth z
along the ray. The photos of the `neighbours` training views of the same car whose cameras are
nearest the ray's own then judge z, as two-view stereo does: depths around z are searched (no
gradient), a 3 × 3 patch of the ray's own photo, placed on a plane facing its camera at each
candidate depth, is projected into the neighbours and compared (sum of squared differences; the
smallest over the neighbours, so a view that sees the point occluded or outside its frame drops
out), and the best depth is refined by a parabola. The term is a Charbonnier distance between z
and that depth, relative to it (robust, L1-like; in units of the depth metric's abs-rel).

Why this form: projecting o + z·d into a neighbour and comparing one pixel's color, differentiable
in z through the bilinear weights, was tried first (DEPTH.md): one pixel's color is ambiguous, and
a gradient stops in the bilinear interpolation's kinks, so the network learned to match the colors
without moving its depth toward the truth. The patch search finds the photos' depth to ≈ 0.4 %
(median, on the cars' training views) where the LFN's own per-ray depth is 1.2 % off.

Rays whose colors hardly change (|a| below `min_gradient`: background, flat paint) have no depth
and are left out, as the estimator leaves them out; so are searches that end at the edge of their
range and patches whose best match is not clearly better than the typical one (ambiguous). The
gradient reaches the network only through z, the ratio of the rotation and shift derivatives: it
moves the light field's local epipolar slope toward the depth the other photos agree with, which
the image loss leaves free between training views (17-21° apart in our data set). No ground truth
enters; rendering is unchanged (one evaluation per ray).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.cardata import CarViews
from models.cameras import rays_through_pixels
from models.depth import ray_tangents

CHARBONNIER_EPS = 1e-3
DEPTH_RANGE = (0.5, 10.0)  # distances along the ray trusted as depths (cars sit at ≈ 2-4)
DISTINCT = 0.5  # a match counts if its cost is below this share of the search's median cost
PATCH_OFFSETS = torch.tensor([(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)])  # 3 × 3


@dataclass
class GeometryConfig:
    weight: float = 0.0  # 0: the term is off and the step is the plain one, bit for bit
    rays_per_object: int = 128  # rays of each drawn car that carry the 4 tangents
    neighbours: int = 3  # nearest training views each ray's depth is checked in
    min_gradient: float = 0.1  # per-ray |a| (√Σ a²) below which a ray has no depth
    search: float = 0.06  # candidate depths z·(1 ± search) ...
    search_steps: int = 25  # ... this many, evenly spaced


@dataclass
class GeometryRays:
    """What the term needs of the first `rays_per_object` rays of each car, before the forward."""

    tangents: torch.Tensor  # (4, B, K, 6) Plücker tangents: shift, rotate along right, then down
    own_pose: torch.Tensor  # (B, K, 4, 4) cam2world of the view each ray was drawn from
    own_view: torch.Tensor  # (B, K) its index in the data set
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
        self.offsets = PATCH_OFFSETS.to(cars.rgb.device)

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
        return GeometryRays(tangents, own, views[..., 0], views[..., 1:], poses[:, :, 1:])

    def __call__(self, objects: torch.Tensor, origins: torch.Tensor, dirs: torch.Tensor,
                 derivatives: torch.Tensor, rays: GeometryRays) -> torch.Tensor:
        """The mean robust relative distance between each ray's depth and the photos' depth, over
        the rays that have both; 0 when none has. derivatives (4, B, K, 3) of the first K rays'
        colors along rays.tangents."""
        k = self.config.rays_per_object
        origins, dirs = origins[:, :k], dirs[:, :k]
        derivatives = derivatives.float()
        shift, rotate = derivatives[0::2], derivatives[1::2]
        aa = (shift * shift).sum((0, -1))
        floor = self.config.min_gradient ** 2
        depth = (shift * rotate).sum((0, -1)) / aa.clamp(min=floor)
        used = (aa > floor) & (depth > DEPTH_RANGE[0]) & (depth < DEPTH_RANGE[1])
        depth = depth.clamp(*DEPTH_RANGE)
        with torch.no_grad():
            stereo, found = self.stereo_depth(objects, origins, dirs, depth.detach(), rays)
        error = torch.sqrt(((depth - stereo) / stereo) ** 2 + CHARBONNIER_EPS**2)
        used &= found & torch.isfinite(error)
        return torch.where(used, error, 0.0).sum() / used.sum().clamp(min=1)

    def stereo_depth(self, objects: torch.Tensor, origins: torch.Tensor, dirs: torch.Tensor,
                     depth: torch.Tensor, rays: GeometryRays) -> tuple[torch.Tensor, torch.Tensor]:
        """The depth near `depth` (B, K) at which the ray's 3 × 3 patch of its own photo best
        matches a neighbouring photo, and whether the search found a distinct minimum inside its
        range."""
        cfg = self.config
        k = self.intrinsics
        forward = rays.own_pose[..., :3, 2]
        local = torch.einsum("bkji,bkj->bki", rays.own_pose[..., :3, :3], dirs)
        # the ray's pixel in its own view (pixel centers at integer coordinates + 0.5 there)
        col = (k[0, 0] * local[..., 0] / local[..., 2] + k[0, 2] - 0.5).round().long()
        row = (k[1, 1] * local[..., 1] / local[..., 2] + k[1, 2] - 0.5).round().long()
        height, width = self.rgb.shape[2:4]
        pcol = (col[..., None] + self.offsets[:, 1]).clamp(0, width - 1)  # (B, K, 9)
        prow = (row[..., None] + self.offsets[:, 0]).clamp(0, height - 1)
        patch = self.rgb[objects[:, None, None], rays.own_view[..., None], prow, pcol].float() / 255
        _, patch_dirs = rays_through_pixels(rays.own_pose[:, :, None], k, pcol.float(), prow.float())
        # candidate depths: a plane facing the camera at the ray's camera-z times each scale
        scales = torch.linspace(1 - cfg.search, 1 + cfg.search, cfg.search_steps, device=depth.device)
        plane = (depth * (dirs * forward).sum(-1))[..., None, None] * scales[:, None]  # (B, K, S, 1)
        along = plane / (patch_dirs * forward[:, :, None]).sum(-1)[:, :, None]  # (B, K, S, 9)
        points = origins[:, :, None, None] + along[..., None] * patch_dirs[:, :, None]
        seen, color = self.sample(objects, points.flatten(2, 3), rays)  # (B, K, S·9, n, ·)
        steps = cfg.search_steps
        ssd = ((color - patch.repeat(1, 1, steps, 1)[..., None, :]) ** 2).sum(-1)
        ssd = torch.where(seen, ssd, torch.inf).view(*depth.shape, steps, 9, -1).sum(3)
        cost = ssd.amin(-1)  # (B, K, S): the best neighbour at each depth
        best = cost.argmin(-1)
        inside = (best > 0) & (best < steps - 1) & torch.isfinite(cost.gather(-1, best[..., None]))[..., 0]
        at = best.clamp(1, steps - 2)[..., None]
        left, mid, right = (cost.gather(-1, at + i)[..., 0] for i in (-1, 0, 1))
        curvature = left - 2 * mid + right
        shift = torch.where(curvature > 0, 0.5 * (left - right) / curvature.clamp(min=1e-12), 0.0)
        step = 2 * cfg.search / (steps - 1)
        found_scale = scales[at[..., 0]] + shift.clamp(-0.5, 0.5).nan_to_num(0.0) * step
        distinct = mid < DISTINCT * cost.median(-1).values
        return depth * found_scale, inside & torch.isfinite(curvature) & distinct

    def sample(self, objects: torch.Tensor, points: torch.Tensor,
               rays: GeometryRays) -> tuple[torch.Tensor, torch.Tensor]:
        """Project points (B, K, M, 3) into each ray's neighbouring views: (B, K, M, n) whether a
        point is in front of the camera and inside the frame, and the photo's bilinear color
        (B, K, M, n, 3)."""
        rotation = rays.poses[:, :, None, :, :3, :3]  # (B, K, 1, n, 3, 3)
        center = rays.poses[:, :, None, :, :3, 3]
        local = torch.einsum("bkmnji,bkmnj->bkmni", rotation, points[:, :, :, None] - center)
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
        obj = objects[:, None, None, None]
        views = rays.views[:, :, None]

        def pixel(dr: int, dc: int) -> torch.Tensor:
            return self.rgb[obj, views, r0 + dr, c0 + dc].float() / 255.0

        top = pixel(0, 0) * (1 - fc) + pixel(0, 1) * fc
        bottom = pixel(1, 0) * (1 - fc) + pixel(1, 1) * fc
        return seen, top * (1 - fr) + bottom * fr
