"""Random ray batches from posed images: what training and latent fitting draw each step."""

from __future__ import annotations

import torch

from models.cameras import rays_through_pixels


def sample_rays(
    rgb: torch.Tensor, cam2world: torch.Tensor, intrinsics: torch.Tensor,
    view_pool: torch.Tensor, rays_per_object: int, generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw `rays_per_object` random pixels from the views in `view_pool` of each object.

    rgb (B, V, H, W, 3) uint8, cam2world (B, V, 4, 4), view_pool (P,) indices of usable views.
    Returns origins, dirs (B, R, 3) and target colors (B, R, 3) in [0, 1].
    """
    b, _, h, w, _ = rgb.shape
    device = rgb.device
    shape = (b, rays_per_object)
    pick = torch.randint(len(view_pool), shape, device=device, generator=generator)
    views = view_pool.to(device)[pick]
    rows = torch.randint(h, shape, device=device, generator=generator)
    cols = torch.randint(w, shape, device=device, generator=generator)
    objects = torch.arange(b, device=device)[:, None].expand(shape)
    target = rgb[objects, views, rows, cols].float() / 255.0
    poses = cam2world[objects, views]
    origins, dirs = rays_through_pixels(poses, intrinsics, cols.float(), rows.float())
    return origins, dirs, target
